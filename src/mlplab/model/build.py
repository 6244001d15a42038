"""Building a torch module from a model description, initialised as Keras initialises.

The module returns logits; the output activation is applied by `predict_proba`, so that
cross-entropy can always be computed stably from logits (as Keras does when the last layer
says softmax).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from mlplab.model.dropout import FastDropout
from mlplab.model.spec import BatchNorm, Dense, Dropout, ModelSpec

_ACTIVATIONS = {
    "relu": nn.ReLU,
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "elu": nn.ELU,
    "leaky_relu": lambda: nn.LeakyReLU(0.2),  # Keras 3's default negative slope
    "softmax": lambda: nn.Softmax(dim=1),
}


class MLP(nn.Module):
    """A stack of Dense / Dropout / BatchNorm layers and an output layer with one unit per class."""

    def __init__(self, spec: ModelSpec, num_features: int, num_classes: int) -> None:
        super().__init__()
        if num_features < 1:
            raise ValueError(f"num_features must be a positive integer, got {num_features}")
        if num_classes < 2:
            raise ValueError(f"num_classes must be at least 2, got {num_classes}")
        self.spec = spec
        self.num_features = num_features
        self.num_classes = num_classes
        layers: list[nn.Module] = []
        width = num_features
        for layer in spec.layers:
            if isinstance(layer, Dense):
                layers.append(nn.Linear(width, layer.units, bias=layer.use_bias))
                if layer.activation != "linear":
                    layers.append(_ACTIVATIONS[layer.activation]())
                width = layer.units
            elif isinstance(layer, Dropout):
                layers.append(FastDropout(layer.rate))
            elif isinstance(layer, BatchNorm):
                # torch's momentum weighs the new batch; Keras's weighs the running average.
                layers.append(nn.BatchNorm1d(width, eps=layer.epsilon, momentum=1.0 - layer.momentum))
        layers.append(nn.Linear(width, num_classes))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)

    def dropout_layers(self) -> list[FastDropout]:
        return [m for m in self.layers if isinstance(m, FastDropout)]

    def seed_dropout(self, seed: int) -> None:
        """Give each dropout layer its own generator, derived from `seed`."""
        streams = np.random.SeedSequence(seed).spawn(len(self.dropout_layers()))
        for layer, stream in zip(self.dropout_layers(), streams):
            layer.rng = np.random.Generator(np.random.PCG64(stream))

    def output_activation(self, outputs: torch.Tensor) -> torch.Tensor:
        activation = self.spec.output.activation
        if activation == "softmax":
            return torch.softmax(outputs, dim=1)
        if activation == "sigmoid":
            return torch.sigmoid(outputs)
        return outputs

    def inference_forward(self, x: torch.Tensor) -> torch.Tensor:
        """The forward pass as eval mode computes it, whatever mode the model is in.

        Switching modes (`eval()` and back) walks every module and cost ~40 µs per call here,
        half of a batch-1 prediction; skipping dropout and using batch norm's running statistics
        directly gives the same outputs without touching the model's state.
        """
        for layer in self.layers:
            if isinstance(layer, FastDropout):
                continue
            if isinstance(layer, nn.BatchNorm1d):
                x = F.batch_norm(x, layer.running_mean, layer.running_var, layer.weight, layer.bias,
                                 training=False, momentum=0.0, eps=layer.eps)
            else:
                x = layer(x)
        return x

    @torch.inference_mode()
    def predict_logits(self, x: torch.Tensor, batch_size: int = 8192) -> torch.Tensor:
        """Raw outputs as in eval mode, in batches of `batch_size` (one call when x fits in one)."""
        if len(x) <= batch_size:  # the common case; no list, no concatenation (batch-1 latency)
            return self.inference_forward(x)
        return torch.cat([self.inference_forward(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])

    def predict_proba(self, x: torch.Tensor, batch_size: int = 8192) -> torch.Tensor:
        """Class scores after the output activation, computed in eval mode."""
        return self.output_activation(self.predict_logits(x, batch_size))


def build_model(
    spec: ModelSpec, num_features: int = 784, num_classes: int = 10, *, seed: int | None = 0
) -> MLP:
    """Build and initialise an MLP: Glorot-uniform kernels and zero biases (Keras's defaults)."""
    with torch.random.fork_rng(devices=[]):  # torch's own default init would consume the caller's random state
        model = MLP(spec, num_features, num_classes)
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    init_keras_style(model, generator)
    return model


@torch.no_grad()
def init_keras_style(model: nn.Module, generator: torch.Generator | None = None) -> None:
    for module in model.modules():
        if isinstance(module, nn.Linear):
            nn.init.xavier_uniform_(module.weight, generator=generator)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
