"""Reading runs back (mlplab.runs.records): what open_run finds in a run folder, and what
evaluate_run scores a saved model on, in which precision, and what it refuses.

One real run is trained once for the module (a 32-unit model, one epoch on 500 MNIST images);
tests that change its files work on a copy. Other datasets are small .npz files made from MNIST.
Two slower tests come last: a second run (trained with another loss), and open_run in a fresh
interpreter started in an ASCII locale (about 3 s of CPU: it imports torch).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

from mlplab.config import config_from_dict
from mlplab.errors import ConfigError, ModelFileError
from mlplab.runs import evaluate_run, open_run, predict_probabilities, run_dataset, train_run
from mlplab.runs.records import _short

SMALL = {
    "name": "small",
    "model": {"layers": [{"type": "dense", "units": 32, "activation": "relu"}]},
    "training": {"batch_size": 64, "epochs": 1, "seed": 0, "validation_split": 0.1,
                 "optimizer": {"name": "adam", "learning_rate": 0.001}},
}
LIMIT = 500
DIGITS = [str(d) for d in range(10)]


@pytest.fixture(scope="module")
def run(mnist, tmp_path_factory):
    out = tmp_path_factory.mktemp("records") / "run"
    train_run(config_from_dict(SMALL), out=out, dataset=mnist.subset(LIMIT, LIMIT), limit=LIMIT, verbose=0)
    return out


def copy_of(run, tmp_path, *names):
    """A copy of the run folder; with `names`, only those files (a model saved alone, say)."""
    out = tmp_path / "copy"
    if names:
        out.mkdir()
        for name in names:
            shutil.copy(run / name, out / name)
    else:
        shutil.copytree(run, out)
    return out


def edit_json(path, **changes):
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


def npz_dataset(path, images, labels, class_names=None):
    """Another dataset, as a user would bring one (`npz:FILE`); the same images train and test."""
    arrays = {"x_train": images, "y_train": labels, "x_test": images, "y_test": labels}
    if class_names is not None:
        arrays["class_names"] = np.array(class_names)
    np.savez(path, **arrays)
    return f"npz:{path}"


# --- open_run --------------------------------------------------------------------------------------


def test_open_run_reads_what_the_run_folder_holds(run):
    record = open_run(run)
    assert record.path == run and record.name == "small"
    assert record.info == json.loads((run / "run.json").read_text())
    assert record.metrics == json.loads((run / "metrics.json").read_text())  # more than model.json keeps
    assert record.metrics != record.saved.metrics
    assert record.history == json.loads((run / "history.json").read_text())["rows"] and len(record.history) == 1
    assert record.config_text == (run / "config.toml").read_text(encoding="utf-8")
    assert open_run(run / "model.json").info == record.info  # the model's description opens the same run


def test_a_model_saved_alone_opens_with_empty_run_details(run, tmp_path):
    bare = copy_of(run, tmp_path, "model.json", "model.safetensors")
    record = open_run(bare)  # no run.json: nothing says it did not finish
    assert (record.info, record.history, record.config_text) == ({}, [], "")
    assert record.metrics == record.saved.metrics == json.loads((bare / "model.json").read_text())["metrics"]


def test_a_run_that_has_not_finished_opens_only_when_asked(run, tmp_path):
    copy = copy_of(run, tmp_path)
    edit_json(copy / "run.json", status="running")
    with pytest.raises(ModelFileError, match=rf"^{re.escape(str(copy))}: the run has not finished \(status 'running'\)$"):
        open_run(copy)
    assert open_run(copy, require_finished=False).info["status"] == "running"
    edit_json(copy / "run.json", status="non_finite")  # the last good weights were saved: a finished run
    assert open_run(copy).info["status"] == "non_finite"


def test_damaged_or_foreign_run_files_are_read_as_far_as_they_make_sense(run, tmp_path):
    copy = copy_of(run, tmp_path)
    (copy / "config.toml").write_bytes(b'name = "caf\xe9"\n')  # not UTF-8: shown with a replacement character
    (copy / "metrics.json").write_text("[1, 2]")  # not a table of metrics
    (copy / "history.json").write_text("{}")  # no rows
    record = open_run(copy)
    assert record.config_text == 'name = "caf\ufffd"\n'
    assert (record.metrics, record.history) == ({}, [])
    (copy / "run.json").write_text("[]")
    with pytest.raises(ModelFileError, match=rf"^{re.escape(str(copy / 'run.json'))}: not an mlplab run description$"):
        open_run(copy)


# --- evaluate_run ----------------------------------------------------------------------------------


def test_evaluate_run_rescores_the_run_on_its_own_test_slice_as_training_did(run):
    metrics = json.loads((run / "metrics.json").read_text())
    scores = evaluate_run(run)
    assert scores == {
        "run": str(run), "dataset": "mnist", "test_samples": LIMIT,
        "test_loss": metrics["test_loss"], "test_accuracy": metrics["test_accuracy"],
        "per_class_accuracy": metrics["per_class_accuracy"], "class_names": DIGITS,
        "recorded": open_run(run).saved.metrics,
    }


def test_evaluate_run_scores_a_run_that_did_not_finish(run, tmp_path):
    copy = copy_of(run, tmp_path)
    edit_json(copy / "run.json", status="interrupted")  # a refit interrupted after the first model was saved
    assert evaluate_run(copy)["test_accuracy"] == json.loads((run / "metrics.json").read_text())["test_accuracy"]


def test_a_model_saved_alone_is_scored_in_fp32_on_the_whole_test_set(run, tmp_path):
    bare = copy_of(run, tmp_path, "model.json", "model.safetensors")
    scores = evaluate_run(bare)  # no run.json: no recorded precision nor slice
    assert (scores["dataset"], scores["test_samples"]) == ("mnist", 10_000)
    assert scores["recorded"] == open_run(bare).saved.metrics


def test_data_is_read_from_the_data_dir_given(run, data_dir, tmp_path, monkeypatch):
    def no_download(spec):
        pytest.fail(f"{spec.name} was looked for elsewhere than the data_dir given")

    monkeypatch.setenv("MLPLAB_DATA_DIR", str(tmp_path))  # nothing here: only data_dir holds MNIST
    monkeypatch.setattr("mlplab.data.load.fetch_dataset", no_download)
    assert evaluate_run(run, data_dir=data_dir)["test_samples"] == LIMIT
    assert evaluate_run(run, dataset_name="mnist", data_dir=data_dir)["test_samples"] == 10_000  # no slice


def test_another_dataset_is_scored_when_its_classes_are_the_models(run, mnist, tmp_path):
    digits = npz_dataset(tmp_path / "digits.npz", mnist.x_test[:200], mnist.y_test[:200])
    scores = evaluate_run(run, dataset_name=digits)
    assert (scores["dataset"], scores["test_samples"], scores["class_names"]) == (digits, 200, DIGITS)
    assert scores["recorded"] == {}  # the run's own figures are for its own test set
    assert scores["test_accuracy"] == evaluate_run(run, dataset_name=digits, force=True)["test_accuracy"]


def test_another_dataset_with_other_classes_is_refused_unless_forced(run, mnist, tmp_path):
    letters = [f"c{d}" for d in range(10)]
    other = npz_dataset(tmp_path / "other.npz", mnist.x_test[:200], mnist.y_test[:200], letters)
    message = (f"dataset {other}'s classes (c0, c1, c2, c3, ...) are not the model's (0, 1, 2, 3, ...); "
               "the accuracy would be meaningless. Pass --force to score it anyway")
    with pytest.raises(ConfigError, match="^" + re.escape(message) + "$"):
        evaluate_run(run, dataset_name=other)
    scores = evaluate_run(run, dataset_name=other, force=True)
    assert (scores["class_names"], scores["test_samples"]) == (letters, 200)


def test_a_model_that_does_not_name_its_classes_is_scored_on_any_dataset_of_its_shape(run, mnist, tmp_path):
    bare = copy_of(run, tmp_path, "model.json", "model.safetensors")
    description = json.loads((bare / "model.json").read_text())
    del description["class_names"]
    (bare / "model.json").write_text(json.dumps(description))
    other = npz_dataset(tmp_path / "other.npz", mnist.x_test[:200], mnist.y_test[:200], [f"c{d}" for d in range(10)])
    assert evaluate_run(bare, dataset_name=other)["test_samples"] == 200


@pytest.mark.parametrize("shape", ["features", "classes"])
def test_a_dataset_of_another_shape_is_refused_even_when_forced(run, mnist, tmp_path, shape):
    images, labels = mnist.x_test[:200], mnist.y_test[:200]
    if shape == "features":
        images, expected = images[:, ::2, ::2], "196 features and 10 classes"  # 14 x 14
    else:
        labels, expected = labels % 5, "784 features and 5 classes"
    other = npz_dataset(tmp_path / "other.npz", images, labels)
    message = f"dataset {other} has {expected}; the model expects 784 and 10"
    for force in (False, True):
        with pytest.raises(ConfigError, match="^" + re.escape(message) + "$"):
            evaluate_run(run, dataset_name=other, force=force)


def test_class_lists_in_messages_show_the_first_four_names():
    assert _short(["a", "b", "c"]) == "a, b, c"
    assert _short(["a", "b", "c", "d"]) == "a, b, c, d"
    assert _short(["a", "b", "c", "d", "e"]) == "a, b, c, d, ..."
    assert _short(range(10)) == "0, 1, 2, 3, ..."


# --- run_dataset, predict_probabilities -------------------------------------------------------------


def test_run_dataset_is_the_runs_slice_loaded_once_per_cache(run):
    record = open_run(run)
    cache = {}
    dataset = run_dataset(record, cache=cache)
    assert (dataset.name, len(dataset.y_train), len(dataset.y_test)) == ("mnist", LIMIT, LIMIT)
    assert run_dataset(record, cache=cache) is dataset and cache == {("mnist", LIMIT): dataset}


def test_predict_probabilities_takes_images_or_scaled_features(run, mnist):
    model = open_run(run).saved.model
    images = mnist.x_test[:64]
    probs = predict_probabilities(model, images)
    assert probs.shape == (64, 10) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    scaled = images.astype(np.float64) / 255.0  # features already scaled, as images or as rows
    np.testing.assert_allclose(predict_probabilities(model, scaled), probs, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(predict_probabilities(model, scaled.reshape(64, -1)), probs, rtol=1e-5, atol=1e-7)


# --- slower: a second training, a fresh interpreter -------------------------------------------------


def test_a_run_is_rescored_with_the_loss_it_was_trained_with(mnist, tmp_path):
    config = config_from_dict({**SMALL, "training": {**SMALL["training"], "loss": "mean_squared_error"}})
    result = train_run(config, out=tmp_path / "mse", dataset=mnist.subset(LIMIT, LIMIT), limit=LIMIT, verbose=0)
    assert evaluate_run(tmp_path / "mse")["test_loss"] == result.metrics["test_loss"]  # not the cross-entropy


def test_the_config_text_is_read_as_utf_8_whatever_the_locale_says(run, tmp_path):
    """mlplab writes config.toml in UTF-8; a process whose locale says otherwise (Windows' cp1252,
    a C locale) must still read it as UTF-8. Python fixes the locale's encoding when it starts, so
    this takes a fresh interpreter started in an ASCII locale."""
    copy = copy_of(run, tmp_path)
    (copy / "config.toml").write_text('name = "café"\n', encoding="utf-8")
    env = {**os.environ, "LC_ALL": "C", "PYTHONUTF8": "0", "PYTHONCOERCECLOCALE": "0"}
    code = "import sys; from mlplab.runs.records import open_run; print(ascii(open_run(sys.argv[1]).config_text))"
    out = subprocess.run([sys.executable, "-c", code, str(copy)], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ascii('name = "café"\n')
