"""What a run leaves behind, field by field (issue 15): the data `prepare_data` hands to training,
what run.json, metrics.json and model.json say for each way a run ends, what a refit keeps and what
a resume restores.

The pure steps run on a synthetic dataset; the runs train a 16-unit model for one to three epochs
on 300 images of noise (a user's .npz) or, where resume must find a named dataset, 300 of MNIST's.
"""

from __future__ import annotations

import errno
import io
import json
import os
import re
import signal
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from mlplab.config import config_from_dict, load_config
from mlplab.data import Dataset
from mlplab.data.preprocess import flatten_scale, train_val_split
from mlplab.errors import ConfigError, ModelFileError
from mlplab.model.flops import training_flops
from mlplab.runs import HistoryWriter, RunPlan, StopCause, evaluate_run, prepare_data, resume_run, start_run, train_run
from mlplab.runs.lifecycle import config_changes
from mlplab.safeio import load_tensors
from mlplab.training.callbacks import Callback
from mlplab.training.checkpoint import read_checkpoint_extra
from mlplab.training.device import resolve_runtime

LIMIT = 300
UTC_SECONDS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00$")  # an ISO time in UTC, to the second


def tiny(**training):
    return config_from_dict({
        "name": "tiny",
        "model": {"layers": [{"type": "dense", "units": 16, "activation": "relu"}]},
        "training": {"batch_size": 50, "epochs": 2, "seed": 0, "validation_split": 0.2,
                     "optimizer": {"name": "adam", "learning_rate": 0.001}, **training},
    })


def read(path):
    return json.loads(path.read_text())


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """300 training and 300 test images of noise, 28 x 28, ten classes, as a user's .npz (loaded in
    milliseconds; what these tests check is what a run records, not what it learns)."""
    from mlplab.data import load_dataset

    rng = np.random.default_rng(0)
    file = tmp_path_factory.mktemp("data") / "noise.npz"
    np.savez(file, **{f"x_{part}": rng.integers(0, 256, (LIMIT, 28, 28), dtype=np.uint8) for part in ("train", "test")},
             **{f"y_{part}": np.arange(LIMIT) % 10 for part in ("train", "test")})
    return load_dataset(f"npz:{file}")


@pytest.fixture
def threads():
    """Tests that set torch's thread count give the session's back."""
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def weights(run_dir):
    return (run_dir / "model.safetensors").read_bytes()


class Terminal(io.StringIO):
    def isatty(self):
        return True


class StatusWatcher(Callback):
    """Reads run.json's status at each epoch's end, as someone watching the run would."""

    def __init__(self, run_dir):
        self.run_json, self.seen = run_dir / "run.json", []

    def on_epoch_end(self, state, row):
        self.seen.append(read(self.run_json)["status"])


# --- prepare_data: what training sees ------------------------------------------------------------


def toy(n_train=20, n_test=6):
    rng = np.random.default_rng(0)
    return Dataset("toy", rng.integers(0, 256, (n_train, 2, 3), dtype=np.uint8), np.arange(n_train) % 2,
                   rng.integers(0, 256, (n_test, 2, 3), dtype=np.uint8), np.arange(n_test) % 2, ("a", "b"), "made here")


def same(a, b):
    return a[0].dtype == b[0].dtype and a[1].dtype == b[1].dtype and np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


def test_prepare_data_scales_splits_and_says_which_data_validates():
    dataset = toy()
    test = (flatten_scale(dataset.x_test), dataset.y_test)
    x_tr, y_tr, x_val, y_val = train_val_split(dataset.x_train, dataset.y_train, val_fraction=0.25, seed=3)

    held_out = prepare_data(dataset, 0.25, 3)  # the seeded, stratified split of the training images
    assert held_out.validate_on == "val"
    assert same(held_out.train, (flatten_scale(x_tr), y_tr)) and same(held_out.validation, (flatten_scale(x_val), y_val))
    assert len(held_out.validation[1]) == 5 and held_out.train[0].dtype == np.float32
    assert same(held_out.test, test)
    assert not same(prepare_data(dataset, 0.25, 4).validation, held_out.validation)  # another seed, another split

    on_test = prepare_data(dataset, 0.25, 3, "test")  # every training image trains; the test set validates
    assert on_test.validate_on == "test"
    assert same(on_test.train, (flatten_scale(dataset.x_train), dataset.y_train))
    assert same(on_test.validation, test) and same(on_test.test, test)

    unvalidated = prepare_data(dataset, 0.0, 3)
    assert unvalidated.validate_on == "none" and unvalidated.validation is None
    assert same(unvalidated.train, (flatten_scale(dataset.x_train), dataset.y_train)) and same(unvalidated.test, test)


