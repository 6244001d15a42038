"""A Keras-style summary of a model description: layers, output shapes, parameter counts.

Counted from the description alone (no torch module is built), so `mlplab summary` is instant.
Each layer kind gives its row's name and counts (`mlplab.model.layers`); like Keras, batch-norm
moving statistics count as non-trainable parameters.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Callable

from mlplab.model.flops import forward_flops, training_flops_per_sample
from mlplab.model.spec import ModelSpec


@dataclass(frozen=True)
class LayerRow:
    name: str
    kind: str
    output_shape: tuple[None, int]
    params: int
    trainable: int
    activation: str | None = None


@dataclass(frozen=True)
class ModelSummary:
    name: str
    num_features: int
    num_classes: int
    rows: list[LayerRow] = field(default_factory=list)
    forward_flops: int = 0
    training_flops_per_sample: int = 0

    @property
    def total_params(self) -> int:
        return sum(row.params for row in self.rows)

    @property
    def trainable_params(self) -> int:
        return sum(row.trainable for row in self.rows)

    @property
    def non_trainable_params(self) -> int:
        return self.total_params - self.trainable_params

    def to_dict(self) -> dict:
        data = asdict(self)
        data["rows"] = [{**asdict(r), "output_shape": list(r.output_shape)} for r in self.rows]
        data.update(
            total_params=self.total_params,
            trainable_params=self.trainable_params,
            non_trainable_params=self.non_trainable_params,
        )
        return data

    def print(self, print_fn: Callable[[str], object] = print) -> None:
        for line in self.lines():
            print_fn(line)

    def lines(self) -> list[str]:
        headers = ("Layer (type)", "Output Shape", "Param #", "Activation")
        body = [
            (f"{r.name} ({r.kind})", f"(None, {r.output_shape[1]})", f"{r.params:,}", r.activation or "")
            for r in self.rows
        ]
        widths = [max(len(h), *(len(row[i]) for row in body)) + 2 for i, h in enumerate(headers)]

        def fmt(cells: tuple[str, ...]) -> str:
            parts = [
                f" {c:>{w - 2}} " if i == 2 else f" {c:<{w - 2}} " for i, (c, w) in enumerate(zip(cells, widths))
            ]
            return "│" + "│".join(parts) + "│"

        def rule(left: str, mid: str, right: str, fill: str = "─") -> str:
            return left + mid.join(fill * w for w in widths) + right

        out = [f'Model: "{self.name}"', rule("┌", "┬", "┐"), fmt(headers), rule("╞", "╪", "╡", "═")]
        for i, row in enumerate(body):
            out.append(fmt(row))
            out.append(rule("├", "┼", "┤") if i < len(body) - 1 else rule("└", "┴", "┘"))
        out += [
            f" Total params: {self.total_params:,} ({_megabytes(self.total_params)})",
            f" Trainable params: {self.trainable_params:,} ({_megabytes(self.trainable_params)})",
            f" Non-trainable params: {self.non_trainable_params:,} ({_megabytes(self.non_trainable_params)})",
            f" Forward FLOPs per sample: {self.forward_flops:,}; training FLOPs per sample: "
            f"{self.training_flops_per_sample:,}",
        ]
        return out


def _megabytes(params: int) -> str:
    return f"{params * 4 / 2**20:.2f} MB"  # float32


def summarize(spec: ModelSpec, num_features: int = 784, num_classes: int = 10, name: str = "model") -> ModelSummary:
    counts: Counter[str] = Counter()
    rows: list[LayerRow] = []
    for placed in spec.walk(num_features, num_classes):
        layer = placed.layer
        n = counts[layer.summary_name]
        counts[layer.summary_name] += 1
        params, trainable = placed.parameters
        rows.append(LayerRow(
            layer.summary_name if n == 0 else f"{layer.summary_name}_{n}", layer.summary_class,
            (None, placed.out_width), params, trainable, layer.activation_name,
        ))
    return ModelSummary(
        name=name,
        num_features=num_features,
        num_classes=num_classes,
        rows=rows,
        forward_flops=forward_flops(spec, num_features, num_classes),
        training_flops_per_sample=training_flops_per_sample(spec, num_features, num_classes),
    )
