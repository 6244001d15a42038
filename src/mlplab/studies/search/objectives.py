"""What a search optimises: validation accuracy (maximised) against one or more costs (minimised).

Every figure comes from the trial's run (metrics.json and its history), counted exactly as the
reports count them; the test set is never read.
"""

from __future__ import annotations

from typing import Any

from mlplab.errors import ConfigError

ACCURACY = "val_accuracy"
# cost name -> (what the report calls it, key in the trial's metrics)
COSTS: dict[str, str] = {
    "train_flops": "training FLOPs",
    "seconds": "training seconds (wall clock)",
    "params": "parameters",
    "inference_flops": "inference FLOPs per image",
}
DEFAULT_COSTS = ("train_flops",)


def parse_objectives(text: str | None) -> tuple[str, ...]:
    """`"train_flops"` or `"params,seconds"` -> the costs, in order (validation accuracy is always first)."""
    if text is None or not text.strip():
        return DEFAULT_COSTS
    costs = tuple(part.strip() for part in text.split(",") if part.strip())
    for cost in costs:
        if cost not in COSTS:
            raise ConfigError(f"--objectives: unknown cost {cost!r} (choose from {', '.join(COSTS)})")
    if len(set(costs)) != len(costs):
        raise ConfigError(f"--objectives names a cost twice: {text!r}")
    return costs or DEFAULT_COSTS


def directions(costs: tuple[str, ...]) -> list[str]:
    return ["maximize"] + ["minimize"] * len(costs)


def trial_values(figures: dict[str, Any], costs: tuple[str, ...]) -> list[float]:
    return [float(figures[ACCURACY])] + [float(figures[c]) for c in costs]


def trial_figures(metrics: dict[str, Any], history_rows: list[dict[str, Any]], kept_epoch: int,
                  params: int, inference_flops: int) -> dict[str, Any]:
    """The validation figures of the kept epoch plus every cost (no test figure)."""
    row = history_rows[kept_epoch - 1] if 0 < kept_epoch <= len(history_rows) else {}
    if "val_accuracy" not in row:
        raise ConfigError("a search needs validation data: the base config's training.validation_split must be > 0")
    return {
        "val_accuracy": float(row["val_accuracy"]),
        "val_loss": float(row["val_loss"]),
        "kept_epoch": int(kept_epoch),
        "epochs_run": int(metrics["epochs_run"]),
        "train_flops": int(metrics["train_flops"]),
        "seconds": float(metrics["train_seconds"]),
        "params": int(params),
        "inference_flops": int(inference_flops),
        "train_samples": int(metrics["train_samples"]),
        "validation_samples": int(metrics["validation_samples"]),
    }