@pytest.mark.parametrize(("dataset", "split", "validate_on", "message"), [
    (toy(n_test=0), 0.1, "val", "toy: the test set is empty"),
    (toy(), 0.1, "bogus", "validate_on must be val or test, got 'bogus'"),
    (toy(n_train=3), 0.1, "val", "toy: 3 training images are too few for a validation split of 0.1 (none would be "
                                 "held out); use more images (a larger --limit)"),
    (toy(n_train=1), 0.9, "val", "toy: val_fraction=0.9 of 1 samples leaves none for training"),
])
def test_prepare_data_refuses_data_too_small_in_one_line(dataset, split, validate_on, message):
    with pytest.raises(ConfigError) as caught:
        prepare_data(dataset, split, 0, validate_on)
    assert str(caught.value).startswith(message) and "\n" not in str(caught.value)


@pytest.mark.parametrize(("split", "validate_on"), [(0.1, "test"), (0.0, "val"), (0.1, "val")])
def test_a_dataset_without_training_images_is_a_config_error(split, validate_on):
    """Before: NumPy's "cannot reshape array of size 0" where nothing was split off (a `Dataset`
    passed to train_run, such as `mnist.subset(0, 100)`): the check came after the scaling."""
    with pytest.raises(ConfigError, match="^toy: the training set is empty$"):
        prepare_data(toy(n_train=0), split, 0, validate_on)


def test_prepare_data_accepts_the_smallest_data_that_can_train():
    assert len(prepare_data(toy(n_train=2), 0.5, 0).validation[1]) == 1  # one image held out, one to train
    assert len(prepare_data(toy(n_train=1, n_test=1), 0.0, 0, "test").train[1]) == 1


# --- resume's refusal of an edited config names each change --------------------------------------


def test_config_changes_names_each_changed_added_and_removed_key():
    before = {"model": {"layers": [{"units": 32}, {"units": 10}]}, "training": {"learning_rate": 0.001, "tags": []}}
    after = {"model": {"layers": [{"units": 48}]}, "training": {"learning_rate": 0.001, "refit": True}}
    assert config_changes(before, after) == [
        "model.layers[0].units: 32 -> 48",
        "model.layers[1].units: 10 -> '(unset)'",
        "training.refit: '(unset)' -> True",
        "training.tags: [] -> '(unset)'",
    ]
    assert config_changes(after, after) == [] and config_changes(before, json.loads(json.dumps(before))) == []


# --- a finished run: what each file says ------------------------------------------------------


OUTCOME = ("epochs_run", "kept_epoch", "stop_cause", "stop_reason", "train_samples", "validation_samples",
           "validate_on", "train_seconds", "train_flops", "refit")
TEST_METRICS = ("test_loss", "test_accuracy", "per_class_accuracy", "test_samples")


