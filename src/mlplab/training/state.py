"""Everything a training run is made of at an epoch boundary, so it can be saved and resumed."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from mlplab.model.build import MLP
from mlplab.training.augment import Augmenter
from mlplab.training.config import TrainingConfig
from mlplab.training.device import Runtime
from mlplab.training.ema import WeightAverage
from mlplab.training.flat_optim import WeightCopy, update_together
from mlplab.training.gradients import Gradients
from mlplab.training.history import History
from mlplab.training.optim import AnyOptimizer


@dataclass
class TrainingState:
    model: MLP
    parameters: torch.Tensor  # every trainable parameter, flattened (the model's are views into it)
    optimizer: AnyOptimizer
    config: TrainingConfig
    runtime: Runtime
    gradients: Gradients  # (x, y) -> (mean loss, number correct); fills the parameters' .grad
    history: History
    generator: torch.Generator  # shuffling (dropout layers carry their own generators)
    steps_per_epoch: int
    epoch: int = 0  # epochs completed
    step: int = 0  # optimizer steps taken
    stop_training: bool = False  # set by callbacks to stop after the current epoch
    stop_reason: str | None = None
    stopped_by: str | None = None  # "early_stopping" or "non_finite" when a callback stopped training
    interrupted: str | None = None  # name of the signal that interrupted training mid-epoch
    extras: dict = field(default_factory=dict)
    augmenter: Augmenter | None = None  # distorts training batches; its generator is in checkpoints
    ema: WeightAverage | None = None  # the averaged weights (the model holds them between epochs)
    weight_copy: WeightCopy | None = None  # the bf16 step's copy of the weights, which its products read

    def apply_update(self) -> None:
        """One optimizer step, then the max-norm constraint, then the bf16 copy of the new weights, then
        the weight average; mlplab's flat optimizers skip torch.optim's per-step hooks."""
        update = getattr(self.optimizer, "update", None)
        if update is not None:
            update()
        else:
            self.optimizer.step()
        self.after_update()

    def after_update(self) -> None:
        """What follows every optimizer step, in this order: max-norm, the bf16 copy, the weight average."""
        if self.config.max_norm is not None:
            apply_max_norm(self.model, self.config.max_norm)
        if self.weight_copy is not None:
            self.weight_copy.refresh()
        if self.ema is not None:
            self.ema.update()

    @property
    def total_steps(self) -> int:
        return self.steps_per_epoch * self.config.epochs


def apply_updates(states: Sequence[TrainingState]) -> None:
    """`apply_update` for several runs at once (a pack's members, each with a flat optimizer): the
    optimizers step in one kernel call per group of equal hyper-parameters (`update_together`),
    with the same results as one call each."""
    update_together([state.optimizer for state in states])
    for state in states:
        state.after_update()


@torch.no_grad()
def apply_max_norm(model: torch.nn.Module, max_norm: float) -> None:
    """Scale each unit's incoming weights (a row of each Linear's weight) down to L2 norm `max_norm`."""
    for module in model.modules():
        if isinstance(module, torch.nn.Linear):
            module.weight.renorm_(2, 0, max_norm)
