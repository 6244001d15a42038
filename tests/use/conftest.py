"""A small model trained on real MNIST, shared by the predict, export (and serve) tests.

Trained once per test session through the same `train_run` that `mlplab train` calls, on the
first 10,000 real training images for 3 epochs (a few seconds): good enough that wrong
preprocessing shows as wrong answers, small enough for CI.
"""

from __future__ import annotations

from pathlib import Path

import pytest

TRAIN_IMAGES = 10_000


@pytest.fixture(scope="session")
def mnist_run(mnist, tmp_path_factory) -> Path:
    """A finished run directory (model.json + model.safetensors) of a model trained on real MNIST."""
    from mlplab import load_config, train_run
    from mlplab.training import resolve_runtime

    config = load_config("fast-256-256")
    training = config.training.model_copy(update={"epochs": 3, "refit": False})
    config = config.model_copy(update={"training": training})
    out = tmp_path_factory.mktemp("use-model") / "run"
    train_run(config, out=out, dataset=mnist.subset(train=TRAIN_IMAGES, test=2000), runtime=resolve_runtime(), verbose=0)
    assert (out / "model.json").is_file() and (out / "model.safetensors").is_file()
    return out


@pytest.fixture(scope="session")
def mnist_model(mnist_run):
    from mlplab import load_model

    return load_model(mnist_run)
