"""The dataset object every other part of mlplab receives: arrays, class names and provenance."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace

import numpy as np

from mlplab.data.idx import check_label_range
from mlplab.errors import DataError

MAX_CLASSES = 10_000  # each class is an output of the model; labels beyond this are a mistake or an attack


@dataclass(frozen=True)
class Dataset:
    """Train and test images with integer labels, as loaded (no scaling, no flattening).

    Images are ``uint8 (N, H, W)``, labels ``int64 (N,)`` in ``range(num_classes)``. The loaders
    build these from checked files; the checks here guard against arrays assembled by hand.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple[str, ...]
    source: str

    def __post_init__(self) -> None:
        if not self.class_names:
            raise DataError(f"{self.name}: a dataset needs at least one class name")
        for split in ("train", "test"):
            x, y = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
            if x.dtype != np.uint8 or x.ndim != 3:
                raise DataError(f"{self.name}: x_{split} must be uint8 (N, H, W), got {x.dtype} {x.shape}")
            if y.dtype != np.int64 or y.ndim != 1:
                raise DataError(f"{self.name}: y_{split} must be int64 (N,), got {y.dtype} {y.shape}")
            if len(x) != len(y):
                raise DataError(f"{self.name}: {len(x)} {split} images but {len(y)} {split} labels")
            if y.size and (y.min() < 0 or y.max() >= len(self.class_names)):
                raise DataError(
                    f"{self.name}: y_{split} holds labels outside 0-{len(self.class_names) - 1} "
                    f"(min {y.min()}, max {y.max()})"
                )
        if self.x_train.shape[1:] != self.x_test.shape[1:]:
            raise DataError(
                f"{self.name}: train images are {self.x_train.shape[1:]} but test images {self.x_test.shape[1:]}"
            )

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def image_shape(self) -> tuple[int, int]:
        return (int(self.x_train.shape[1]), int(self.x_train.shape[2]))

    @property
    def num_features(self) -> int:
        height, width = self.image_shape
        return height * width

    def subset(self, train: int | None = None, test: int | None = None) -> "Dataset":
        """The first ``train`` training and ``test`` test samples (None keeps a split whole)."""
        for label, n in (("train", train), ("test", test)):
            if n is not None and (isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0):
                raise ValueError(f"subset({label}=...) must be a non-negative integer or None, got {n!r}")
        kept = []
        if train is not None and train < len(self.y_train):
            kept.append(f"first {train} train")
        if test is not None and test < len(self.y_test):
            kept.append(f"first {test} test")
        return replace(
            self,
            x_train=self.x_train[:train], y_train=self.y_train[:train],
            x_test=self.x_test[:test], y_test=self.y_test[:test],
            source=self.source + (f" [{', '.join(kept)}]" if kept else ""),
        )

    def class_counts(self, split: str = "train") -> list[int]:
        """How many samples of each class a split holds (split: "train" or "test")."""
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        labels = self.y_train if split == "train" else self.y_test
        return np.bincount(labels, minlength=self.num_classes).tolist()


def assemble(
    name: str, arrays: dict[str, np.ndarray], class_names: tuple[str, ...], source: str, files: dict[str, str]
) -> Dataset:
    """A Dataset from the four decoded arrays (role -> array), after the checks that need several of them.

    ``files`` names where each array came from (role -> file or archive member), for the messages.
    """
    if len(class_names) < 2:
        raise DataError(
            f"{name}: {len(class_names)} class{'' if len(class_names) == 1 else 'es'} "
            f"({', '.join(map(str, class_names)) or 'none'}); a classifier needs at least two"
        )
    if len(class_names) > MAX_CLASSES:
        raise DataError(f"{name}: {len(class_names)} classes, more than the {MAX_CLASSES} a dataset may have")
    repeated = sorted(name for name, n in Counter(class_names).items() if n > 1)
    if repeated:
        raise DataError(f"{name}: class names must differ; repeated: {', '.join(map(repr, repeated[:5]))}")
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if len(images) != len(labels):
            raise DataError(
                f"{files[f'{split}_images']} holds {len(images)} images but "
                f"{files[f'{split}_labels']} holds {len(labels)} labels"
            )
        check_label_range(labels, files[f"{split}_labels"], len(class_names))
    if images.shape[1:] != arrays["train_images"].shape[1:]:
        raise DataError(
            f"{name}: train images are {arrays['train_images'].shape[1:]} pixels, test images {images.shape[1:]}"
        )
    return Dataset(
        name=name,
        x_train=arrays["train_images"], y_train=arrays["train_labels"].astype(np.int64),
        x_test=arrays["test_images"], y_test=arrays["test_labels"].astype(np.int64),
        class_names=tuple(class_names), source=source,
    )


def describe(dataset: Dataset) -> dict:
    """What `mlplab data info` reports, as JSON-ready values (the tutorial's first look at the data)."""

    def split(x: np.ndarray, y: np.ndarray, name: str) -> dict:
        return {
            "images": {"shape": list(x.shape), "dtype": str(x.dtype)},
            "labels": {"shape": list(y.shape), "dtype": str(y.dtype)},
            "class_counts": dataset.class_counts(name),
        }

    pixels = [a for a in (dataset.x_train, dataset.x_test) if a.size]
    return {
        "name": dataset.name,
        "source": dataset.source,
        "num_classes": dataset.num_classes,
        "class_names": list(dataset.class_names),
        "image_shape": list(dataset.image_shape),
        "train": split(dataset.x_train, dataset.y_train, "train"),
        "test": split(dataset.x_test, dataset.y_test, "test"),
        "first_train_label": int(dataset.y_train[0]) if len(dataset.y_train) else None,
        "first_train_image_mean": round(float(dataset.x_train[0].mean()), 6) if len(dataset.x_train) else None,
        "pixel_range": [min(int(a.min()) for a in pixels), max(int(a.max()) for a in pixels)] if pixels else None,
    }
