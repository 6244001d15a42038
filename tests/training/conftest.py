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


def _interrupt_at(where: str):
    """A callback that sets the interrupt flag mid-epoch 3 or at the end of epoch 2 (as Ctrl-C would)."""
    from mlplab.training.callbacks import Callback

    class Interrupt(Callback):
        def on_batch_end(self, state, batch, running):
            if where == "mid-epoch" and state.epoch == 2 and batch == 3:
                state.interrupted = "SIGINT"

        def on_epoch_end(self, state, row):
            if where == "epoch-boundary" and state.epoch == 2:
                state.interrupted = "SIGINT"

    return Interrupt()


@pytest.fixture
def assert_resume_is_bit_identical(tmp_path):
    """Train straight; train again, interrupted `where`, then resumed from the checkpoint; the weights
    must be equal bit for bit."""
    from mlplab.model import build_model
    from mlplab.training import fit, standard_callbacks

    def check(cfg, train, val, where: str, num_features: int, num_classes: int) -> None:
        straight = build_model(cfg.model, num_features, num_classes)
        fit(straight, cfg.training, train, val, callbacks=standard_callbacks(cfg.training, verbose=0))
        path = tmp_path / "checkpoint.safetensors"
        first = build_model(cfg.model, num_features, num_classes)
        history = fit(first, cfg.training, train, val,
                      callbacks=[*standard_callbacks(cfg.training, checkpoint_path=path, verbose=0), _interrupt_at(where)])
        assert history.interrupted == "SIGINT"
        resumed = build_model(cfg.model, num_features, num_classes, seed=99)  # overwritten by the checkpoint
        history = fit(resumed, cfg.training, train, val, resume_from=path,
                      callbacks=standard_callbacks(cfg.training, checkpoint_path=path, verbose=0))
        assert [r["epoch"] for r in history] == list(range(1, cfg.training.epochs + 1))
        for key, value in straight.state_dict().items():
            assert torch.equal(value, resumed.state_dict()[key]), key

    return check


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
