"""The model description: an ordered stack of layers, validated at construction.

Input size and number of classes are not part of the description: they come from the dataset
when the model is built, so one description serves MNIST, Fashion-MNIST and user data alike.
"""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import Field, field_validator

from mlplab.validation import Strict, Tagged, positive, positive_int, unit_interval

ACTIVATIONS = ("relu", "sigmoid", "tanh", "gelu", "silu", "elu", "leaky_relu", "softmax", "linear")
Activation = Literal["relu", "sigmoid", "tanh", "gelu", "silu", "elu", "leaky_relu", "softmax", "linear"]


class Dense(Tagged):
    """A fully connected layer followed by its activation (Keras `Dense(units, activation)`)."""

    type: Literal["dense"] = "dense"
    units: int
    activation: Activation = "linear"
    use_bias: bool = True

    _units = field_validator("units")(positive_int)


class Dropout(Tagged):
    """Zeroes a fraction `rate` of activations during training (Keras `Dropout(rate)`)."""

    type: Literal["dropout"] = "dropout"
    rate: float

    _rate = field_validator("rate")(unit_interval)


class BatchNorm(Tagged):
    """Batch normalisation with Keras's defaults (momentum 0.99, epsilon 1e-3)."""

    type: Literal["batch_norm"] = "batch_norm"
    momentum: float = 0.99
    epsilon: float = 1e-3

    _momentum = field_validator("momentum")(unit_interval)
    _epsilon = field_validator("epsilon")(positive)


Layer = Annotated[Union[Dense, Dropout, BatchNorm], Field(discriminator="type")]


class Output(Strict):
    """The output layer: one unit per class, so only its activation is chosen."""

    activation: Literal["softmax", "linear", "sigmoid"] = "softmax"


class ModelSpec(Strict):
    """Hidden layers in order, then the output layer sized by the dataset's classes."""

    layers: list[Layer] = Field(default_factory=list)
    output: Output = Output()

    @property
    def dense_units(self) -> list[int]:
        return [layer.units for layer in self.layers if isinstance(layer, Dense)]
