"""The one type the report layer takes in: a trained model's results, as plain in-memory values.

The report layer knows nothing about training, run directories or the CLI; whoever gathers runs
builds `RunResult`s and calls `write_report`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np


@dataclass
class RunResult:
    """One trained model (one seed)."""

    name: str  # model name, e.g. "tutorial-512-512"
    seed: int
    history: list[dict]  # one row per epoch: epoch (1-based), loss, accuracy, val_loss, val_accuracy, lr, seconds, samples_per_s
    params: int
    train_flops: int  # exact training FLOPs
    epochs_run: int
    best_epoch: int | None  # epoch whose weights were kept (None = last)
    wall_seconds: float
    test_loss: float
    test_accuracy: float
    y_true: np.ndarray  # int64 (M,)
    probs: np.ndarray  # float32 (M, C)
    test_images: np.ndarray  # uint8 (M, H, W)
    class_names: tuple[str, ...]
    first_layer_weights: np.ndarray  # float32 (units, H*W)
    run_dir: str | None = None
    config_text: str = ""
    validated_on: str = "val"  # "val" (split of training data) or "test" (tutorial literal)

    @property
    def kept_epoch(self) -> int:
        """The epoch whose weights the model holds (the last one when none was restored)."""
        return self.best_epoch if self.best_epoch is not None else self.epochs_run

    @property
    def y_pred(self) -> np.ndarray:
        return np.asarray(self.probs).argmax(axis=1)

    def check(self) -> None:
        """Raise ValueError naming the field when the arrays do not fit together."""
        where = f"run {self.name!r} seed {self.seed}"
        y, p, im = np.asarray(self.y_true), np.asarray(self.probs), np.asarray(self.test_images)
        if y.ndim != 1 or p.ndim != 2 or p.shape[0] != y.shape[0]:
            raise ValueError(f"{where}: probs {p.shape} does not match y_true {y.shape}")
        if p.shape[1] != len(self.class_names):
            raise ValueError(f"{where}: probs has {p.shape[1]} classes, class_names {len(self.class_names)}")
        if im.ndim != 3 or im.shape[0] != y.shape[0]:
            raise ValueError(f"{where}: test_images {im.shape} does not match y_true {y.shape}")
        w = np.asarray(self.first_layer_weights)
        if w.ndim != 2 or w.shape[1] != im.shape[1] * im.shape[2]:
            raise ValueError(f"{where}: first_layer_weights {w.shape} is not (units, {im.shape[1]}*{im.shape[2]})")
        if self.validated_on not in ("val", "test"):
            raise ValueError(f"{where}: validated_on must be 'val' or 'test', not {self.validated_on!r}")


def group_by_model(results: list[RunResult]) -> dict[str, list[RunResult]]:
    """Runs grouped by model name, models in order of first appearance, seeds sorted."""
    groups: dict[str, list[RunResult]] = {}
    for r in results:
        groups.setdefault(r.name, []).append(r)
    return {k: sorted(v, key=lambda r: r.seed) for k, v in groups.items()}


def representative(runs: list[RunResult]) -> RunResult:
    """The seed whose test accuracy is the median (lower median; ties go to the lowest seed)."""
    ordered = sorted(runs, key=lambda r: (r.test_accuracy, r.seed))
    return ordered[(len(ordered) - 1) // 2]


def slug(name: str) -> str:
    """A file-name-safe form of a model name."""
    s = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.")
    return s or "model"


def unique_slugs(names) -> dict[str, str]:
    """{name: slug} with distinct slugs: names that differ only in characters a slug drops
    ("a b", "a/b") get -2, -3… so their files and anchors do not overwrite each other."""
    out: dict[str, str] = {}
    taken: set[str] = set()
    for name in names:
        base = s = slug(name)
        n = 1
        while s.lower() in taken:  # case-insensitive file systems
            n += 1
            s = f"{base}-{n}"
        taken.add(s.lower())
        out[name] = s
    return out
