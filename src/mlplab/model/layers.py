"""Layer kinds: each one says, in one class, everything mlplab needs to know about it.

A kind is a validated description (its config keys) with five answers:

- `out_width`: the width it hands on (the one walk over the layers, `walk`, tracks widths with it);
- `build`: the torch modules it becomes, and `infer`: how those run in eval mode;
- `parameters`: its Keras parameter count (all, trainable) for the summary, with `summary_name` and
  `summary_class` naming its row as Keras does;
- `products`: the matrix products it computes, (inputs, outputs) each, which the FLOP count reads;
- `fast_step`: whether mlplab's hand-written training step can run it, and if not, why.

To add a layer kind, add one class here (a `Tagged` subclass of `LayerKind` with a `type` literal)
and list it in `HIDDEN_KINDS`: configs, model files, summaries, FLOP counts and the training step
pick it up from there. A kind the hand-written step does not know keeps `fast_step`'s default
answer (no), and trains through autograd.

Sizes are checked against `MAX_WIDTH` and `MAX_PARAMETERS` before anything is allocated, so a
typo such as `units = 1000000000` is a one-line error instead of an attempt to allocate terabytes.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, ClassVar, Literal, Union

from pydantic import Field, field_validator

from mlplab.errors import ConfigError
from mlplab.validation import Strict, Tagged, positive, positive_int, unit_interval

# torch is imported inside `build` and `infer`: configs, summaries and FLOP counts read these
# classes without it, so that `mlplab configs` or `mlplab --help` start fast (tests/cli/test_startup.py).
if TYPE_CHECKING:  # pragma: no cover
    import torch
    from torch import nn

# Widths (units, input features, classes) above a million and models above 2^28 parameters (1 GiB
# of float32 weights; training holds about four times that with gradients and Adam's moments) are
# refused: far beyond any MLP for image data, and well below what would exhaust a machine's memory.
MAX_WIDTH = 1 << 20
MAX_PARAMETERS = 1 << 28

ACTIVATIONS = ("relu", "sigmoid", "tanh", "gelu", "silu", "elu", "leaky_relu", "softmax", "linear")
Activation = Literal["relu", "sigmoid", "tanh", "gelu", "silu", "elu", "leaky_relu", "softmax", "linear"]


def activation_module(name: str) -> nn.Module:
    """The torch module of a hidden activation (not `linear`, which is none)."""
    from torch import nn

    modules = {
        "relu": nn.ReLU,
        "sigmoid": nn.Sigmoid,
        "tanh": nn.Tanh,
        "gelu": nn.GELU,
        "silu": nn.SiLU,
        "elu": nn.ELU,
        "leaky_relu": lambda: nn.LeakyReLU(0.2),  # Keras 3's default negative slope
        "softmax": lambda: nn.Softmax(dim=1),
    }
    return modules[name]()


@dataclass(frozen=True)
class Support:
    """Whether the hand-written training step can run something, and why (or why not)."""

    ok: bool
    reason: str


FAST = Support(True, "hand-written operations exist")


def width_limit(value: int) -> int:
    if value > MAX_WIDTH:
        raise ValueError(f"must be at most {MAX_WIDTH:,}, got {value:,}")
    return value


class LayerKind(Strict):
    """What every layer kind answers; the defaults fit a layer that keeps its width and has no weights."""

    summary_name: ClassVar[str]  # Keras's row name: dense, dense_1, ...
    summary_class: ClassVar[str]  # Keras's class name in the summary

    def out_width(self, width: int, num_classes: int) -> int:
        return width

    def build(self, in_width: int, out_width: int) -> list[nn.Module]:
        raise NotImplementedError

    def infer(self, modules: tuple[nn.Module, ...], x: torch.Tensor) -> torch.Tensor:
        """The eval-mode forward of this layer's modules, without switching the model's mode."""
        for module in modules:
            x = module(x)
        return x

    def parameters(self, in_width: int, out_width: int) -> tuple[int, int]:
        """(all, trainable) parameters as Keras counts them."""
        return 0, 0

    @property
    def activation_name(self) -> str | None:
        return None

    def products(self, in_width: int, out_width: int) -> list[tuple[int, int]]:
        """(inputs, outputs) of each matrix product, for the FLOP count."""
        return []

    def fast_step(self) -> Support:
        return Support(False, f"layer {self.type}")  # type: ignore[attr-defined]


class Dense(LayerKind, Tagged):
    """A fully connected layer followed by its activation (Keras `Dense(units, activation)`)."""

    summary_name: ClassVar[str] = "dense"
    summary_class: ClassVar[str] = "Dense"

    type: Literal["dense"] = "dense"
    units: int
    activation: Activation = "linear"
    use_bias: bool = True

    _units = field_validator("units")(positive_int)
    _units_limit = field_validator("units")(width_limit)

    def out_width(self, width: int, num_classes: int) -> int:
        return self.units

    def build(self, in_width: int, out_width: int) -> list[nn.Module]:
        from torch import nn

        modules: list[nn.Module] = [nn.Linear(in_width, out_width, bias=self.use_bias)]
        if self.activation != "linear":
            modules.append(activation_module(self.activation))
        return modules

    def parameters(self, in_width: int, out_width: int) -> tuple[int, int]:
        count = in_width * out_width + (out_width if self.use_bias else 0)
        return count, count

    @property
    def activation_name(self) -> str | None:
        return self.activation

    def products(self, in_width: int, out_width: int) -> list[tuple[int, int]]:
        return [(in_width, out_width)]

    def fast_step(self) -> Support:
        if self.activation not in ("relu", "linear"):
            return Support(False, f"activation {self.activation}")
        if not self.use_bias:
            return Support(False, "a dense layer without bias")
        return FAST


class Dropout(LayerKind, Tagged):
    """Zeroes a fraction `rate` of activations during training (Keras `Dropout(rate)`)."""

    summary_name: ClassVar[str] = "dropout"
    summary_class: ClassVar[str] = "Dropout"

    type: Literal["dropout"] = "dropout"
    rate: float

    _rate = field_validator("rate")(unit_interval)

    def build(self, in_width: int, out_width: int) -> list[nn.Module]:
        from mlplab.model.dropout import FastDropout

        return [FastDropout(self.rate)]

    def infer(self, modules: tuple[nn.Module, ...], x: torch.Tensor) -> torch.Tensor:
        return x

    def fast_step(self) -> Support:
        return FAST


class BatchNorm(LayerKind, Tagged):
    """Batch normalisation with Keras's defaults (momentum 0.99, epsilon 1e-3)."""

    summary_name: ClassVar[str] = "batch_normalization"
    summary_class: ClassVar[str] = "BatchNormalization"

    type: Literal["batch_norm"] = "batch_norm"
    momentum: float = 0.99
    epsilon: float = 1e-3

    _momentum = field_validator("momentum")(unit_interval)
    _epsilon = field_validator("epsilon")(positive)

    def build(self, in_width: int, out_width: int) -> list[nn.Module]:
        from torch import nn

        # torch's momentum weighs the new batch; Keras's weighs the running average.
        return [nn.BatchNorm1d(in_width, eps=self.epsilon, momentum=1.0 - self.momentum)]

    def infer(self, modules: tuple[nn.Module, ...], x: torch.Tensor) -> torch.Tensor:
        from torch.nn import functional as F

        (bn,) = modules
        return F.batch_norm(x, bn.running_mean, bn.running_var, bn.weight, bn.bias,
                            training=False, momentum=0.0, eps=bn.eps)

    def parameters(self, in_width: int, out_width: int) -> tuple[int, int]:
        # Keras counts the moving mean and variance as non-trainable parameters.
        return 4 * in_width, 2 * in_width


