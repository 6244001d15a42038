"""The model description: an ordered stack of layers, validated at construction.

Input size and number of classes are not part of the description: they come from the dataset
when the model is built, so one description serves MNIST, Fashion-MNIST and user data alike.
The layer kinds themselves (their keys, and how each is built, summarised and counted) are in
`mlplab.model.layers`.
"""

from __future__ import annotations

from pydantic import Field

from mlplab.model.layers import (
    ACTIVATIONS, Activation, BatchNorm, Dense, Dropout, Layer, Output, Placed, walk,
)
from mlplab.validation import Strict

__all__ = ["ACTIVATIONS", "Activation", "BatchNorm", "Dense", "Dropout", "Layer", "ModelSpec", "Output"]


class ModelSpec(Strict):
    """Hidden layers in order, then the output layer sized by the dataset's classes."""

    layers: list[Layer] = Field(default_factory=list)
    output: Output = Output()

    @property
    def dense_units(self) -> list[int]:
        return [layer.units for layer in self.layers if isinstance(layer, Dense)]

    def walk(self, num_features: int, num_classes: int) -> list[Placed]:
        """Every layer (the output layer last) with the widths it reads and writes."""
        return walk(self.layers, self.output, num_features, num_classes)
