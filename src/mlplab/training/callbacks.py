"""Callbacks: small objects with no-op hooks. They stop training by setting a flag (Keras style).

A callback that must survive an interruption keeps its state in `state_dict()` (JSON-able values
plus named tensors), which the checkpoint saves and `load_state_dict` restores.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from mlplab.errors import ConfigError
from mlplab.training.config import EarlyStopping as EarlyStoppingConfig
from mlplab.training.state import TrainingState


class Callback:
    def on_train_begin(self, state: TrainingState) -> None: ...
    def on_epoch_begin(self, state: TrainingState) -> None: ...
    def on_batch_end(self, state: TrainingState, batch: int, running: "RunningMetrics") -> None: ...
    def on_epoch_end(self, state: TrainingState, row: dict[str, Any]) -> None: ...
    def on_train_end(self, state: TrainingState) -> None: ...

    def state_dict(self) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        return {}, {}

    def load_state_dict(self, values: dict[str, Any], tensors: dict[str, torch.Tensor]) -> None: ...


class RunningMetrics:
    """Sums kept as tensors during an epoch; read (`.item()`) only when someone looks."""

    def __init__(self, device: torch.device) -> None:
        self.loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        self.correct = torch.zeros((), dtype=torch.int64, device=device)
        self.seen = 0

    def update(self, loss: torch.Tensor, correct: torch.Tensor, batch_size: int) -> None:
        self.loss_sum.add_(loss, alpha=batch_size)  # one op: the float64 sum takes the float32 loss as is
        self.correct.add_(correct)
        self.seen += batch_size

    def values(self) -> dict[str, float]:
        if self.seen == 0:
            return {"loss": math.nan, "accuracy": math.nan}
        return {"loss": self.loss_sum.item() / self.seen, "accuracy": self.correct.item() / self.seen}


def _copy_weights(state: TrainingState) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in state.model.state_dict().items()}


class EarlyStopping(Callback):
    """Stop when `monitor` stops improving; by default restore the best epoch's weights at the end."""

    def __init__(self, config: EarlyStoppingConfig) -> None:
        self.config = config
        self.mode = config.resolved_mode
        self.best: float | None = None
        self.best_epoch: int | None = None
        self.wait = 0
        self.best_weights: dict[str, torch.Tensor] | None = None
        self.stopped_epoch: int | None = None

    def _improved(self, value: float) -> bool:
        if self.best is None:
            return True
        delta = self.config.min_delta
        return value < self.best - delta if self.mode == "min" else value > self.best + delta

    def on_epoch_end(self, state: TrainingState, row: dict[str, Any]) -> None:
        value = row.get(self.config.monitor)  # a known name (the config checks); fit checks the data for its own config
        if value is None:  # a callback built by hand for a fit without validation data
            raise ConfigError(f"early_stopping.monitor {self.config.monitor!r} is not computed (no validation data?)")
        if math.isfinite(value) and self._improved(value):
            self.best, self.best_epoch, self.wait = value, row["epoch"], 0
            if self.config.restore_best_weights:
                self.best_weights = _copy_weights(state)
            return
        self.wait += 1
        if self.wait >= self.config.patience:
            self.stopped_epoch = row["epoch"]
            state.stop_training = True
            state.stopped_by = "early_stopping"
            # best is None when every value so far was NaN or infinite
            best = "no finite value" if self.best is None else f"best {self.best:.4f} at epoch {self.best_epoch}"
            state.stop_reason = (
                f"early stopping: {self.config.monitor} did not improve for {self.config.patience} epochs ({best})"
            )

    def on_train_end(self, state: TrainingState) -> None:
        if state.interrupted:
            return
        if self.config.restore_best_weights and self.best_weights is not None:
            state.model.load_state_dict(self.best_weights)
            state.history.kept_epoch = self.best_epoch

    def state_dict(self) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        values = {"best": self.best, "best_epoch": self.best_epoch, "wait": self.wait, "stopped_epoch": self.stopped_epoch}
        return values, dict(self.best_weights or {})

    def load_state_dict(self, values: dict[str, Any], tensors: dict[str, torch.Tensor]) -> None:
        self.best, self.best_epoch = values["best"], values["best_epoch"]
        self.wait, self.stopped_epoch = values["wait"], values["stopped_epoch"]
        self.best_weights = dict(tensors) or None


class NanGuard(Callback):
    """A non-finite training or validation loss, or non-finite outputs, stops training and puts
    back the weights of the last good epoch.

    The epoch's training loss is an average over weights that changed during the epoch, so it can
    be finite while the weights at its end already give NaN: the end-of-epoch weights are also
    checked on the validation loss and on a probe of training rows (`state.extras["probe"]`, set
    by fit), and only weights that pass are kept as "last good".
    """

    def __init__(self) -> None:
        self.last_good: dict[str, torch.Tensor] | None = None

    def on_train_begin(self, state: TrainingState) -> None:
        self.last_good = _copy_weights(state)

    def on_epoch_end(self, state: TrainingState, row: dict[str, Any]) -> None:
        problem = _non_finite(state, row)
        if problem is None:
            self.last_good = _copy_weights(state)
            return
        assert self.last_good is not None  # set in on_train_begin
        state.model.load_state_dict(self.last_good)
        good = row["epoch"] - 1
        state.stop_training = True
        state.stopped_by = "non_finite"
        state.stop_reason = (
            f"non-finite {problem} in epoch {row['epoch']}; kept the weights from "
            + (f"the end of epoch {good}" if good else "initialisation")
            + " (try a lower learning rate)"
        )


def _non_finite(state: TrainingState, row: dict[str, Any]) -> str | None:
    """What is not finite after this epoch (None when all is well)."""
    for key, name in (("loss", "loss"), ("val_loss", "validation loss")):
        value = row.get(key)
        if value is not None and not math.isfinite(value):
            return f"{name} ({value})"
    probe = state.extras.get("probe")
    if probe is not None:
        with torch.no_grad(), state.runtime.autocast():
            outputs = state.model.predict_logits(probe, len(probe))
        if not bool(torch.isfinite(outputs).all()):
            return "outputs (the weights at the end of the epoch give NaN or infinity)"
    return None