def test_a_finished_run_records_what_ran_on_what_and_how(data, tmp_path, monkeypatch, capsys):
    """Early stopping after epoch 2 keeps epoch 1; the refit then trains on all 300 images for 1 epoch."""
    config = tiny(epochs=3, refit=True, early_stopping={"monitor": "val_loss", "patience": 1, "min_delta": 10.0})
    out, shown = tmp_path / "r", io.StringIO()
    # The run layer's clock, read at the fit's start and end, then the refit's: the fit takes 1 s, the refit 4 s.
    readings = iter([100.0, 101.0, 103.0, 107.0])
    monkeypatch.setattr("mlplab.runs.lifecycle.time", SimpleNamespace(perf_counter=lambda: next(readings)))
    watcher = StatusWatcher(out)
    result = train_run(config, out=out, dataset=data, limit=LIMIT, verbose=1, stream=shown,
                       command=["mlplab", "train", "tiny.toml"], callbacks=(watcher,))
    assert watcher.seen == ["running", "running"]  # the caller's callbacks run; run.json says so meanwhile
    info, metrics, description = read(out / "run.json"), read(out / "metrics.json"), read(out / "model.json")

    assert result.cause is StopCause.EARLY_STOPPED and result.message == "" and result.signal is None
    assert result.run.path == out
    assert (result.history.epochs_run, result.history.kept_epoch) == (2, 1)
    assert result.history.stop_reason.startswith("early stopping: val_loss did not improve")
    assert result.metrics == metrics and set(metrics) == set(OUTCOME) | set(TEST_METRICS)
    saved, _ = load_tensors(out / "model.safetensors")
    assert saved.keys() == result.model.state_dict().keys()
    assert all(np.array_equal(saved[k].numpy(), v.numpy()) for k, v in result.model.state_dict().items())

    # metrics.json: the split, the epochs, the FLOPs of every sample seen (the refit's too), the scores
    samples_seen = 240 * 2 + 300 * 1
    assert {k: metrics[k] for k in OUTCOME if k not in ("train_seconds", "refit")} == {
        "epochs_run": 2, "kept_epoch": 1, "stop_cause": "early_stopped", "stop_reason": result.history.stop_reason,
        "train_samples": 240, "validation_samples": 60, "validate_on": "val",
        "train_flops": training_flops(config.model, 784, 10, samples_seen),
    }
    assert metrics["refit"]["epochs"] == 1 and metrics["refit"]["train_samples"] == 300
    assert metrics["refit"]["seconds"] == 4.0 and metrics["train_seconds"] == 5.0  # the fit's time and the refit's
    assert metrics["test_samples"] == LIMIT and len(metrics["per_class_accuracy"]) == 10
    scores = evaluate_run(out)  # the saved model, scored again on the same test images
    assert scores["test_loss"] == pytest.approx(metrics["test_loss"], rel=1e-6)
    assert scores["test_accuracy"] == metrics["test_accuracy"]
    assert scores["per_class_accuracy"] == metrics["per_class_accuracy"]

    # model.json: what a model file alone tells (the same outcome and scores, the data, the config)
    assert description["training"] == {k: metrics[k] for k in OUTCOME}
    assert description["metrics"] == {k: metrics[k] for k in TEST_METRICS}
    assert description["dataset"] == {"name": data.name, "source": data.source}
    trained = config.with_overrides({"dataset": data.name})  # the config names the data it trained on
    assert description["config"] == trained.to_dict() and description["name"] == "tiny"
    assert description["class_names"] == list(data.class_names) and description["image_shape"] == [28, 28]

    # run.json and config.toml: what ran, on what, how, and how it ended
    assert {k: info[k] for k in ("format", "name", "status", "stop_cause", "command", "dataset", "validate_on")} == {
        "format": "mlplab.run/1", "name": "tiny", "status": "finished", "stop_cause": "early_stopped",
        "command": ["mlplab", "train", "tiny.toml"], "dataset": {"name": data.name, "source": data.source, "limit": LIMIT},
        "validate_on": "val",
    }
    assert info["config"] == trained.to_dict() and load_config(out / "config.toml") == trained
    assert info["train_seconds"] == metrics["train_seconds"]
    assert info["runtime"]["device"] == "cpu" and info["runtime"]["gradients"] == "hand-written"
    assert UTC_SECONDS.match(info["started"]) and UTC_SECONDS.match(info["finished"])

    # what the user saw: two epochs, the refit's announcement and its one epoch, all on the stream given
    lines = shown.getvalue().splitlines()
    assert lines[0].startswith("Epoch 1/3 - ")  # no note: nothing was chosen for the user
    assert [line.split(" - ")[0] for line in lines if line.startswith("Epoch")] == ["Epoch 1/3", "Epoch 2/3", "Epoch 1/1"]
    assert "Refit on all 300 training images for 1 epochs" in lines
    assert lines.index("Refit on all 300 training images for 1 epochs") == len(lines) - 2
    assert capsys.readouterr().out == ""


# --- an interrupted run, and its resume ------------------------------------------------------------


