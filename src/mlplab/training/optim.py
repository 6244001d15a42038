"""Optimizers with Keras's defaults and formulas, and learning-rate schedules by step."""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch

from mlplab.training.config import SGD, Adam, AdamW, Optimizer, RMSprop, Schedule
from mlplab.training.flat_optim import (
    FlatAdam, FlatOptimizer, FlatRMSprop, FlatSGD, fused_adam_available, fused_sgd_available,
)

# What make_optimizer returns: mlplab's flat optimizers where they apply, torch.optim's otherwise;
# both have param_groups, state_dict() / load_state_dict() and step().
AnyOptimizer = FlatOptimizer | torch.optim.Optimizer


def _fused_kwargs(params: list[torch.Tensor]) -> dict:
    # One fused kernel per step instead of a loop of small ops per tensor; available on CPU and CUDA
    # in torch >= 2.4 for Adam, AdamW and SGD.
    return {"fused": True} if all(p.dtype == torch.float32 for p in params) else {}


def flatten_parameters(model: torch.nn.Module) -> torch.Tensor:
    """Move every trainable parameter (and its gradient) into one contiguous buffer; return it.

    The parameters become views into the buffer, so the model works as before, while the
    optimizer updates a single tensor: a handful of vectorised ops per step instead of a handful
    per weight and bias. For small MLPs that per-tensor overhead costs more than the update itself.
    Keeping `.grad` defined (never set to None) makes autograd accumulate into the views in place.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the model has no trainable parameters")
    flat = torch.nn.Parameter(torch.cat([p.detach().reshape(-1) for p in params]))
    flat.grad = torch.zeros_like(flat)
    offset = 0
    for p in params:
        n = p.numel()
        p.data = flat.data[offset : offset + n].view_as(p)
        p.grad = flat.grad[offset : offset + n].view_as(p)
        offset += n
    return flat


def make_optimizer(parameters: Iterable[torch.Tensor], config: Optimizer) -> AnyOptimizer:
    params = [p for p in parameters if p.requires_grad]
    flat = len(params) == 1 and params[0].dtype == torch.float32 and fused_adam_available()
    if isinstance(config, RMSprop) and config.momentum == 0 and flat and config.rho <= FlatRMSprop.MAX_RHO:
        return FlatRMSprop(params, lr=config.learning_rate, rho=config.rho, eps=config.epsilon,
                           weight_decay=config.weight_decay)
    if isinstance(config, (Adam, AdamW)) and flat:
        return FlatAdam(params, lr=config.learning_rate, betas=(config.beta_1, config.beta_2), eps=config.epsilon,
                        weight_decay=config.weight_decay, decoupled=isinstance(config, AdamW))
    if isinstance(config, SGD) and flat and fused_sgd_available():
        return FlatSGD(params, lr=config.learning_rate, momentum=config.momentum, nesterov=config.nesterov,
                       weight_decay=config.weight_decay)
    if isinstance(config, RMSprop):
        # Keras and torch share RMSprop's update (epsilon outside the square root); Keras's rho is torch's alpha.
        return torch.optim.RMSprop(
            params, lr=config.learning_rate, alpha=config.rho, eps=config.epsilon,
            momentum=config.momentum, weight_decay=config.weight_decay, foreach=True,
        )
    if isinstance(config, Adam):
        return torch.optim.Adam(
            params, lr=config.learning_rate, betas=(config.beta_1, config.beta_2), eps=config.epsilon,
            weight_decay=config.weight_decay, **_fused_kwargs(params),
        )
    if isinstance(config, AdamW):
        return torch.optim.AdamW(
            params, lr=config.learning_rate, betas=(config.beta_1, config.beta_2), eps=config.epsilon,
            weight_decay=config.weight_decay, **_fused_kwargs(params),
        )
    if isinstance(config, SGD):
        return torch.optim.SGD(
            params, lr=config.learning_rate, momentum=config.momentum, nesterov=config.nesterov,
            weight_decay=config.weight_decay, **_fused_kwargs(params),
        )
    raise ValueError(f"unknown optimizer {config!r}")


def warmup_steps(schedule: Schedule, steps_per_epoch: int) -> int:
    """How many of the first steps warm up (`warmup_epochs`, rounded to whole steps, at least one)."""
    if schedule.warmup_epochs <= 0:
        return 0
    return max(1, round(schedule.warmup_epochs * steps_per_epoch))


def learning_rate_at(schedule: Schedule, base_lr: float, step: int, steps_per_epoch: int, total_steps: int) -> float:
    """The learning rate for optimizer step `step` (0-based) of `total_steps`."""
    warm = warmup_steps(schedule, steps_per_epoch)
    if step < warm:  # linear: base/warm, 2·base/warm, …, base at the first step after it
        return base_lr * (step + 1) / warm
    if schedule.name == "constant":
        return base_lr
    if schedule.name == "step":  # epochs still count from the start: the warm-up takes the first ones' place
        return base_lr * schedule.gamma ** (step // (schedule.step_size * steps_per_epoch))
    if schedule.name == "cosine":
        progress = min((step - warm) / max(total_steps - warm - 1, 1), 1.0)
        return schedule.min_learning_rate + (base_lr - schedule.min_learning_rate) * 0.5 * (1 + math.cos(math.pi * progress))
    # one_cycle: linear warm-up to the peak, then cosine annealing down to min_learning_rate.
    progress = min(step / max(total_steps - 1, 1), 1.0)
    peak = schedule.max_learning_rate or 10 * base_lr
    start = peak / 25
    warm_fraction = schedule.warmup_fraction
    if progress < warm_fraction:
        return start + (peak - start) * progress / warm_fraction
    rest = (progress - warm_fraction) / (1 - warm_fraction)
    return schedule.min_learning_rate + (peak - schedule.min_learning_rate) * 0.5 * (1 + math.cos(math.pi * rest))


def set_learning_rate(optimizer: AnyOptimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
