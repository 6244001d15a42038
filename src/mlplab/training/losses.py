"""Losses computed from the model's raw outputs (logits), stably."""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from mlplab.errors import ConfigError

LossFn = Callable[[torch.Tensor, torch.Tensor, str], torch.Tensor]


def make_loss(name: str, output_activation: str, label_smoothing: float = 0.0) -> LossFn:
    """A function (outputs, labels, reduction) -> loss, for integer class labels.

    `label_smoothing` (cross-entropy only) mixes the one-hot targets with the uniform distribution.
    """
    if name == "categorical_crossentropy":
        if output_activation == "sigmoid":
            raise ConfigError(
                "loss categorical_crossentropy needs output activation softmax (or linear logits), got sigmoid"
            )
        # Softmax and log are fused into log-softmax: no overflow, no log(0).
        if label_smoothing > 0:
            return lambda outputs, labels, reduction="mean": F.cross_entropy(
                outputs, labels, reduction=reduction, label_smoothing=label_smoothing)
        return lambda outputs, labels, reduction="mean": F.cross_entropy(outputs, labels, reduction=reduction)
    if label_smoothing > 0:
        raise ConfigError(f"label_smoothing needs loss categorical_crossentropy, got {name}")
    if name == "mean_squared_error":
        def mse(outputs: torch.Tensor, labels: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
            if output_activation == "softmax":
                outputs = torch.softmax(outputs, dim=1)
            elif output_activation == "sigmoid":
                outputs = torch.sigmoid(outputs)
            target = F.one_hot(labels, outputs.shape[1]).to(outputs.dtype)
            per_sample = (outputs - target).pow(2).mean(dim=1)  # Keras: mean over classes
            return per_sample.mean() if reduction == "mean" else per_sample.sum()
        return mse
    raise ConfigError(f"unknown loss {name!r}")
