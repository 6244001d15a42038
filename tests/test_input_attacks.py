"""Inputs outside the data loaders (issue 9, section 2): run folders, configs, the estimator, the CLI's --dataset.

Each test reproduces an attack that once broke mlplab: a hang, memory exhaustion, a traceback or a wrong result.
"""

from __future__ import annotations

import contextlib
import os
import signal

import numpy as np
import pytest

from mlplab.cli.main import main
from mlplab.config import ExperimentConfig, load_config
from mlplab.errors import ConfigError, DataError, ModelFileError
from mlplab.safeio import open_regular_file, read_json, read_regular_file


@contextlib.contextmanager
def deadline(seconds: int):
    """Fail instead of hanging forever (a FIFO read blocks until a writer appears)."""

    def expired(*_):
        raise TimeoutError(f"still blocked after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


# --- only regular files of bounded size are read ----------------------------------------------------


@pytest.fixture
def run_dir(tmp_path):
    from mlplab.model import build_model
    from mlplab.runs import save_model

    model = build_model(load_config("tutorial-50-25").model, 784, 10, seed=0)
    save_model(tmp_path / "run", model, name="m", class_names=[str(i) for i in range(10)], image_shape=(28, 28))
    return tmp_path / "run"


@pytest.mark.parametrize("target", ["model.safetensors", "model.json"])
@pytest.mark.parametrize("kind", ["dev-zero", "fifo", "folder"])
def test_run_folder_with_a_file_that_is_not_regular(run_dir, target, kind):
    from mlplab.runs import load_model

    path = run_dir / target
    path.unlink()
    if kind == "dev-zero":
        path.symlink_to("/dev/zero")  # was read until MemoryError
    elif kind == "fifo":
        os.mkfifo(path)  # hung forever
    else:
        path.mkdir()
    expected = r"model\.safetensors: not a regular file" if target == "model.safetensors" else r"run: no model\.json here"
    with deadline(20), pytest.raises(ModelFileError, match=expected) as err:
        load_model(run_dir)
    assert "\n" not in str(err.value)


def test_cli_evaluate_on_a_dev_zero_model(run_dir, capsys):
    (run_dir / "model.safetensors").unlink()
    (run_dir / "model.safetensors").symlink_to("/dev/zero")
    with deadline(20):
        assert main(["evaluate", str(run_dir)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "model.safetensors: not a regular file (a character device)" in err
    assert err.count("\n") == 1


def test_size_is_checked_before_reading(tmp_path):
    path = tmp_path / "big.json"
    path.write_bytes(b" " * 5000)
    with pytest.raises(ModelFileError, match=r"big\.json: 5000 bytes, more than the 4096"):
        read_regular_file(path, 4096)
    with pytest.raises(DataError, match="more than the 4096"):
        open_regular_file(path, 4096, error=DataError)
    assert read_regular_file(path, 5000) == b" " * 5000
    link = tmp_path / "link.json"
    link.symlink_to(path)  # a symlink to a regular file is fine
    assert len(read_regular_file(link, 5000)) == 5000


def test_json_nested_too_deeply(tmp_path):
    path = tmp_path / "deep.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ModelFileError, match=r"deep\.json: not valid JSON \(nested too deeply\)"):
        read_json(path)


# --- configs ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "a = " + "[" * 100_000 + "]" * 100_000,
        "[model]\nlayers = []\nextra = " + "{a = " * 100_000 + "1" + "}" * 100_000,
    ],
)
def test_config_nested_100000_deep(tmp_path, text):
    path = tmp_path / "deep.toml"
    path.write_text(text + "\n")
    with pytest.raises(ConfigError, match=r"deep\.toml: not valid TOML: nested too deeply"):
        load_config(path)


def test_set_value_nested_too_deeply():
    config = load_config("tutorial-50-25")
    with pytest.raises(ConfigError, match="nested too deeply"):
        config.with_overrides(["description=" + "[" * 100_000 + "]" * 100_000])


def test_config_that_is_a_fifo_is_not_waited_for(tmp_path, capsys):
    os.mkfifo(tmp_path / "c.toml")
    with deadline(20):
        assert main(["summary", str(tmp_path / "c.toml")]) == 2
    assert capsys.readouterr().err.startswith("error: ")


def test_config_not_utf8(tmp_path):
    path = tmp_path / "c.toml"
    path.write_bytes(b'name = "caf\xe9"\n[model]\nlayers = []\n')
    with pytest.raises(ConfigError, match=r"c\.toml: not UTF-8 text"):
        load_config(path)


# --- the estimator ---------------------------------------------------------------------------------


def _blobs(n: int = 60):
    rng = np.random.default_rng(0)
    y = np.arange(n) % 2
    return rng.normal(0, 1, (n, 4)).astype(np.float32) + y[:, None], y


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_estimator_refuses_non_finite_labels(bad):
    from mlplab.estimator import MLPClassifier

    X, y = _blobs()
    y = y.astype(float)
    y[5] = bad
    with pytest.raises(ValueError, match="NaN or infinite labels"):
        MLPClassifier(hidden_units=(4,), epochs=1).fit(X, y)
    labels = np.array(["a", "b"] * 30, dtype=object)
    labels[7] = float("nan")
    with pytest.raises(ValueError, match="NaN or infinite labels"):
        MLPClassifier(hidden_units=(4,), epochs=1).fit(X, labels)


@pytest.mark.parametrize("units", [2.7, 2.0, "8", True])
def test_estimator_refuses_non_integer_units(units):
    from mlplab.estimator import MLPClassifier

    X, y = _blobs()
    with pytest.raises(ValueError, match=r"hidden_units must be whole numbers of units, got"):
        MLPClassifier(hidden_units=(units,), epochs=1).fit(X, y)


def test_estimator_accepts_numpy_integer_units():
    from mlplab.estimator import MLPClassifier

    X, y = _blobs()
    clf = MLPClassifier(hidden_units=(np.int64(3),), epochs=1).fit(X, y)
    assert clf.model_.spec.layers[0].units == 3


# --- --dataset with unicode ------------------------------------------------------------------------


def test_train_on_a_folder_with_an_emoji_in_its_path(tmp_path, monkeypatch, capsys):
    from PIL import Image

    rng = np.random.default_rng(0)
    root = tmp_path / "f" / "emoji😀"
    for cls in ("a", "b"):
        (root / cls).mkdir(parents=True)
        for i in range(10):
            Image.fromarray(rng.integers(0, 256, (28, 28), dtype=np.uint8)).save(root / cls / f"{i}.png")
    monkeypatch.chdir(tmp_path)
    assert main(["data", "info", "folder:f/emoji😀"]) == 0
    code = main(["train", "tutorial-50-25", "--dataset", "folder:f/emoji😀", "--out", "run", "--verbose", "0",
                 "--set", "training.epochs=1"])
    assert code == 0, capsys.readouterr().err
    assert ExperimentConfig.model_validate(
        __import__("tomllib").loads((tmp_path / "run" / "config.toml").read_text("utf-8"))
    ).dataset == "folder:f/emoji😀"