def test_an_interrupted_run_says_where_it_stopped_and_resume_takes_everything_from_the_run(
        data_dir, tmp_path, monkeypatch, threads):
    """SIGTERM after epoch 1. The run validates on the test set, reads MNIST from a folder of its own
    and trains on one thread: resume_run(path) must take all of that from run.json."""
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "mnist").symlink_to(data_dir / "mnist")  # the path shows in the dataset's source
    plan = {"dataset": "mnist", "data_dir": folder, "limit": LIMIT, "validate_on": "test", "verbose": 0,
            "runtime": resolve_runtime("cpu", "fp32", 1)}
    straight = train_run(tiny(), out=tmp_path / "straight", **plan)
    out = tmp_path / "r"
    original = HistoryWriter.on_epoch_end

    def sigterm_after_epoch_1(self, state, row):
        original(self, state, row)
        if row["epoch"] == 1:
            os.kill(os.getpid(), signal.SIGTERM)

    with monkeypatch.context() as patch:
        patch.setattr(HistoryWriter, "on_epoch_end", sigterm_after_epoch_1)
        stopped = train_run(tiny(), out=out, callbacks=(StatusWatcher(out),), **plan)
    assert stopped.cause is StopCause.INTERRUPTED and stopped.signal == "SIGTERM" and stopped.exit_status == 143
    assert stopped.model is None and stopped.history.epochs_run == 1 and stopped.run.path == out
    assert stopped.message == (f"interrupted by SIGTERM; the state after epoch 1 is saved in {out / 'checkpoint.safetensors'}. "
                               f"Resume with: mlplab train --resume {out}")
    info = read(out / "run.json")
    assert info["status"] == "interrupted" and UTC_SECONDS.match(info["interrupted"]) and "finished" not in info
    assert info["dataset"] == {"name": "mnist", "source": straight.run.read_info()["dataset"]["source"], "limit": LIMIT}
    assert info["dataset"]["source"].startswith(str(folder / "mnist"))
    assert not (out / "metrics.json").exists() and not (out / "model.safetensors").exists()
    assert read_checkpoint_extra(out / "checkpoint.safetensors")["config"] == tiny().to_dict()  # what resume checks

    # A run.json that lacks the dataset's name and the config (edited by hand, or by another tool): the
    # config names the dataset, and the checkpoint's record of the config still catches an edit.
    info = read(out / "run.json")
    dataset_record = {k: v for k, v in info["dataset"].items() if k != "name"}
    (out / "run.json").write_text(json.dumps({**{k: v for k, v in info.items() if k != "config"}, "dataset": dataset_record}))
    config_toml = out / "config.toml"
    original = config_toml.read_text()
    config_toml.write_text(original.replace("learning_rate = 0.001", "learning_rate = 0.01"))
    with pytest.raises(ConfigError, match=r"\(training.optimizer.learning_rate: 0.001 -> 0.01\)"):
        resume_run(out, data_dir=folder, verbose=0)
    config_toml.write_text(original)
    torch.set_num_threads(2)  # another thread count now: the run goes on with the one it recorded
    shown = Terminal()
    watcher = StatusWatcher(out)  # the callbacks it was started with
    resumed = resume_run(out, data_dir=folder, stream=shown, callbacks=(watcher,))  # no dataset, runtime, verbosity
    assert watcher.seen == ["running"]  # epoch 2 only, with run.json saying the run is running again
    assert torch.get_num_threads() == 1
    assert resumed.cause is StopCause.COMPLETED and resumed.message == ""
    assert weights(out) == weights(tmp_path / "straight")
    assert resumed.metrics == {**straight.metrics, "train_seconds": resumed.metrics["train_seconds"]}
    assert resumed.metrics["validate_on"] == "test" and resumed.metrics["train_samples"] == LIMIT
    assert read(out / "model.json")["dataset"]["source"].startswith(str(folder / "mnist"))
    info = read(out / "run.json")
    assert info["status"] == "finished" and UTC_SECONDS.match(info["resumed"]) and UTC_SECONDS.match(info["finished"])
    assert "Epoch 2/2\n" in shown.getvalue() and "Epoch 1/2" not in shown.getvalue()  # verbose 1: a live bar

    with pytest.raises(ModelFileError, match=f"^{out}: this run already finished; nothing to resume$"):
        resume_run(out, verbose=0)
    with pytest.raises(ModelFileError, match=f"^{folder}: not an mlplab run directory \\(no run.json\\)$"):
        resume_run(folder, verbose=0)


