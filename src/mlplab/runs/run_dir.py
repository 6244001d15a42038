"""The run directory: where a training run keeps its config, history, checkpoint and model.

    run.json                what was run, on what, and how it ended (status)
    config.toml             the resolved config (overrides applied)
    history.csv / .json     one row per epoch, written as training goes
    checkpoint.safetensors  the full training state after the last completed epoch
    model.safetensors/.json the trained model and its description (when training ended)
    metrics.json            test loss and accuracy, per-class accuracy
    .lock                   held by the process writing the run (see mlplab.runs.lock)
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlplab.errors import ModelFileError, StorageError
from mlplab.runs.lock import LOCK_NAME, run_lock
from mlplab.safeio import atomic_write_text, read_json, write_json
from mlplab.training.callbacks import Callback
from mlplab.training.state import TrainingState


# What `--log-to` keeps beside a run by default (mlplab.tracking): neither makes the folder "hold
# a run", and --overwrite keeps them (TensorBoard hides the old run's epochs, MLflow keeps it as a run).
TRACKING_NAMES = ("tensorboard", "mlflow.db", "mlartifacts")


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

    @property
    def files(self) -> tuple[Path, ...]:
        """Every file a run writes (what `overwrite` removes; anything else in the folder is kept)."""
        names = ("model.safetensors", "model.json")
        return (self.run_json, self.config, self.history_csv, self.history_json, self.checkpoint, self.metrics,
                *(self.path / n for n in names))

    def holds_anything(self) -> bool:
        return self.path.is_dir() and any(p.name not in (LOCK_NAME, *TRACKING_NAMES) for p in self.path.iterdir())

    @contextlib.contextmanager
    def create(self, *, overwrite: bool = False) -> Iterator[None]:
        """Make the folder and hold its lock for the block; refuse one that already holds something.

        With `overwrite`, a folder holding an mlplab run (run.json) has that run's files removed;
        a folder holding anything else is never emptied.
        """
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"{self.path}: cannot create the run directory ({exc.strerror or exc})") from None
        with run_lock(self.path):
            if self.holds_anything():
                if not overwrite:
                    raise ModelFileError(
                        f"{self.path} already holds a run; choose another --out, continue it with "
                        f"`mlplab train --resume {self.path}`, or replace it with --overwrite"
                    )
                known = {p.name for p in self.files} | {LOCK_NAME, *TRACKING_NAMES}
                foreign = sorted(p.name for p in self.path.iterdir()
                                 if p.name not in known and not _leftover_temp(p.name))
                if foreign:
                    raise ModelFileError(
                        f"{self.path} holds files that are not an mlplab run's ({', '.join(foreign[:3])}); not overwriting it"
                    )
                for path in self.files:
                    path.unlink(missing_ok=True)
            yield

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the lock of an existing run folder for the block."""
        if not self.path.is_dir():
            raise ModelFileError(f"{self.path}: no such run directory")
        with run_lock(self.path):
            yield

    def read_info(self) -> dict[str, Any]:
        if not self.run_json.is_file():
            raise ModelFileError(f"{self.path}: not an mlplab run directory (no run.json)")
        return read_json(self.run_json)

    def update_info(self, **changes: Any) -> dict[str, Any]:
        info = read_json(self.run_json) if self.run_json.is_file() else {}
        info.update(changes)
        write_json(self.run_json, info)
        return info


def _leftover_temp(name: str) -> bool:
    """A temporary file of safeio.atomic_file left by a process that was killed mid-write."""
    return name.startswith(".") and name.endswith(".tmp")


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
