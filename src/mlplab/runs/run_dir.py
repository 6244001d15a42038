"""The run directory: where a training run keeps its config, history, checkpoint and model.

    run.json                what was run, on what, and how it ended (status)
    config.toml             the resolved config (overrides applied)
    history.csv / .json     one row per epoch, written as training goes
    checkpoint.safetensors  the full training state after the last completed epoch
    model.safetensors/.json the trained model and its description (when training ended)
    metrics.json            test loss and accuracy, per-class accuracy
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlplab.errors import ModelFileError
from mlplab.safeio import atomic_write_text, read_json, write_json
from mlplab.training.callbacks import Callback
from mlplab.training.state import TrainingState


RUN_FILES = ("run.json", "config.toml", "history.csv", "history.json", "checkpoint.safetensors",
             "model.safetensors", "model.json", "metrics.json")


@dataclass(frozen=True)
class RunDir:
    path: Path

    @property
    def run_json(self) -> Path:
        return self.path / "run.json"

    @property
    def config(self) -> Path:
        return self.path / "config.toml"

    @property
    def history_csv(self) -> Path:
        return self.path / "history.csv"

    @property
    def history_json(self) -> Path:
        return self.path / "history.json"

    @property
    def checkpoint(self) -> Path:
        return self.path / "checkpoint.safetensors"

    @property
    def metrics(self) -> Path:
        return self.path / "metrics.json"

    def create(self, *, overwrite: bool = False) -> None:
        """Make the folder; with `overwrite`, first delete the files of the run it holds (nothing else)."""
        if self.path.exists() and any(self.path.iterdir()):
            if not overwrite:
                raise ModelFileError(
                    f"{self.path} already holds a run; choose another --out, continue it with "
                    f"`mlplab train --resume {self.path}`, or replace it with --overwrite"
                )
            if not self.run_json.is_file():
                raise ModelFileError(f"{self.path} is not empty and holds no mlplab run; refusing to overwrite it")
            for name in RUN_FILES:  # a stale checkpoint or model must not outlive the run it belonged to
                (self.path / name).unlink(missing_ok=True)
        self.path.mkdir(parents=True, exist_ok=True)

    def read_info(self) -> dict[str, Any]:
        if not self.run_json.is_file():
            raise ModelFileError(f"{self.path}: not an mlplab run directory (no run.json)")
        return read_json(self.run_json)

    def update_info(self, **changes: Any) -> dict[str, Any]:
        info = read_json(self.run_json) if self.run_json.is_file() else {}
        info.update(changes)
        write_json(self.run_json, info)
        return info


class HistoryWriter(Callback):
    """Writes history.csv and history.json after every epoch, so a crash loses at most one epoch."""

    def __init__(self, run: RunDir) -> None:
        self.run = run

    def _write(self, state: TrainingState) -> None:
        atomic_write_text(self.run.history_csv, state.history.to_csv())
        write_json(self.run.history_json, state.history.to_json())

    def on_epoch_end(self, state: TrainingState, row: dict[str, Any]) -> None:
        self._write(state)

    def on_train_end(self, state: TrainingState) -> None:
        self._write(state)
