from __future__ import annotations

import pytest
import torch

from mlplab.config import config_from_dict
from mlplab.training.callbacks import Callback


@pytest.fixture
def blobs():
    """A small, learnable 3-class problem: Gaussian blobs in 20 dimensions."""
    g = torch.Generator().manual_seed(0)
    centers = torch.randn(3, 20, generator=g) * 3
    y = torch.randint(0, 3, (600,), generator=g)
    x = centers[y] + torch.randn(600, 20, generator=g)
    return (x[:480], y[:480]), (x[480:], y[480:])


def _make_config(activation="tanh", **training):
    """The second hidden layer's activation chooses the step: tanh → autograd, relu → hand-written."""
    base = {
        "name": "t",
        "model": {
            "layers": [
                {"type": "dense", "units": 16, "activation": "relu"},
                {"type": "dropout", "rate": 0.2},
                {"type": "dense", "units": 8, "activation": activation},
            ]
        },
        "training": {"batch_size": 32, "epochs": 4, "optimizer": {"name": "adam", "learning_rate": 0.01}, **training},
    }
    return config_from_dict(base)


@pytest.fixture
def make_config():
    """Build a small validated config, with training keys overridden."""
    return _make_config


class InterruptAfter(Callback):
    """Interrupts training at the end of an epoch, as a SIGINT there would."""

    def __init__(self, epoch):
        self.epoch = epoch

    def on_epoch_end(self, state, row):
        if state.epoch == self.epoch:
            state.interrupted = "SIGINT"


@pytest.fixture
def interrupt_after():
    """`interrupt_after(n)`: a callback that interrupts training after epoch n."""
    return InterruptAfter