def test_resume_finds_the_data_the_run_trained_on(tmp_path, monkeypatch, signal_when):
    """A run started with data already loaded (a user's .npz of three classes of 12 x 12 images) and a
    plan whose config still names MNIST: resume_run(path) alone reloads that .npz, not MNIST."""
    from mlplab.data import load_dataset

    rng = np.random.default_rng(2)
    file = tmp_path / "three.npz"
    np.savez(file, x_train=rng.integers(0, 256, (120, 12, 12), dtype=np.uint8), y_train=np.arange(120) % 3,
             x_test=rng.integers(0, 256, (30, 12, 12), dtype=np.uint8), y_test=np.arange(30) % 3)
    three = load_dataset(f"npz:{file}")
    config = tiny(loss="mean_squared_error")  # and the loss is not the default one
    start_run(RunPlan(config, tmp_path / "straight"), dataset=three, verbose=0)
    with monkeypatch.context() as patch:
        signal_when(patch, HistoryWriter, lambda state, row: row["epoch"] == 1)
        start_run(RunPlan(config, tmp_path / "r"), dataset=three, verbose=0)
    assert load_config(tmp_path / "r" / "config.toml").dataset == "mnist"  # the config's, not the data's name
    info = read(tmp_path / "r" / "run.json")  # without validate_on and the runtime record (edited by hand)
    (tmp_path / "r" / "run.json").write_text(json.dumps({k: v for k, v in info.items() if k not in ("validate_on", "runtime")}))
    resumed = resume_run(tmp_path / "r", verbose=0)  # validates on a split, on the CPU in fp32, as before
    assert resumed.ok and resumed.metrics["train_samples"] == 96 and resumed.metrics["test_samples"] == 30
    assert resumed.model(torch.zeros(1, 144)).shape == (1, 3)
    assert weights(tmp_path / "r") == weights(tmp_path / "straight")
    assert evaluate_run(tmp_path / "r")["test_loss"] == resumed.metrics["test_loss"]  # the config's loss, both times


def test_a_run_json_without_a_dataset_record_resumes_on_the_configs_dataset_whole(data, tmp_path, monkeypatch, signal_when):
    """run.json's dataset record (name, limit) edited away: the config's dataset, with no limit."""
    import mlplab.runs.lifecycle as lifecycle

    with monkeypatch.context() as patch:
        signal_when(patch, HistoryWriter, lambda state, row: row["epoch"] == 1)
        start_run(RunPlan(tiny(), tmp_path / "r"), dataset=data, verbose=0)
    info = read(tmp_path / "r" / "run.json")
    (tmp_path / "r" / "run.json").write_text(json.dumps({k: v for k, v in info.items() if k != "dataset"}))
    asked = []

    def load_run_dataset(name, *, data_dir, limit):
        asked.append((name, data_dir, limit))
        return data  # the noise it trained on, standing in for the MNIST the config names

    monkeypatch.setattr(lifecycle, "load_run_dataset", load_run_dataset)
    assert resume_run(tmp_path / "r", data_dir=tmp_path, verbose=0).ok
    assert asked == [("mnist", tmp_path, None)]


class TenSecondClock:
    """The run layer's `time`: each `perf_counter()` is 10 s after the last, so a session's training
    (read at its start and end) lasts exactly 10 s."""

    def __init__(self):
        self.now = 0.0

    def perf_counter(self):
        self.now += 10.0
        return self.now


