"""Progress as Keras shows it, written to a stream so that tests can capture it.

verbose=1: `Epoch 3/200` then a live bar over the batches (on a terminal; one line per epoch
otherwise, so logs and CI stay readable); verbose=2: one line per epoch; verbose=0: silent.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from mlplab.training.callbacks import Callback, RunningMetrics
from mlplab.training.state import TrainingState

_BAR_WIDTH = 20
_REFRESH_SECONDS = 0.1


def _format_duration(seconds: float) -> str:
    return f"{seconds:.0f}s" if seconds >= 10 else f"{seconds:.1f}s"


def _format_metrics(values: dict[str, Any]) -> str:
    keys = [k for k in ("loss", "accuracy", "val_loss", "val_accuracy") if k in values]
    return " - ".join(f"{k}: {values[k]:.4f}" for k in keys)


class ProgressPrinter(Callback):
    def __init__(self, verbose: int = 1, stream: TextIO | None = None) -> None:
        if verbose not in (0, 1, 2):
            raise ValueError(f"verbose must be 0, 1 or 2, got {verbose}")
        self.stream = stream if stream is not None else sys.stdout
        live = verbose == 1 and getattr(self.stream, "isatty", lambda: False)()
        self.mode = "bar" if live else ("line" if verbose else "silent")
        self._epoch_start = 0.0
        self._last_draw = 0.0

    def _write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()

    def on_epoch_begin(self, state: TrainingState) -> None:
        self._epoch_start = self._last_draw = time.perf_counter()
        if self.mode == "bar":
            self._write(f"Epoch {state.epoch + 1}/{state.config.epochs}\n")

    def on_batch_end(self, state: TrainingState, batch: int, running: RunningMetrics) -> None:
        if self.mode != "bar":
            return
        now = time.perf_counter()
        if now - self._last_draw < _REFRESH_SECONDS and batch < state.steps_per_epoch:
            return
        self._last_draw = now
        self._write("\r" + self._bar_line(state, batch, now - self._epoch_start, running.values()) + "\x1b[K")

    def _bar_line(self, state: TrainingState, batch: int, elapsed: float, values: dict[str, Any]) -> str:
        total = state.steps_per_epoch
        filled = int(_BAR_WIDTH * batch / total)
        bar = "━" * filled + ("╸" if filled < _BAR_WIDTH else "") + " " * max(_BAR_WIDTH - filled - 1, 0)
        per_step = elapsed / max(batch, 1) * 1000
        return f"{batch}/{total} {bar} {_format_duration(elapsed)} {per_step:.1f}ms/step - {_format_metrics(values)}"

    def on_epoch_end(self, state: TrainingState, row: dict[str, Any]) -> None:
        per_step = row["seconds"] / state.steps_per_epoch * 1000
        if self.mode == "bar":
            line = self._bar_line(state, state.steps_per_epoch, row["seconds"], row)
            self._write("\r" + line + "\x1b[K\n")
        elif self.mode == "line":
            self._write(
                f"Epoch {row['epoch']}/{state.config.epochs} - {_format_duration(row['seconds'])} - "
                f"{per_step:.1f}ms/step - {_format_metrics(row)}\n"
            )

    def on_train_end(self, state: TrainingState) -> None:
        if self.mode == "silent":
            return
        if state.stop_reason:
            self._write(f"Stopped: {state.stop_reason}\n")
        if state.history.restored and not state.interrupted:
            self._write(f"Restored the weights from the end of epoch {state.history.kept_epoch} (the best).\n")
