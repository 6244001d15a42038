"""Training: fit → run_epoch → train_step / evaluate, callbacks, history, device and precision.

Names are imported on first use: `mlplab.training.config` (what configs import) needs no torch,
and the command line imports torch only in the commands that compute.
"""

from __future__ import annotations

from mlplab._lazy import lazy_getattr
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

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
    "PackMember": "mlplab.training.pack", "fit_pack": "mlplab.training.pack", "pack_support": "mlplab.training.pack",
    "evaluate": "mlplab.training.loop", "fit": "mlplab.training.loop", "predict_outputs": "mlplab.training.loop",
    "run_epoch": "mlplab.training.loop", "train_step": "mlplab.training.loop",
    "ProgressPrinter": "mlplab.training.progress",
}

__all__ = sorted([*_LAZY, "standard_callbacks"])


__getattr__ = lazy_getattr(globals(), _LAZY, __name__)


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])


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
    from mlplab.training.callbacks import EarlyStopping, NanGuard
    from mlplab.training.checkpoint import Checkpoint
    from mlplab.training.progress import ProgressPrinter

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
