"""Training: fit → run_epoch → train_step / evaluate, callbacks, history, device and precision."""

from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from mlplab.training.callbacks import Callback, EarlyStopping, NanGuard
from mlplab.training.checkpoint import Checkpoint
from mlplab.training.config import TrainingConfig
from mlplab.training.device import Runtime, resolve_runtime
from mlplab.training.history import History
from mlplab.training.loop import evaluate, fit, predict_outputs, run_epoch, train_step
from mlplab.training.progress import ProgressPrinter

__all__ = [
    "Callback", "Checkpoint", "EarlyStopping", "History", "NanGuard", "ProgressPrinter", "Runtime",
    "TrainingConfig", "evaluate", "fit", "predict_outputs", "resolve_runtime", "run_epoch", "train_step",
    "standard_callbacks",
]


def standard_callbacks(
    config: TrainingConfig,
    *,
    checkpoint_path: str | Path | None = None,
    checkpoint_extra: dict[str, Any] | None = None,
    extra: Sequence[Callback] = (),
    verbose: int = 1,
    stream: TextIO | None = None,
) -> list[Callback]:
    """The callbacks of a training run, in their working order (the one place they are assembled).

    NaN guard, early stopping (when configured), checkpoint (with a path; `checkpoint_extra` is
    saved in it), then `extra` (the run layer's history writer, a caller's own), then progress.
    The checkpoint comes after early stopping, so that a decision to stop is in the file.
    """
    callbacks: list[Callback] = [NanGuard()]
    if config.early_stopping is not None:
        callbacks.append(EarlyStopping(config.early_stopping))
    checkpoint = Checkpoint(Path(checkpoint_path), extra=checkpoint_extra) if checkpoint_path is not None else None
    if checkpoint is not None:
        callbacks.append(checkpoint)
    callbacks.extend(extra)
    callbacks.append(ProgressPrinter(verbose, stream))
    if checkpoint is not None:
        checkpoint.watch(callbacks)  # its file holds every callback's state
    return callbacks