def test_a_resumed_run_counts_the_time_trained_before_it_was_interrupted(data, tmp_path, monkeypatch, signal_when):
    """Before: nothing wrote train_seconds until a run finished, so a resumed run reported only the
    time since it resumed. Each session adds its 10 s to what run.json holds; a run whose process
    died after a checkpoint holds none (nothing recorded it), and counts from 0."""
    import mlplab.runs.lifecycle as lifecycle

    monkeypatch.setattr(lifecycle, "time", TenSecondClock())
    run_json = tmp_path / "r" / "run.json"
    with monkeypatch.context() as patch:
        signal_when(patch, HistoryWriter, lambda state, row: row["epoch"] in (1, 2, 3))
        train_run(tiny(epochs=4), out=tmp_path / "r", dataset=data, limit=LIMIT, verbose=0)
        assert read(run_json)["train_seconds"] == 10.0
        resume_run(tmp_path / "r", dataset=data, verbose=0)  # stopped again after epoch 2
        assert read(run_json)["train_seconds"] == 20.0
        info = read(run_json)
        del info["train_seconds"]  # as if killed after epoch 2's checkpoint, before anything recorded it
        run_json.write_text(json.dumps(info))
        resume_run(tmp_path / "r", dataset=data, verbose=0)  # stopped after epoch 3
        assert read(run_json)["train_seconds"] == 10.0
    resumed = resume_run(tmp_path / "r", dataset=data, verbose=0)
    assert resumed.ok and resumed.metrics["train_seconds"] == 20.0 == read(run_json)["train_seconds"]


# --- the other ways a run ends ------------------------------------------------------------------


def test_a_run_that_goes_non_finite_is_saved_as_such_and_not_refitted(data, tmp_path):
    """SGD at lr 1e38, one batch per epoch: the weights after epoch 1 give NaN; epoch 0's are kept."""
    config = tiny(epochs=2, batch_size=100000, refit=True, optimizer={"name": "sgd", "learning_rate": 1e38})
    result = train_run(config, out=tmp_path / "r", dataset=data, limit=LIMIT, verbose=0)
    assert result.cause is StopCause.NON_FINITE and result.exit_status == 3
    assert result.message == f"{result.history.stop_reason}; model saved in {tmp_path / 'r'}"
    assert result.metrics["refit"] is None and result.metrics["stop_cause"] == "non_finite"
    info = read(tmp_path / "r" / "run.json")
    assert info["status"] == "non_finite" and info["stop_cause"] == "non_finite"
    with pytest.raises(ModelFileError, match="this run already finished; nothing to resume"):
        resume_run(tmp_path / "r", verbose=0)


def test_a_pack_member_stopped_with_the_others_but_without_a_signal_of_its_own_reads_as_ctrl_c(tmp_path):
    """runs/pack ends every member of an interrupted pack with `interrupted_run`, also one whose own fit
    had already ended (early stopping) and so holds no signal name: it reads as Ctrl-C, exit 130."""
    from mlplab.runs.lifecycle import interrupted_run
    from mlplab.runs.run_dir import RunDir
    from mlplab.training.history import History

    run = RunDir(tmp_path)
    run.update_info(status="running")
    result = interrupted_run(run, History(), seconds=12.5)
    assert result.signal == "SIGINT" and result.exit_status == 130
    assert result.message == (f"interrupted by SIGINT; the state after epoch 0 is saved in {tmp_path / 'checkpoint.safetensors'}. "
                              f"Resume with: mlplab train --resume {tmp_path}")
    assert run.read_info()["status"] == "interrupted" and run.read_info()["train_seconds"] == 12.5


def test_the_refit_builds_the_model_for_the_datas_classes(tmp_path, capsys):
    """Three classes of 12 x 12 images (not MNIST's ten of 28 x 28), two epochs and a refit of two: the
    refit's model has three outputs, its samples count in the FLOPs, and at verbose 0 it prints nothing."""
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (150, 12, 12), dtype=np.uint8)
    labels = np.arange(150) % 3
    dataset = Dataset("toy", images[:120], labels[:120], images[120:], labels[120:], ("a", "b", "c"), "made here")
    config = tiny(epochs=2, refit=True)
    result = train_run(config, out=tmp_path / "r", dataset=dataset, verbose=0)
    assert result.ok and result.metrics["refit"]["epochs"] == 2 and result.metrics["refit"]["train_samples"] == 120
    assert result.metrics["train_flops"] == training_flops(config.model, 144, 3, 96 * 2 + 120 * 2)
    assert capsys.readouterr().out == ""
    description = read(tmp_path / "r" / "model.json")
    assert (description["num_classes"], description["image_shape"]) == (3, [12, 12])
    assert result.model(torch.zeros(1, 144)).shape == (1, 3)


