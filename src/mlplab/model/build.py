"""Building a torch module from a model description, initialised as Keras initialises.

Each layer kind says which modules it becomes (`mlplab.model.layers`); the model keeps them in
one `nn.Sequential` (so parameter names stay `layers.<i>.weight`) and remembers which modules
came from which layer (`blocks`), for the eval-mode forward and the hand-written training step.
The module returns logits; the output activation is applied by `predict_proba`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from mlplab.model.dropout import FastDropout
from mlplab.model.layers import Placed, check_parameters, checked_widths
from mlplab.model.spec import ModelSpec


@dataclass(frozen=True)
class Block:
    """One layer of the description with the modules built for it."""

    placed: Placed
    modules: tuple[nn.Module, ...]


class MLP(nn.Module):
    """A stack of Dense / Dropout / BatchNorm layers and an output layer with one unit per class."""

    def __init__(self, spec: ModelSpec, num_features: int, num_classes: int) -> None:
        super().__init__()
        num_features, num_classes = checked_widths(num_features, num_classes)
        placed = spec.walk(num_features, num_classes)
        check_parameters(placed)  # before allocating anything
        self.spec = spec
        self.num_features = num_features
        self.num_classes = num_classes
        blocks: list[Block] = []
        for place in placed:
            modules = place.layer.build(place.in_width, place.out_width)
            blocks.append(Block(place, tuple(modules)))
        self.layers = nn.Sequential(*(m for block in blocks for m in block.modules))
        self.blocks = blocks  # a plain list: the modules are registered once, in `layers`

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
        for block in self.blocks:
            x = block.placed.layer.infer(block.modules, x)
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
