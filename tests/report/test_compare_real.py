"""`mlplab compare` on real runs (tiny slices of MNIST and Fashion-MNIST, one epoch): runs grouped
by config with distinct seeds, duplicates and mixed datasets refused in one line, published figures
only beside MNIST runs, and the Data section filled from the real dataset."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from mlplab.cli.main import main

FASHION_FILE = Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")
LIMIT = "300"


def _train(out: Path, *, seed: int, dataset: str = "mnist") -> Path:
    code = main(["train", "tutorial-50-25", "--dataset", dataset, "--limit", LIMIT, "--seed", str(seed),
                 "--set", "training.epochs=1", "--out", str(out), "--verbose", "0", "--threads", "1"])
    assert code == 0
    return out


@pytest.fixture(scope="module")
def runs(mnist_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    return {"m0": _train(root / "m0", seed=0), "m1": _train(root / "m1", seed=1)}


@pytest.fixture(scope="module")
def fashion_run(runs):
    if not FASHION_FILE.is_file():
        pytest.skip("Fashion-MNIST not installed (apt-get install dataset-fashion-mnist; .ci/run does it)")
    return _train(runs["m0"].parent / "f0", seed=0, dataset="fashion-mnist")


def _compare(paths, out, *extra):
    return main(["compare", *map(str, paths), "--out", str(out), *extra])


def test_two_seeds_of_one_config_make_one_row_with_the_data_section(runs, tmp_path, capsys):
    assert _compare([runs["m0"], runs["m1"]], tmp_path) == 0
    doc = json.loads((tmp_path / "summary.json").read_text())
    (row,) = doc["models"]
    assert (row["model"], row["seeds"], row["dataset"]) == ("tutorial-50-25", 2, "mnist (first 300 images)")
    assert row["published_accuracy"] == 0.9655 and row["epochs_limit"] == 1
    assert row["epochs_run_ci_low"] == row["epochs_run_ci_high"] == 1.0  # both stopped at the only epoch
    assert 0.0 <= row["test_accuracy_ci_low"] <= row["test_accuracy_ci_high"] <= 1.0
    (data,) = doc["datasets"]
    metrics = json.loads((runs["m0"] / "metrics.json").read_text())
    assert data["name"] == "mnist" and data["checksum_verified"] is True and data["limit"] == 300
    assert (data["train_images"], data["test_images"]) == (300, 300)
    assert data["fit_validation_splits"] == [{"fit": metrics["train_samples"], "validation": metrics["validation_samples"]}]
    page = (tmp_path / "report.html").read_text()
    assert "1 model, 2 runs on mnist (first 300 images)" in page and "Keras tutorial" in page
    assert "These runs used only part of the dataset" in capsys.readouterr().out


def test_the_same_run_twice_or_a_copy_is_refused(runs, tmp_path, capsys):
    assert _compare([runs["m0"], runs["m0"]], tmp_path / "a") == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "given twice" in err and err.count("\n") == 1
    copy = tmp_path / "copy"
    shutil.copytree(runs["m0"], copy)
    assert _compare([runs["m0"], copy], tmp_path / "b") == 2
    err = capsys.readouterr().err
    assert "same seed 0" in err and str(copy) in err and err.count("\n") == 1
    assert not (tmp_path / "b" / "report.html").exists()


def test_mixed_datasets_only_when_asked(runs, fashion_run, tmp_path, capsys):
    assert _compare([runs["m0"], fashion_run], tmp_path / "no") == 2
    err = capsys.readouterr().err
    assert "different datasets" in err and "--allow-mixed-datasets" in err and err.count("\n") == 1
    assert _compare([runs["m0"], fashion_run], tmp_path / "yes", "--allow-mixed-datasets") == 0
    rows = {r["model"]: r for r in json.loads((tmp_path / "yes" / "summary.json").read_text())["models"]}
    assert rows["tutorial-50-25 · mnist"]["published_accuracy"] == 0.9655
    assert rows["tutorial-50-25 · fashion-mnist"]["published_accuracy"] is None


def test_fashion_alone_shows_no_published_column(fashion_run, tmp_path, capsys):
    assert _compare([fashion_run], tmp_path) == 0
    out = capsys.readouterr().out
    assert "published" not in out.lower() and "96.55" not in out
    page = (tmp_path / "report.html").read_text()
    assert "96.55" not in page and "Keras tutorial" not in page
