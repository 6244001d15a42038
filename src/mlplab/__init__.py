"""mlplab: build, train, compare and use multilayer perceptrons on MNIST-style image data."""

from __future__ import annotations

__version__ = "0.1.0"

from mlplab.errors import ConfigError, DataError, MlplabError, ModelFileError, TrainingError

__all__ = [
    "__version__",
    "ConfigError",
    "DataError",
    "MlplabError",
    "ModelFileError",
    "TrainingError",
]
