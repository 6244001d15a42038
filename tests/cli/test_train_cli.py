"""`mlplab summary / train / evaluate` as users run them, on slices of the real MNIST."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from mlplab.cli.main import main
from mlplab.runs import load_model
from mlplab.safeio import load_tensors


def run_cli(args, capsys):
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(("name", "total"), [("tutorial-50-25", "40,785"), ("tutorial-512-512", "669,706"), ("tutorial-128-64", "109,386")])
def test_summary_prints_the_keras_counts(capsys, name, total):
    code, out, _ = run_cli(["summary", name], capsys)
    assert code == 0 and f"Total params: {total}" in out
    code, out, _ = run_cli(["summary", name, "--json"], capsys)
    assert json.loads(out)["total_params"] == int(total.replace(",", ""))


def test_user_errors_are_one_line_and_non_zero(capsys, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[model]\nlayers = [{type = "dropout", rate = 1.5}]\n')
    for args, text in [
        (["summary", str(bad)], "model.layers[0].rate must be in [0, 1), got 1.5"),
        (["train", "tutorial-50-25", "--set", "training.epocs=3"], "training.epocs is not a known key"),
        (["train", "nope"], "no config file or shipped config named 'nope'"),
        (["train", "tutorial-50-25", "--device", "tpu"], "device must be auto, cpu or cuda"),
        (["evaluate", str(tmp_path)], "no model.json here"),
        (["train", "--resume", str(tmp_path)], "not an mlplab run directory"),
    ]:
        code, _, err = run_cli(args, capsys)
        assert code == 2, args
        assert err.startswith("error: ") and text in err and len(err.strip().splitlines()) == 1, err


def test_train_then_evaluate_reproduces_the_recorded_numbers(mnist_dir, tmp_path, capsys):
    out = tmp_path / "run"
    code, stdout, err = run_cli(
        ["train", "tutorial-50-25", "--limit", "3000", "--set", "training.epochs=2", "--out", str(out), "--verbose", "2"], capsys
    )
    assert code == 0, err
    assert "Epoch 2/2" in stdout and f"saved run: {out}" in stdout
    for name in ("run.json", "config.toml", "history.csv", "history.json", "checkpoint.safetensors", "model.safetensors", "model.json", "metrics.json"):
        assert (out / name).is_file(), name
    recorded = json.loads((out / "metrics.json").read_text())
    history = json.loads((out / "history.json").read_text())
    assert len(history["rows"]) == recorded["epochs_run"] == 2
    assert recorded["train_samples"] == 2700 and recorded["validation_samples"] == 300 and recorded["test_samples"] == 3000
    code, stdout, _ = run_cli(["evaluate", str(out), "--json"], capsys)
    result = json.loads(stdout)
    assert result["test_accuracy"] == recorded["test_accuracy"] and result["test_loss"] == recorded["test_loss"]
    code, stdout, _ = run_cli(["evaluate", str(out)], capsys)
    assert "matches the figures recorded at training time" in stdout
    assert load_model(out).description["dataset"]["name"] == "mnist"


def test_the_shipped_small_model_learns_mnist(mnist_dir, tmp_path, capsys):
    """Accuracy gate: 2 epochs on 10,000 real images must clear 90 % on 2,000 unseen test images."""
    code, _, err = run_cli(
        ["train", "tutorial-128-64", "--limit", "10000", "--set", "training.epochs=2", "--out", str(tmp_path / "r"), "--verbose", "0"], capsys
    )
    assert code == 0, err
    metrics = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert metrics["test_accuracy"] >= 0.90, metrics["test_accuracy"]


def test_existing_run_directory_is_never_overwritten(mnist_dir, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    code, _, err = run_cli(["train", "tutorial-50-25", "--limit", "500", "--out", str(out)], capsys)
    assert code == 2 and "already holds a run" in err
    assert (out / "precious.txt").read_text() == "keep me"


def test_non_finite_loss_exits_non_zero_and_keeps_good_weights(mnist_dir, tmp_path, capsys):
    out = tmp_path / "nan"
    code, _, err = run_cli(
        ["train", "tutorial-50-25", "--limit", "2000", "--out", str(out), "--verbose", "0",
         "--set", "training.optimizer.name=sgd", "--set", "training.optimizer.learning_rate=1e6",
         "--set", "training.epochs=4"], capsys,
    )
    assert code == 3, err
    assert "non-finite loss" in err and len(err.strip().splitlines()) == 1
    saved = load_model(out)  # loads: every weight finite
    assert all(torch.isfinite(t).all() for t in saved.model.state_dict().values())
    assert json.loads((out / "run.json").read_text())["status"] == "non_finite"


def _train_command(out: Path, epochs: int) -> list[str]:
    # No refit: the saved model must be the one the resumed training produced (a refit trains a
    # fresh model without interruption, and would hide a resume that restored the wrong state).
    return [sys.executable, "-m", "mlplab.cli.main", "train", "tutorial-128-64", "--limit", "6000",
            "--set", f"training.epochs={epochs}", "--set", "training.early_stopping.patience=50",
            "--set", "training.refit=false", "--out", str(out), "--verbose", "2",
            "--threads", "1"]  # the same thread count in every process: the same bits


def _assert_same_tensors(a_path: Path, b_path: Path) -> None:
    a, _ = load_tensors(a_path)
    b, _ = load_tensors(b_path)
    assert a.keys() == b.keys()
    differ = [k for k in a if not torch.equal(a[k], b[k])]
    assert not differ, f"{b_path.name}: {differ}"


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_saves_and_resume_matches_an_uninterrupted_run(mnist_dir, tmp_path, sig, capsys):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    straight = tmp_path / "straight"
    subprocess.run(_train_command(straight, 5), check=True, env=env, capture_output=True)

    out = tmp_path / "interrupted"
    proc = subprocess.Popen(_train_command(out, 5), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline:  # wait until two epochs are on disk, then interrupt
        history = out / "history.json"
        if history.is_file() and len(json.loads(history.read_text())["rows"]) >= 2:
            break
        time.sleep(0.02)
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=120)
    if proc.returncode == 0:
        pytest.skip("training finished before the signal arrived (machine too fast for this slice)")
    assert proc.returncode == {signal.SIGINT: 130, signal.SIGTERM: 143}[sig], stderr
    assert f"Resume with: mlplab train --resume {out}" in stderr and len(stderr.strip().splitlines()) == 1
    assert json.loads((out / "run.json").read_text())["status"] == "interrupted"
    assert not (out / "model.safetensors").exists()

    code, _, err = run_cli(["train", "--resume", str(out), "--verbose", "0"], capsys)
    assert code == 0, err
    # the saved weights bit for bit, and the whole final training state (weights after epoch 5,
    # optimizer moments, shuffle and dropout generators, early stopping's best weights)
    recorded = json.loads((straight / "metrics.json").read_text())
    assert recorded["refit"] is None and recorded["kept_epoch"] > 2  # so the kept weights come after the resume
    _assert_same_tensors(straight / "model.safetensors", out / "model.safetensors")
    _assert_same_tensors(straight / "checkpoint.safetensors", out / "checkpoint.safetensors")
    rows = json.loads((out / "history.json").read_text())["rows"]
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4, 5]
    straight_rows = json.loads((straight / "history.json").read_text())["rows"]
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        assert [r[key] for r in rows] == [r[key] for r in straight_rows], key
    code, _, err = run_cli(["train", "--resume", str(out)], capsys)
    assert code == 2 and "already finished" in err


def test_fashion_mnist_trains_unchanged(tmp_path, capsys):
    if not Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz").is_file():
        pytest.skip("Fashion-MNIST not installed (apt-get install dataset-fashion-mnist; .ci/run does it)")
    out = tmp_path / "fashion"
    code, _, err = run_cli(["train", "tutorial-50-25", "--dataset", "fashion-mnist", "--limit", "2000",
                            "--set", "training.epochs=2", "--out", str(out), "--verbose", "0"], capsys)
    assert code == 0, err
    saved = load_model(out)
    assert saved.class_names[0] == "T-shirt/top" and saved.description["dataset"]["name"] == "fashion-mnist"
    assert json.loads((out / "metrics.json").read_text())["test_accuracy"] > 0.5


def test_threads_option_sets_torchs_thread_count(mnist_dir, tmp_path, capsys):
    before = torch.get_num_threads()
    try:
        code, _, err = run_cli(["train", "tutorial-50-25", "--limit", "500", "--set", "training.epochs=1",
                                "--threads", "1", "--out", str(tmp_path / "t"), "--verbose", "0"], capsys)
        assert code == 0, err
        assert torch.get_num_threads() == 1
        runtime = json.loads((tmp_path / "t" / "run.json").read_text())["runtime"]
        assert runtime["threads"] == 1 and runtime["gradients"] == "hand-written"
        code, _, err = run_cli(["train", "tutorial-50-25", "--threads", "0"], capsys)
        assert code == 2 and "threads must be a positive integer or 'auto', got 0" in err
    finally:
        torch.set_num_threads(before)