def test_augmenting_images_that_are_not_square_is_refused_naming_their_shape(tmp_path):
    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, (60, 12, 20), dtype=np.uint8)
    dataset = Dataset("oblong", images[:50], np.arange(50) % 2, images[50:], np.arange(10) % 2, ("a", "b"), "made here")
    with pytest.raises(ConfigError, match="^training.augment needs square images, got 12 × 20$"):
        train_run(tiny(augment={"shift": 1.0}), out=tmp_path / "r", dataset=dataset, verbose=0)
    assert not (tmp_path / "r").exists()  # refused before the folder was made (it was left "running")


class BugAtStart(Callback):
    """Raises at the start of training while `armed` (a resume must bring the callbacks it started with)."""

    def __init__(self, armed):
        self.armed = armed

    def on_train_begin(self, state):
        if self.armed:
            raise RuntimeError("a bug")


def test_a_run_that_meets_a_bug_says_it_failed_raises_it_and_resumes(data, tmp_path):
    with pytest.raises(RuntimeError, match="^a bug$"):
        train_run(tiny(), out=tmp_path / "r", dataset=data, verbose=0, callbacks=(BugAtStart(True),))
    info = read(tmp_path / "r" / "run.json")
    assert info["status"] == "failed" and info["error"] == "RuntimeError: a bug" and UTC_SECONDS.match(info["failed"])
    resumed = resume_run(tmp_path / "r", dataset=data, verbose=0, callbacks=(BugAtStart(False),))  # the bug fixed
    assert resumed.ok and read(tmp_path / "r" / "run.json")["status"] == "finished"


def test_a_refit_that_goes_non_finite_makes_the_run_non_finite(data, tmp_path, monkeypatch):
    """The validation run ends well; its refit (told apart by having no validation data) ends as the
    NaN guard ends a fit whose loss went NaN in epoch 1. The refit's model is saved, the reason says so."""
    from mlplab.runs import lifecycle

    real_fit = lifecycle.fit

    def fit(model, training, train, validation, **kwargs):
        history = real_fit(model, training, train, validation, **kwargs)
        if validation is None:
            history.stopped_by, history.stop_reason = "non_finite", "non-finite training loss (nan) in epoch 1"
        return history

    monkeypatch.setattr(lifecycle, "fit", fit)
    sliced = data.subset(250, 250)  # a Dataset handed over as it is: no --limit, and not its file's 300 images
    result = train_run(tiny(epochs=1, refit=True), out=tmp_path / "r", dataset=sliced, verbose=0)
    assert result.metrics["train_samples"] == 200 and result.metrics["refit"]["train_samples"] == 250
    reason = "refit on all training data: non-finite training loss (nan) in epoch 1"
    assert result.cause is StopCause.NON_FINITE and result.history.stop_reason == reason
    assert result.message == f"{reason}; model saved in {tmp_path / 'r'}"
    assert result.metrics["stop_reason"] == reason and result.metrics["refit"]["epochs"] == 1
    assert read(tmp_path / "r" / "run.json")["status"] == "non_finite"


