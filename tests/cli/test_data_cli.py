"""`mlplab data ...` through the real entry point, on the real MNIST."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from mlplab.cli.main import main


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_info_json_reports_the_tutorial_numbers(capsys, data_dir):
    code, out, _ = run(capsys, "data", "info", "mnist", "--json", "--data-dir", str(data_dir))
    assert code == 0
    facts = json.loads(out)
    assert facts["first_train_label"] == 5
    assert facts["first_train_image_mean"] == 35.108418
    assert facts["train"]["class_counts"] == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert facts["train"]["images"] == {"shape": [60000, 28, 28], "dtype": "uint8"}
    assert facts["test"]["labels"] == {"shape": [10000], "dtype": "int64"}
    assert facts["pixel_range"] == [0, 255] and facts["num_classes"] == 10
    assert facts["source"].endswith("(verified sha256)")


def test_info_text(capsys, data_dir):
    code, out, _ = run(capsys, "data", "info", "mnist")  # found through MLPLAB_DATA_DIR
    assert code == 0
    assert "x_train (60000, 28, 28) uint8" in out and "first training label: 5" in out
    assert "first training image mean pixel: 35.108418" in out and "pixel range: 0-255" in out
    classes = [line.split() for line in out.splitlines() if "train " in line and "test " in line]
    assert [row[:3] for row in classes] == [[str(k), "train", str(n)] for k, n in
                                            enumerate([5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949])]


def test_info_names_classes_that_are_not_their_label(capsys, tmp_path):
    images = np.zeros((4, 6, 6), np.uint8)
    np.savez(tmp_path / "d.npz", x_train=images, y_train=np.array([0, 1, 1, 0]), x_test=images[:2],
             y_test=np.array([0, 1]), class_names=np.array(["cat", "dog"]))
    code, out, err = run(capsys, "data", "info", f"npz:{tmp_path / 'd.npz'}")
    assert code == 0, err
    assert "  0 cat  train      2  test      1" in out and "  1 dog  train      2  test      1" in out


def test_show_first_digit(capsys, data_dir, mnist, tmp_path):
    out_file = tmp_path / "deep" / "first.png"
    code, out, _ = run(capsys, "data", "show", "mnist", "--index", "0", "--out", str(out_file))
    assert code == 0 and out.strip() == f"wrote {out_file}"
    with Image.open(out_file) as img:
        assert img.format == "PNG" and min(img.size) >= 200
        pixels = np.asarray(img.convert("L"))
    assert pixels.min() < 20 and pixels.max() > 235  # a white digit on black, as imshow(cmap="gray") draws it


def test_show_grid_of_test_images(capsys, data_dir, tmp_path):
    code, _, _ = run(capsys, "data", "show", "mnist", "--split", "test", "--grid", "2x3", "--out", str(tmp_path / "g.png"))
    assert code == 0 and (tmp_path / "g.png").stat().st_size > 0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["data", "show", "mnist", "--index", "60000", "--out", "x.png"], "error: mnist train has 60000 images"),
        (["data", "show", "mnist", "--out", "x.nope"], "cannot write .nope files"),
        (["data", "info", "cifar"], "error: unknown dataset 'cifar'"),
        (["data", "info", "npz:/no/such.npz"], "error: /no/such.npz: file not found"),
        (["data", "fetch", "npz:x.npz"], "nothing to fetch"),
        (["data", "show", "mnist", "--grid", "2y3", "--out", "x.png"], "ROWSxCOLS"),
    ],
)
def test_user_errors_are_one_line_and_exit_2(capsys, data_dir, tmp_path, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, *argv)
    assert code == 2 and message in err and "Traceback" not in err


def test_missing_dataset_without_download(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("MLPLAB_CACHE_DIR", str(tmp_path / "cache"))
    code, _, err = run(capsys, "data", "info", "kmnist", "--data-dir", str(tmp_path), "--no-download")
    assert code == 2 and err.startswith("error: dataset kmnist not found")


def test_list(capsys, data_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("MLPLAB_CACHE_DIR", str(tmp_path / "cache"))
    code, out, _ = run(capsys, "data", "list", "--data-dir", str(data_dir))
    assert code == 0
    assert f"{data_dir / 'mnist'} (--data-dir)" in out
    assert "missing: `mlplab data fetch kmnist`" in out or "kmnist" in out


def test_fetch_verifies_what_is_already_cached(capsys, data_dir, tmp_path, monkeypatch):
    # (tests/cli/conftest.py defines its own mnist_dir: the data root, not its mnist folder)
    monkeypatch.setenv("MLPLAB_CACHE_DIR", str(tmp_path / "cache"))
    shutil.copytree(data_dir / "mnist", tmp_path / "cache" / "mnist")
    code, out, err = run(capsys, "data", "fetch", "mnist")
    assert code == 0, err
    assert out.count("cached (verified)") == 4


@pytest.mark.parametrize("command", ["list", "info", "show", "fetch"])
def test_help_shows_every_default(capsys, monkeypatch, command):
    monkeypatch.setenv("COLUMNS", "300")  # one line per option
    code, out, _ = run(capsys, "data", command, "--help")
    assert code == 0
    rows = [line for line in out.splitlines() if line.lstrip("│ *").startswith("--") and "--help" not in line]
    assert rows
    for row in rows:
        assert "[default: " in row or "[required]" in row, row


def test_show_augmented_training_samples(capsys, data_dir, mnist, tmp_path):
    config = tmp_path / "aug.toml"
    config.write_text('name = "aug"\n[model]\nlayers = []\n[training.augment]\nshift = 2.0\nrotate = 15.0\nelastic_alpha = 30.0\nelastic_sigma = 4.0\n')
    plain, augmented = tmp_path / "plain.png", tmp_path / "aug.png"
    assert run(capsys, "data", "show", "mnist", "--grid", "2x4", "--out", str(plain))[0] == 0
    code, out, err = run(capsys, "data", "show", "mnist", "--grid", "2x4", "--augment", str(config), "--out", str(augmented))
    assert code == 0 and out.strip() == f"wrote {augmented}", err
    with Image.open(plain) as a, Image.open(augmented) as b:
        assert a.size == b.size
        assert np.abs(np.asarray(a.convert("L"), float) - np.asarray(b.convert("L"), float)).mean() > 1.0


@pytest.mark.parametrize("argv, message", [
    (["--split", "test"], "training images only"),
    (["--augment", "no-such-config"], "no config file or shipped config"),
])
def test_show_augment_errors(capsys, data_dir, tmp_path, argv, message):
    if "--augment" not in argv:
        config = tmp_path / "aug.toml"
        config.write_text('name = "aug"\n[model]\nlayers = []\n[training.augment]\nshift = 2.0\n')
        argv = [*argv, "--augment", str(config)]
    code, _, err = run(capsys, "data", "show", "mnist", "--out", str(tmp_path / "x.png"), *argv)
    assert code != 0 and message in err


def test_show_augment_refuses_a_config_without_augmentation(capsys, data_dir, tmp_path):
    config = tmp_path / "plain.toml"
    config.write_text('name = "plain"\n[model]\nlayers = []\n')
    code, _, err = run(capsys, "data", "show", "mnist", "--augment", str(config), "--out", str(tmp_path / "x.png"))
    assert code != 0 and "training.augment is off" in err and len(err.strip().splitlines()) == 1
