"""Exact training cost of an MLP, counted in matrix-product FLOPs.

Per sample, a dense layer with `i` inputs and `o` outputs costs 2·i·o FLOPs forward (a multiply
and an add per weight), 2·i·o for the weight gradient and 2·i·o for the input gradient, except
that the first layer needs no input gradient (nothing upstream learns). Bias adds, activations,
dropout and the optimizer update are left out: they are O(units), not O(weights), and the
report says so.
"""

from __future__ import annotations

from mlplab.model.spec import Dense, ModelSpec


def dense_shapes(spec: ModelSpec, num_features: int, num_classes: int) -> list[tuple[int, int]]:
    """(inputs, outputs) of every matrix product, output layer included."""
    shapes, width = [], num_features
    for layer in spec.layers:
        if isinstance(layer, Dense):
            shapes.append((width, layer.units))
            width = layer.units
    shapes.append((width, num_classes))
    return shapes


def forward_flops(spec: ModelSpec, num_features: int, num_classes: int) -> int:
    """FLOPs of one sample's forward pass."""
    return sum(2 * i * o for i, o in dense_shapes(spec, num_features, num_classes))


def training_flops_per_sample(spec: ModelSpec, num_features: int, num_classes: int) -> int:
    """FLOPs of one sample's forward and backward pass."""
    shapes = dense_shapes(spec, num_features, num_classes)
    first_in, first_out = shapes[0]
    return 3 * forward_flops(spec, num_features, num_classes) - 2 * first_in * first_out


def training_flops(spec: ModelSpec, num_features: int, num_classes: int, samples_seen: int) -> int:
    """Training FLOPs for `samples_seen` samples (epochs × training-set size)."""
    return training_flops_per_sample(spec, num_features, num_classes) * samples_seen
