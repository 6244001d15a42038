"""`mlplab train --seeds N`: one run directory per seed, trained as one pack, as if each were alone."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from mlplab.cli.main import main
from mlplab.runs import load_model


def _train(args, capsys):
    code = main(["train", "tutorial-128-64", "--limit", "1500", "--epochs", "2", "--verbose", "0", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_each_seed_gets_the_run_directory_a_solo_run_writes(mnist_dir, tmp_path, capsys):
    code, out, err = _train(["--seeds", "3", "--seed", "4", "--out", str(tmp_path / "pack")], capsys)
    assert code == 0, err
    runs = sorted(p.name for p in (tmp_path / "pack").iterdir())
    assert runs == ["tutorial-128-64-seed4", "tutorial-128-64-seed5", "tutorial-128-64-seed6"]
    code, _, err = _train(["--seed", "5", "--out", str(tmp_path / "solo")], capsys)
    assert code == 0, err
    packed, solo = tmp_path / "pack" / "tutorial-128-64-seed5", tmp_path / "solo"
    assert sorted(p.name for p in packed.iterdir()) == sorted(p.name for p in solo.iterdir())
    packed_info, solo_info = (json.loads((d / "run.json").read_text()) for d in (packed, solo))
    assert packed_info["pack"]["size"] == 3 and "pack" not in solo_info
    assert packed_info["config"] == solo_info["config"] and packed_info["status"] == solo_info["status"] == "finished"
    packed_metrics, solo_metrics = (json.loads((d / "metrics.json").read_text()) for d in (packed, solo))
    assert abs(packed_metrics["test_accuracy"] - solo_metrics["test_accuracy"]) <= 0.001
    assert packed_metrics["refit"]["epochs"] == solo_metrics["refit"]["epochs"]  # the refits were packed too
    packed_rows, solo_rows = (json.loads((d / "history.json").read_text())["rows"] for d in (packed, solo))
    assert np.allclose([r["val_accuracy"] for r in packed_rows], [r["val_accuracy"] for r in solo_rows], atol=0.001)
    assert load_model(packed).model is not None


def test_seeds_cannot_be_combined_with_resume(tmp_path, capsys):
    code = main(["train", "--resume", str(tmp_path), "--seeds", "2"])
    assert code != 0 and "--seeds" in capsys.readouterr().err


@pytest.mark.slow
def test_ctrl_c_saves_every_member_and_each_resumes(mnist_dir, tmp_path, capsys):
    out = tmp_path / "pack"
    command = [sys.executable, "-m", "mlplab.cli.main", "train", "tutorial-128-64", "--limit", "6000", "--seeds", "2",
               "--set", "training.epochs=5", "--set", "training.early_stopping.patience=50",
               "--set", "training.refit=false", "--out", str(out), "--verbose", "2", "--threads", "1"]
    proc = subprocess.Popen(command, env={**os.environ, "PYTHONUNBUFFERED": "1"}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    history = out / "tutorial-128-64-seed1" / "history.json"
    deadline = time.time() + 120
    while time.time() < deadline:  # two epochs on disk, then Ctrl-C
        if history.is_file() and len(json.loads(history.read_text())["rows"]) >= 2:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    if proc.returncode == 0:
        pytest.skip("training finished before the signal arrived (machine too fast for this slice)")
    assert proc.returncode == 130, stderr
    assert len(stderr.strip().splitlines()) == 1 and "mlplab train --resume" in stderr
    before = {}
    for seed in (0, 1):
        run = out / f"tutorial-128-64-seed{seed}"
        assert json.loads((run / "run.json").read_text())["status"] == "interrupted"
        assert (run / "checkpoint.safetensors").is_file() and not (run / "model.safetensors").exists()
        before[seed] = json.loads((run / "history.json").read_text())["rows"]
    for seed in (0, 1):
        run = out / f"tutorial-128-64-seed{seed}"
        assert main(["train", "--resume", str(run), "--verbose", "0"]) == 0, capsys.readouterr().err
        rows = json.loads((run / "history.json").read_text())["rows"]
        assert [r["epoch"] for r in rows] == [1, 2, 3, 4, 5]
        assert [r["val_loss"] for r in rows[: len(before[seed])]] == [r["val_loss"] for r in before[seed]]
        assert load_model(run).model is not None