class Output(LayerKind):
    """The output layer: one unit per class, so only its activation is chosen.

    It computes logits; the activation is applied by `MLP.predict_proba`, so that cross-entropy
    is always computed stably from logits (as Keras does when the last layer says softmax).
    """

    summary_name: ClassVar[str] = "dense"
    summary_class: ClassVar[str] = "Dense"

    activation: Literal["softmax", "linear", "sigmoid"] = "softmax"

    def out_width(self, width: int, num_classes: int) -> int:
        return num_classes

    def build(self, in_width: int, out_width: int) -> list[nn.Module]:
        from torch import nn

        return [nn.Linear(in_width, out_width)]

    def parameters(self, in_width: int, out_width: int) -> tuple[int, int]:
        count = in_width * out_width + out_width
        return count, count

    @property
    def activation_name(self) -> str | None:
        return self.activation

    def products(self, in_width: int, out_width: int) -> list[tuple[int, int]]:
        return [(in_width, out_width)]

    def fast_step(self) -> Support:
        return FAST  # the loss decides how the logits are used; `supports` checks it


# The kinds a config's `model.layers` may hold, by their `type` key.
HIDDEN_KINDS: tuple[type[LayerKind], ...] = (Dense, Dropout, BatchNorm)

Layer = Annotated[Union[HIDDEN_KINDS], Field(discriminator="type")]  # type: ignore[valid-type]


@dataclass(frozen=True)
class Placed:
    """A layer at its place in the stack: its description and the widths it reads and writes."""

    layer: LayerKind
    in_width: int
    out_width: int

    @property
    def parameters(self) -> tuple[int, int]:
        return self.layer.parameters(self.in_width, self.out_width)

    @property
    def products(self) -> list[tuple[int, int]]:
        return self.layer.products(self.in_width, self.out_width)


def walk(layers: list[LayerKind], output: Output, num_features: int, num_classes: int) -> list[Placed]:
    """Every layer, the output layer last, with its input and output widths: the one walk that
    building, summarising, counting and the training step all read."""
    placed, width = [], num_features
    for layer in [*layers, output]:
        out = layer.out_width(width, num_classes)
        placed.append(Placed(layer, width, out))
        width = out
    return placed


def checked_widths(num_features: object, num_classes: object) -> tuple[int, int]:
    """The model's input and output widths as ints, within the limits (ConfigError naming the value)."""
    widths = []
    for name, value, least in (("num_features", num_features, 1), ("num_classes", num_classes, 2)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise ConfigError(f"{name} must be an integer, got {value!r}")
        if not least <= value <= MAX_WIDTH:
            raise ConfigError(f"{name} must be in [{least}, {MAX_WIDTH:,}], got {value:,}")
        widths.append(int(value))
    return widths[0], widths[1]


def check_parameters(placed: list[Placed]) -> int:
    """The model's parameter count (Keras's: batch-norm statistics included), within `MAX_PARAMETERS`."""
    total = sum(p.parameters[0] for p in placed)
    if total > MAX_PARAMETERS:
        raise ConfigError(f"the model would have {total:,} parameters, more than the limit of {MAX_PARAMETERS:,} "
                          "(use fewer or narrower layers)")
    return total
