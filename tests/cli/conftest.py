from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    """The real MNIST (../shared/data, or $MLPLAB_DATA_DIR); tests that train need it."""
    root = Path(os.environ.get("MLPLAB_DATA_DIR", REPO.parent / "shared" / "data"))
    if not (root / "mnist" / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"real MNIST not found under {root} (set MLPLAB_DATA_DIR)")
    os.environ["MLPLAB_DATA_DIR"] = str(root)
    return root
