"""Training: fit → run_epoch → train_step / evaluate, callbacks, history, device and precision."""

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


def standard_callbacks(config: TrainingConfig, *, checkpoint_path=None, verbose: int = 1, stream=None) -> list[Callback]:
    """The usual callbacks in their working order: NaN guard, early stopping, checkpoint, progress."""
    callbacks: list[Callback] = [NanGuard()]
    if config.early_stopping is not None:
        callbacks.append(EarlyStopping(config.early_stopping))
    if checkpoint_path is not None:
        callbacks.append(Checkpoint(checkpoint_path, callbacks))
    callbacks.append(ProgressPrinter(verbose, stream))
    return callbacks
