"""The weight average (`training.ema`): exact, leaves training alone, evaluated and kept, resumable."""

from __future__ import annotations

import pytest
import torch

from mlplab.errors import MlplabError
from mlplab.model import build_model
from mlplab.training import fit, standard_callbacks
from mlplab.training.callbacks import Callback
from mlplab.training.ema import WeightAverage
from mlplab.training.loop import evaluate


class RecordTrainingWeights(Callback):
    """The training weights after every step (during an epoch's batches the model holds them)."""

    def __init__(self):
        self.steps: list[torch.Tensor] = []

    def on_batch_end(self, state, batch, running):
        self.steps.append(state.parameters.detach().clone())


@pytest.mark.parametrize("bad", [0.0, 1.0, -0.5, 1.5, float("nan")])
def test_bad_decays_are_config_errors(make_config, bad):
    with pytest.raises(MlplabError, match="ema"):
        make_config(ema=bad)


@pytest.mark.parametrize("activation", ["tanh", "relu"], ids=["autograd", "hand-written"])
def test_the_model_ends_with_the_average_of_the_training_weights_and_training_is_unchanged(blobs, make_config, activation):
    train, val = blobs
    cfg = make_config(activation, ema=0.9, epochs=3)
    initial = torch.cat([p.detach().reshape(-1) for p in build_model(cfg.model, 20, 3).parameters()])
    recorder = RecordTrainingWeights()
    model = build_model(cfg.model, 20, 3)
    history = fit(model, cfg.training, train, val, callbacks=[recorder])

    expected = initial.clone()  # the average by its definition, with the ramped-up decay
    for t, weights in enumerate(recorder.steps):
        decay = min(0.9, (1 + t) / (10 + t))
        expected = decay * expected + (1 - decay) * weights
    final = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    torch.testing.assert_close(final, expected, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(final, recorder.steps[-1], atol=1e-4)  # it is not just the last weights

    # the steps themselves are those of a run without the average, bit for bit
    plain_recorder = RecordTrainingWeights()
    fit(build_model(cfg.model, 20, 3), make_config(activation, epochs=3).training, train, val, callbacks=[plain_recorder])
    assert all(torch.equal(a, b) for a, b in zip(recorder.steps, plain_recorder.steps))
    # and the validation figures are the averaged model's
    assert history.history["val_loss"][-1] == pytest.approx(evaluate(model, val)["loss"], rel=1e-6)


def test_early_stopping_keeps_the_best_epochs_average(blobs, make_config):
    train, val = blobs
    cfg = make_config("relu", ema=0.99, epochs=6, early_stopping={"patience": 10})
    model = build_model(cfg.model, 20, 3)
    history = fit(model, cfg.training, train, val, callbacks=standard_callbacks(cfg.training, verbose=0))
    best = history.history["val_loss"][history.kept_epoch - 1]
    assert evaluate(model, val)["loss"] == pytest.approx(best, rel=1e-6)


@pytest.mark.parametrize(("activation", "where"), [("relu", "mid-epoch"), ("tanh", "epoch-boundary")],
                         ids=["hand-written-mid-epoch", "autograd-epoch-boundary"])
def test_interrupted_then_resumed_equals_uninterrupted_with_the_average(blobs, make_config, activation, where,
                                                                        assert_resume_is_bit_identical):
    train, val = blobs
    assert_resume_is_bit_identical(make_config(activation, ema=0.95, epochs=5), train, val, where, 20, 3)


def test_swapping_keeps_both_weights():
    flat = torch.nn.Parameter(torch.arange(4.0))
    average = WeightAverage(flat, 0.5)
    average.use_training_weights()
    flat.data.add_(10)
    average.update()  # decay min(0.5, 1/10) = 0.1: 0.1 · old + 0.9 · new
    torch.testing.assert_close(average.other, torch.arange(4.0) + 9)
    average.use_average()
    torch.testing.assert_close(flat.data, torch.arange(4.0) + 9)
    torch.testing.assert_close(average.training_weights(), torch.arange(4.0) + 10)
    with pytest.raises(RuntimeError, match="internal"):
        average.update()
