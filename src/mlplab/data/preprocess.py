"""Preprocessing as the tutorial does it: flatten, scale to [0, 1], one-hot; and a validation split.

The validation split is carved from the *training* data so the test set is never used to choose
anything (epochs, models); it is stratified so that each class keeps its share, and seeded so that
the same seed gives the same split on every machine.
"""

from __future__ import annotations

import numbers

import numpy as np


def flatten_scale(images: np.ndarray) -> np.ndarray:
    """uint8 images (N, H, W) -> float32 (N, H*W) with values in [0, 1] (pixel / 255)."""
    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise ValueError(f"images must be uint8 pixel values 0-255, got dtype {images.dtype}")
    if images.ndim != 3:
        raise ValueError(f"images must have shape (N, H, W), got {images.shape}")
    # One pass that casts and divides (0.1 s for MNIST's training images, against 0.45 s for a cast
    # and then an in-place division over the fresh 188 MB); the values are identical.
    # The width spelled out, not -1: NumPy cannot infer it for an empty stack (0 images).
    n, height, width = images.shape
    return np.divide(images.reshape(n, height * width), np.float32(255.0), dtype=np.float32)


def one_hot(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Integer labels (N,) -> float32 (N, num_classes) with a single 1 per row."""
    if isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
    labels = np.asarray(labels)
    if labels.ndim != 1 or not (labels.dtype.kind in "iu" or labels.size == 0):
        raise ValueError(f"labels must be a 1-D array of integers, got {labels.dtype} with shape {labels.shape}")
    bad = (labels < 0) | (labels >= num_classes)
    if bad.any():
        raise ValueError(
            f"label {labels[bad][0]} at index {int(np.argmax(bad))} is out of range for {num_classes} classes "
            f"(0-{num_classes - 1})"
        )
    encoded = np.zeros((len(labels), num_classes), dtype=np.float32)
    encoded[np.arange(len(labels)), labels.astype(np.int64)] = 1.0
    return encoded


def train_val_split(
    x: np.ndarray, y: np.ndarray, val_fraction: float = 0.1, seed: int = 0, stratify: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Split training data into (x_train, y_train, x_val, y_val).

    The validation set has ``round(N * val_fraction)`` samples. With ``stratify`` each class gives
    its proportional share (largest remainders settle the rounding), so class balance is kept. Both
    parts keep the original order of the samples. ``val_fraction=0`` returns empty validation arrays.
    """
    if isinstance(val_fraction, bool) or not isinstance(val_fraction, numbers.Real) or not 0 <= val_fraction < 1:
        raise ValueError(f"val_fraction must be a number in [0, 1), got {val_fraction!r}")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    x, y = np.asarray(x), np.asarray(y)
    if y.ndim != 1 or len(x) != len(y):
        raise ValueError(f"x and y must hold the same number of samples, got shapes {x.shape} and {y.shape}")
    n_val = int(np.floor(len(y) * float(val_fraction) + 0.5))
    if n_val and n_val >= len(y):
        raise ValueError(f"val_fraction={val_fraction} of {len(y)} samples leaves none for training")
    rng = np.random.default_rng(seed)
    if stratify and n_val:
        val_idx = _stratified_pick(y, n_val, rng)
    else:
        val_idx = rng.permutation(len(y))[:n_val]
    is_val = np.zeros(len(y), dtype=bool)
    is_val[val_idx] = True
    return x[~is_val], y[~is_val], x[is_val], y[is_val]


def _stratified_pick(y: np.ndarray, n_val: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of n_val samples, each class contributing in proportion to its size."""
    _, inverse, counts = np.unique(y, return_inverse=True, return_counts=True)
    exact = counts * n_val / len(y)
    quota = np.floor(exact).astype(np.int64)
    short = n_val - int(quota.sum())
    # Hand the remaining places to the largest remainders; stable sort keeps ties in class order.
    quota[np.argsort(-(exact - quota), kind="stable")[:short]] += 1
    picked = [rng.permutation(np.flatnonzero(inverse == c))[:q] for c, q in enumerate(quota)]
    return np.concatenate(picked) if picked else np.empty(0, dtype=np.int64)
