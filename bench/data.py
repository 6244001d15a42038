"""Real MNIST from the IDX .gz files, with gzip and numpy only.

Standalone on purpose: the peers (Keras, plain PyTorch) must not depend on mlplab, so the
benchmark reads the files itself. The directory is `$MLPLAB_DATA_DIR/mnist/`, by default
`../shared/data/mnist/` relative to the repository root.
"""

from __future__ import annotations

import gzip
import hashlib
import os
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]

FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}

# SHA-256 of the decompressed files (see ../shared/data/README.md).
SHA256 = {
    "train_images": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train_labels": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "test_images": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "test_labels": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}


def data_dir() -> Path:
    root = os.environ.get("MLPLAB_DATA_DIR")
    base = Path(root) if root else REPO_ROOT.parent / "shared" / "data"
    return base / "mnist"


def _read_idx(raw: bytes, name: str) -> np.ndarray:
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise ValueError(f"{name}: not an unsigned-byte IDX file")
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    offset = 4 + 4 * ndim
    expected = int(np.prod(dims)) if dims else 0
    if len(raw) - offset != expected:
        raise ValueError(f"{name}: header says {dims} ({expected} bytes), file has {len(raw) - offset}")
    return np.frombuffer(raw, dtype=np.uint8, offset=offset).reshape(dims)


def load_raw(verify: bool = False) -> dict[str, np.ndarray]:
    """The four arrays as uint8, shapes (60000, 28, 28), (60000,), (10000, 28, 28), (10000,)."""
    folder = data_dir()
    out = {}
    for key, filename in FILES.items():
        path = folder / filename
        if not path.is_file():
            raise FileNotFoundError(
                f"MNIST file {path} not found (set MLPLAB_DATA_DIR to the folder that holds mnist/)"
            )
        raw = gzip.decompress(path.read_bytes())
        if verify and hashlib.sha256(raw).hexdigest() != SHA256[key]:
            raise ValueError(f"{path}: decompressed content does not match the published SHA-256")
        out[key] = _read_idx(raw, filename)
    return out


def load_mnist(one_hot: bool = False, verify: bool = False):
    """(x_train, y_train), (x_test, y_test): x float32 (N, 784) in [0, 1]; y int64 (N,), or float32 (N, 10) one-hot."""
    raw = load_raw(verify=verify)
    x_train = raw["train_images"].reshape(-1, 784).astype(np.float32) / 255.0
    x_test = raw["test_images"].reshape(-1, 784).astype(np.float32) / 255.0
    y_train = raw["train_labels"].astype(np.int64)
    y_test = raw["test_labels"].astype(np.int64)
    if one_hot:
        y_train, y_test = to_one_hot(y_train), to_one_hot(y_test)
    return (x_train, y_train), (x_test, y_test)


def to_one_hot(labels: np.ndarray, num_classes: int = 10) -> np.ndarray:
    out = np.zeros((len(labels), num_classes), dtype=np.float32)
    out[np.arange(len(labels)), labels] = 1.0
    return out


if __name__ == "__main__":
    (xt, yt), (xv, yv) = load_mnist(verify=True)
    print(f"{data_dir()}: train {xt.shape} {xt.dtype}, test {xv.shape}; first label {yt[0]}, "
          f"mean pixel of first image {xt[0].mean() * 255:.6f}; class counts {np.bincount(yt).tolist()}")
