"""Small IDX files built in memory, for tests that need data they can break."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

NAMES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}


def idx_bytes(array: np.ndarray) -> bytes:
    """The uncompressed IDX encoding of a uint8 array."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    return struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def tiny_arrays(train: int = 12, test: int = 6, size: int = 4, classes: int = 3, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "train_images": rng.integers(0, 256, (train, size, size), dtype=np.uint8),
        "train_labels": (np.arange(train) % classes).astype(np.uint8),
        "test_images": rng.integers(0, 256, (test, size, size), dtype=np.uint8),
        "test_labels": (np.arange(test) % classes).astype(np.uint8),
    }


def write_idx_dir(folder: Path, arrays: dict[str, np.ndarray], mtime: int = 0) -> dict[str, Path]:
    """Write the four arrays as gzipped IDX files with the standard names; return role -> path."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for role, name in NAMES.items():
        paths[role] = folder / name
        paths[role].write_bytes(gzip.compress(idx_bytes(arrays[role]), mtime=mtime))
    return paths


@pytest.fixture
def idx():
    """Helpers: idx.bytes(array), idx.arrays(...), idx.write_dir(folder, arrays), idx.NAMES."""

    class Helpers:
        bytes = staticmethod(idx_bytes)
        arrays = staticmethod(tiny_arrays)
        write_dir = staticmethod(write_idx_dir)

    Helpers.NAMES = NAMES
    return Helpers
