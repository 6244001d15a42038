"""The model description: an ordered stack of layers, validated at construction.

Input size and number of classes are not part of the description: they come from the dataset
when the model is built, so one description serves MNIST, Fashion-MNIST and user data alike.
"""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator

ACTIVATIONS = ("relu", "sigmoid", "tanh", "gelu", "silu", "elu", "leaky_relu", "softmax", "linear")
Activation = Literal["relu", "sigmoid", "tanh", "gelu", "silu", "elu", "leaky_relu", "softmax", "linear"]


class _Strict(BaseModel):
    # Unknown keys are errors: a typo such as `unit = 64` must not be silently ignored.
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Tagged(_Strict):
    """A member of a tagged union: its tag counts as set, so `exclude_unset` dumps re-validate."""

    def model_post_init(self, context: object) -> None:
        self.__pydantic_fields_set__.add("type")


class Dense(_Tagged):
    """A fully connected layer followed by its activation (Keras `Dense(units, activation)`)."""

    type: Literal["dense"] = "dense"
    units: int
    activation: Activation = "linear"
    use_bias: bool = True

    @field_validator("units")
    @classmethod
    def _units_positive(cls, value: int) -> int:
        if value < 1:
            raise ValueError(f"must be a positive integer, got {value}")
        return value


class Dropout(_Tagged):
    """Zeroes a fraction `rate` of activations during training (Keras `Dropout(rate)`)."""

    type: Literal["dropout"] = "dropout"
    rate: float

    @field_validator("rate")
    @classmethod
    def _rate_in_range(cls, value: float) -> float:
        if not 0.0 <= value < 1.0:
            raise ValueError(f"must be in [0, 1), got {value}")
        return value


class BatchNorm(_Tagged):
    """Batch normalisation with Keras's defaults (momentum 0.99, epsilon 1e-3)."""

    type: Literal["batch_norm"] = "batch_norm"
    momentum: float = 0.99
    epsilon: float = 1e-3

    @field_validator("momentum")
    @classmethod
    def _momentum_in_range(cls, value: float) -> float:
        if not 0.0 <= value < 1.0:
            raise ValueError(f"must be in [0, 1), got {value}")
        return value

    @field_validator("epsilon")
    @classmethod
    def _epsilon_positive(cls, value: float) -> float:
        if value <= 0:
            raise ValueError(f"must be positive, got {value}")
        return value


Layer = Annotated[Union[Dense, Dropout, BatchNorm], Field(discriminator="type")]


class Output(_Strict):
    """The output layer: one unit per class, so only its activation is chosen."""

    activation: Literal["softmax", "linear", "sigmoid"] = "softmax"


class ModelSpec(_Strict):
    """Hidden layers in order, then the output layer sized by the dataset's classes."""

    layers: list[Layer] = Field(default_factory=list)
    output: Output = Output()

    @property
    def dense_units(self) -> list[int]:
        return [layer.units for layer in self.layers if isinstance(layer, Dense)]
