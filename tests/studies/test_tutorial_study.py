"""`reproduce` run again into the same folder continues: finished runs reused, an interrupted one
resumed (ending as a straight run would), a run of another config refused unless overwritten."""

from __future__ import annotations

import os
import signal

import pytest

from mlplab.errors import ConfigError, TrainingError
from mlplab.runs import HistoryWriter
from mlplab.studies import reproduce

MODELS = ("tutorial-50-25", "tutorial-128-64")
QUICK = {"limit": 600, "max_epochs": 2, "models": MODELS, "verbose": 0}


def weights(out, name):
    return (out / "runs" / f"{name}-seed0" / "model.safetensors").read_bytes()


def test_an_interrupted_reproduce_continues_where_it_stopped(mnist_dir, tmp_path, monkeypatch):
    reproduce(tmp_path / "straight", print_fn=lambda s: None, **QUICK)

    original = HistoryWriter.on_epoch_end

    def ctrl_c_in_the_second_model(self, state, row):  # a real SIGINT during 128-64's first epoch
        original(self, state, row)
        if state.model.spec.layers[0].units == 128 and row["epoch"] == 1:
            os.kill(os.getpid(), signal.SIGINT)

    out = tmp_path / "study"
    with monkeypatch.context() as patch:
        patch.setattr(HistoryWriter, "on_epoch_end", ctrl_c_in_the_second_model)
        with pytest.raises(TrainingError) as stopped:
            reproduce(out, print_fn=lambda s: None, **QUICK)
    assert stopped.value.exit_code == 130 and "--resume" in str(stopped.value)
    first = out / "runs" / "tutorial-50-25-seed0" / "model.safetensors"
    first_mtime = first.stat().st_mtime_ns

    printed: list[str] = []
    artefacts = reproduce(out, print_fn=printed.append, **QUICK)
    assert artefacts["report_html"].is_file()
    assert any("reusing the finished run" in line for line in printed)
    assert any("resuming the unfinished run" in line for line in printed)
    assert first.stat().st_mtime_ns == first_mtime  # reused, not trained again
    for name in MODELS:
        assert weights(out, name) == weights(tmp_path / "straight", name), name

    with pytest.raises(ConfigError, match="holds a run of another config .*training.epochs: 2 -> 1"):
        reproduce(out, print_fn=lambda s: None, **{**QUICK, "max_epochs": 1})
    reproduce(out, print_fn=lambda s: None, overwrite=True, **{**QUICK, "max_epochs": 1})
    assert first.stat().st_mtime_ns != first_mtime