def test_ctrl_c_before_training_and_a_full_disk_say_how_to_go_on(data, tmp_path, monkeypatch):
    def ctrl_c(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:  # Ctrl-C after run.json was written, before the first epoch
        patch.setattr("mlplab.runs.lifecycle.standard_callbacks", ctrl_c)
        result = train_run(tiny(), out=tmp_path / "c", dataset=data, limit=LIMIT, verbose=0)
    assert result.cause is StopCause.INTERRUPTED and result.signal == "SIGINT" and result.exit_status == 130
    assert result.message == f"interrupted; resume with: mlplab train --resume {tmp_path / 'c'}"
    assert result.model is None and len(result.history) == 0  # an empty history, never None
    assert result.run.path == tmp_path / "c"

    def ctrl_c_in_batch_1(self, state, batch, running):
        os.kill(os.getpid(), signal.SIGINT)

    with monkeypatch.context() as patch:  # Ctrl-C during the first epoch: the state before it is saved
        patch.setattr(HistoryWriter, "on_batch_end", ctrl_c_in_batch_1, raising=False)
        result = train_run(tiny(), out=tmp_path / "e", dataset=data, limit=LIMIT, verbose=0)
    assert result.cause is StopCause.INTERRUPTED and result.history.epochs_run == 0
    assert result.message == (f"interrupted by SIGINT; the state after epoch 0 is saved in "
                              f"{tmp_path / 'e' / 'checkpoint.safetensors'}. Resume with: mlplab train --resume {tmp_path / 'e'}")
    info = read(tmp_path / "c" / "run.json")
    assert info["status"] == "interrupted" and UTC_SECONDS.match(info["interrupted"])
    config_toml = tmp_path / "c" / "config.toml"  # no checkpoint yet: run.json's config is what resume compares
    edited = config_toml.read_text().replace("units = 16", "units = 32").replace("batch_size = 50", "batch_size = 25")
    config_toml.write_text(edited)
    changes = r"\(model.layers\[0\].units: 16 -> 32; training.batch_size: 50 -> 25\)"
    with pytest.raises(ConfigError, match=changes + "; a resumed run must continue"):
        resume_run(tmp_path / "c", dataset=data, verbose=0)

    real_replace = os.replace

    def full_disk(src, dst, *args, **kwargs):
        if str(dst).endswith("history.json"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_replace(src, dst, *args, **kwargs)

    config_file = tmp_path / "tiny.toml"  # a config by its path, for another dataset, with its seed overridden
    config_file.write_text(tiny().to_toml().replace('dataset = "mnist"', 'dataset = "kmnist"'))
    with monkeypatch.context() as patch:
        patch.setattr(os, "replace", full_disk)
        result = train_run(config_file, out=tmp_path / "f", dataset=data, seed=7, limit=LIMIT, verbose=0)
    info = read(tmp_path / "f" / "run.json")
    assert info["config"]["dataset"] == data.name and info["config"]["training"]["seed"] == 7  # what trained
    assert load_config(tmp_path / "f" / "config.toml").to_dict() == info["config"]
    assert result.cause is StopCause.FAILED and result.exit_status == 2 and len(result.history) == 0
    assert result.run.path == tmp_path / "f"
    assert info["status"] == "failed" and UTC_SECONDS.match(info["failed"]) and "No space left on device" in info["error"]
    assert result.message == f"{info['error']}; once that is fixed, resume with: mlplab train --resume {tmp_path / 'f'}"


def test_a_choice_made_for_the_user_is_a_note_on_the_run_stream_unless_silent(data, tmp_path, monkeypatch, capsys, threads):
    """`--precision auto` picks bf16 where a (here faked) probe finds it 2.5x faster: the user is told."""
    from mlplab.training import device

    monkeypatch.setattr(device, "cpu_has_bf16_units", lambda: True)
    config = config_from_dict({"name": "wide", "model": {"layers": [{"type": "dense", "units": 64}]},
                               "training": {"batch_size": 100, "epochs": 1, "validation_split": 0.0}})

    def runtime():
        return resolve_runtime("cpu", "auto", 1, probe=lambda dev, shape: device.MatmulSpeed(shape, 100.0, 250.0, shape[0]))

    shown = Terminal()  # start_run's default verbosity: the note, then a live bar on a terminal
    start_run(RunPlan(config, tmp_path / "told", runtime=runtime()), dataset=data, stream=shown)
    assert shown.getvalue().startswith("note: bf16 matrix products measured 2.5x faster than fp32 here: training in bf16")
    assert "\nEpoch 1/1\n" in shown.getvalue()
    train_run(config, out=tmp_path / "silent", dataset=data, runtime=runtime(), verbose=0)
    assert read(tmp_path / "silent" / "run.json")["runtime"]["precision"] == "bf16"
    metrics = read(tmp_path / "silent" / "metrics.json")
    assert metrics["validation_samples"] == 0
    assert evaluate_run(tmp_path / "silent")["test_loss"] == metrics["test_loss"]  # scored in bf16 both times
    assert capsys.readouterr().out == ""

    fp32 = {"dataset": data, "runtime": resolve_runtime("cpu", "fp32", 1), "stream": Terminal()}
    with pytest.raises(ModelFileError, match="already holds a run"):
        train_run(config, out=tmp_path / "told", **fp32)
    shown = fp32["stream"]  # train_run's default verbosity: a live bar on a terminal, and no note for fp32
    train_run(config, out=tmp_path / "told", overwrite=True, **fp32)
    assert shown.getvalue().startswith("Epoch 1/1\n")
    assert weights(tmp_path / "silent") != weights(tmp_path / "told")  # bf16 was recorded, and bf16 trained
