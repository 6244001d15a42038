"""Training: fit → run_epoch → train_step / evaluate, callbacks, history, device and precision.

Names are imported on first use: `mlplab.training.config` (what configs import) needs no torch,
and the command line imports torch only in the commands that compute.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from mlplab.training.callbacks import Callback
    from mlplab.training.config import TrainingConfig

_LAZY = {
    "Callback": "mlplab.training.callbacks", "EarlyStopping": "mlplab.training.callbacks",
    "NanGuard": "mlplab.training.callbacks",
    "Checkpoint": "mlplab.training.checkpoint",
    "TrainingConfig": "mlplab.training.config",
    "Runtime": "mlplab.training.device", "resolve_runtime": "mlplab.training.device",
    "History": "mlplab.training.history",
    "evaluate": "mlplab.training.loop", "fit": "mlplab.training.loop", "predict_outputs": "mlplab.training.loop",
    "run_epoch": "mlplab.training.loop", "train_step": "mlplab.training.loop",
    "ProgressPrinter": "mlplab.training.progress",
}

__all__ = sorted([*_LAZY, "standard_callbacks"])


def __getattr__(name: str) -> object:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'mlplab.training' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])


def standard_callbacks(config: TrainingConfig, *, checkpoint_path=None, verbose: int = 1, stream=None) -> list[Callback]:
    """The usual callbacks in their working order: NaN guard, early stopping, checkpoint, progress."""
    from mlplab.training.callbacks import EarlyStopping, NanGuard
    from mlplab.training.checkpoint import Checkpoint
    from mlplab.training.progress import ProgressPrinter

    callbacks: list[Callback] = [NanGuard()]
    if config.early_stopping is not None:
        callbacks.append(EarlyStopping(config.early_stopping))
    if checkpoint_path is not None:
        callbacks.append(Checkpoint(checkpoint_path, callbacks))
    callbacks.append(ProgressPrinter(verbose, stream))
    return callbacks
