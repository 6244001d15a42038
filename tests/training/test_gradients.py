"""The hand-written step computes what autograd computes, and is chosen only where it applies."""

from __future__ import annotations

import pytest
import torch

from mlplab.model import build_model
from mlplab.model.spec import ModelSpec
from mlplab.training.device import resolve_runtime
from mlplab.training.gradients import (
    AutogradGradients, ManualGradients, Support, describe, make_gradients, supports,
)
from mlplab.training.losses import make_loss
from mlplab.training.optim import flatten_parameters


def spec(*layers, output="softmax"):
    return ModelSpec.model_validate({"layers": list(layers), "output": {"activation": output}})


PLAIN = [
    spec({"type": "dense", "units": 7, "activation": "relu"}),
    spec({"type": "dense", "units": 9, "activation": "relu"}, {"type": "dropout", "rate": 0.3},
         {"type": "dense", "units": 5, "activation": "relu"}, {"type": "dropout", "rate": 0.15}),
    spec({"type": "dropout", "rate": 0.2}, {"type": "dense", "units": 6}, {"type": "dense", "units": 4, "activation": "relu"},
         output="linear"),
    spec(),  # logistic regression: the output layer alone
]


def gradients_by(kind, model_spec, x, y, seed=3):
    model = build_model(model_spec, x.shape[1], 4, seed=0)
    flat = flatten_parameters(model)
    model.seed_dropout(seed)
    model.train()
    if kind == "manual":
        step = ManualGradients(model, 32, flat.grad)
    else:
        step = AutogradGradients(model, make_loss("categorical_crossentropy", "softmax"), flat.grad, resolve_runtime("cpu"))
    loss, correct = step(x, y)
    return float(loss), int(correct), flat.grad.clone()


@pytest.mark.parametrize("model_spec", PLAIN, ids=["one-hidden", "dropout", "input-dropout-linear", "no-hidden"])
@pytest.mark.parametrize("rows", [32, 13], ids=["full-batch", "last-partial-batch"])
def test_manual_gradients_equal_autograd(model_spec, rows):
    generator = torch.Generator().manual_seed(1)
    x = torch.rand(rows, 11, generator=generator)
    y = torch.randint(0, 4, (rows,), generator=generator)
    loss_m, correct_m, grad_m = gradients_by("manual", model_spec, x, y)
    loss_a, correct_a, grad_a = gradients_by("autograd", model_spec, x, y)
    assert loss_m == loss_a  # the same log-softmax and nll kernels
    assert correct_m == correct_a
    assert grad_m.abs().sum() > 0
    torch.testing.assert_close(grad_m, grad_a, rtol=1e-5, atol=1e-7)


def test_manual_gradients_overwrite_stale_ones():
    x, y = torch.rand(8, 11), torch.randint(0, 4, (8,))
    model = build_model(PLAIN[0], 11, 4)
    flat = flatten_parameters(model)
    step = ManualGradients(model, 8, flat.grad)
    step(x, y)
    first = flat.grad.clone()
    flat.grad.fill_(float("nan"))  # beta=0 products must not read what was there
    step(x, y)
    assert torch.equal(flat.grad, first)
    with pytest.raises(ValueError, match="a batch of 9 rows, but the buffers hold 8"):
        step(torch.rand(9, 11), torch.randint(0, 4, (9,)))


@pytest.mark.parametrize(
    ("model_spec", "loss", "precision", "mode", "reason"),
    [
        (spec({"type": "dense", "units": 4, "activation": "gelu"}), "categorical_crossentropy", "fp32", "auto",
         "activation gelu"),
        (spec({"type": "dense", "units": 4}, {"type": "batch_norm"}), "categorical_crossentropy", "fp32", "auto",
         "layer batch_norm"),
        (spec({"type": "dense", "units": 4, "use_bias": False}), "categorical_crossentropy", "fp32", "auto",
         "a dense layer without bias"),
        (PLAIN[1], "mean_squared_error", "fp32", "auto", "loss mean_squared_error"),
        (PLAIN[1], "categorical_crossentropy", "bf16", "auto", None),  # bf16 products, fp32 master weights
        (PLAIN[1], "categorical_crossentropy", "fp32", "autograd", "training.gradients = 'autograd'"),
        (PLAIN[1], "categorical_crossentropy", "fp32", "auto", None),
    ],
)
def test_supports_names_what_it_cannot_do(model_spec, loss, precision, mode, reason):
    model = build_model(model_spec, 11, 4)
    support = supports(model, loss, precision, mode=mode)
    assert isinstance(support, Support) and support.ok is (reason is None)
    if reason is not None:
        assert support.reason == reason
    assert describe(model, loss, precision, mode=mode) == ("hand-written" if reason is None else f"autograd ({reason})")
    flat = flatten_parameters(model)
    runtime = resolve_runtime("cpu", precision)
    step = make_gradients(model, loss, make_loss(loss, "softmax"), flat.grad, runtime, 16, mode=mode, parameters=flat)
    assert isinstance(step, ManualGradients if reason is None else AutogradGradients)
    assert (step.weight_copy is not None) == (reason is None and precision == "bf16")
    if not supports(model, "categorical_crossentropy", "fp32").ok:
        with pytest.raises(ValueError, match="hand-written step cannot train"):
            ManualGradients(model, 16, flat.grad)


def test_training_by_hand_follows_autograds_trajectory(blobs, make_config):
    """Whole runs agree: same masks, same batches, gradients equal up to rounding (4 epochs, Adam, dropout)."""
    from mlplab.training import fit

    train, val = blobs
    runs = {}
    for mode in ("auto", "autograd"):  # relu: "auto" is the hand-written step (test_gradient_contracts checks)
        cfg = make_config("relu", gradients=mode)
        model = build_model(cfg.model, 20, 3, seed=0)
        history = fit(model, cfg.training, train, val)
        runs[mode] = (model.state_dict(), history)
    (hand, hand_history), (auto, auto_history) = runs["auto"], runs["autograd"]
    for key in hand:
        torch.testing.assert_close(hand[key], auto[key], rtol=1e-4, atol=1e-5)
    assert hand_history.history["loss"] == pytest.approx(auto_history.history["loss"], rel=1e-4)
    assert hand_history.history["val_accuracy"] == auto_history.history["val_accuracy"]
