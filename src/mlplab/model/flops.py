"""Exact training cost of an MLP, counted in matrix-product FLOPs.

Per sample, a product with `i` inputs and `o` outputs costs 2·i·o FLOPs forward (a multiply and
an add per weight), 2·i·o for the weight gradient and 2·i·o for the input gradient, except that
the first product needs no input gradient (nothing upstream learns). Which products a layer
computes is the layer kind's answer (`LayerKind.products`). Bias adds, activations, dropout,
batch norm and the optimizer update are left out: they are O(units), not O(weights), and the
report says so.
"""

from __future__ import annotations

from mlplab.model.spec import ModelSpec


def dense_shapes(spec: ModelSpec, num_features: int, num_classes: int) -> list[tuple[int, int]]:
    """(inputs, outputs) of every matrix product, output layer included."""
    return [shape for placed in spec.walk(num_features, num_classes) for shape in placed.products]


def forward_flops(spec: ModelSpec, num_features: int, num_classes: int) -> int:
    """FLOPs of one sample's forward pass."""
    return sum(2 * i * o for i, o in dense_shapes(spec, num_features, num_classes))


def training_flops_per_sample(spec: ModelSpec, num_features: int, num_classes: int) -> int:
    """FLOPs of one sample's forward and backward pass."""
    shapes = dense_shapes(spec, num_features, num_classes)
    first_in, first_out = shapes[0]
    return 3 * sum(2 * i * o for i, o in shapes) - 2 * first_in * first_out


def training_flops(spec: ModelSpec, num_features: int, num_classes: int, samples_seen: int) -> int:
    """Training FLOPs for `samples_seen` samples (epochs × training-set size)."""
    return training_flops_per_sample(spec, num_features, num_classes) * samples_seen
