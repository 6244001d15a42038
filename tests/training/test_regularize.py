"""Label smoothing (checked against torch's cross_entropy) and the max-norm constraint."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from mlplab.config import config_from_dict
from mlplab.errors import MlplabError
from mlplab.model import build_model
from mlplab.model.spec import ModelSpec
from mlplab.training import fit
from mlplab.training.device import resolve_runtime
from mlplab.training.gradients import AutogradGradients, ManualGradients
from mlplab.training.losses import make_loss
from mlplab.training.optim import flatten_parameters

SPEC = ModelSpec.model_validate({"layers": [{"type": "dense", "units": 9, "activation": "relu"},
                                            {"type": "dense", "units": 5, "activation": "relu"}]})


def config(**training):
    return config_from_dict({
        "name": "t",
        "model": {"layers": [{"type": "dense", "units": 16, "activation": "relu"}]},
        "training": {"batch_size": 32, "epochs": 3, "optimizer": {"name": "adam", "learning_rate": 0.05}, **training},
    })


@pytest.mark.parametrize("bad", [{"label_smoothing": 1.0}, {"label_smoothing": -0.1},
                                 {"label_smoothing": 0.1, "loss": "mean_squared_error"},
                                 {"max_norm": 0.0}, {"max_norm": -1.0}, {"max_norm": float("inf")}])
def test_bad_values_are_config_errors(bad):
    with pytest.raises(MlplabError, match="label_smoothing|max_norm"):
        config(**bad)


def test_smoothed_loss_matches_torch():
    logits, y = torch.randn(10, 4), torch.randint(0, 4, (10,))
    ours = make_loss("categorical_crossentropy", "softmax", 0.2)(logits, y, "mean")
    assert torch.equal(ours, F.cross_entropy(logits, y, label_smoothing=0.2))
    assert not torch.equal(ours, F.cross_entropy(logits, y))


@pytest.mark.parametrize("rows", [32, 13])
@pytest.mark.parametrize("eps", [0.1, 0.3])
def test_hand_written_step_with_smoothing_equals_torch_autograd(rows, eps):
    g = torch.Generator().manual_seed(2)
    x, y = torch.rand(rows, 11, generator=g), torch.randint(0, 4, (rows,), generator=g)
    results = []
    for kind in ("manual", "autograd"):
        model = build_model(SPEC, 11, 4, seed=0)
        flat = flatten_parameters(model)
        model.train()
        if kind == "manual":
            step = ManualGradients(model, 32, flat.grad, label_smoothing=eps)
        else:  # the reference: torch's own label_smoothing, through autograd
            step = AutogradGradients(
                model, lambda o, t, r: F.cross_entropy(o, t, reduction=r, label_smoothing=eps),
                flat.grad, resolve_runtime("cpu"))
        loss, _ = step(x, y)
        results.append((float(loss), flat.grad.clone()))
    (loss_m, grad_m), (loss_a, grad_a) = results
    assert loss_m == pytest.approx(loss_a, rel=1e-6)
    torch.testing.assert_close(grad_m, grad_a, rtol=1e-5, atol=1e-7)
    # and it differs from the unsmoothed gradient, so the test can fail
    model = build_model(SPEC, 11, 4, seed=0)
    flat = flatten_parameters(model)
    ManualGradients(model, 32, flat.grad)(x, y)
    assert not torch.allclose(flat.grad, grad_m)


def test_label_smoothing_makes_predictions_less_confident():
    g = torch.Generator().manual_seed(0)
    centers = torch.randn(3, 20, generator=g) * 3
    y = torch.randint(0, 3, (480,), generator=g)
    x = centers[y] + torch.randn(480, 20, generator=g)
    peaks = []
    for eps in (0.0, 0.3):
        cfg = config(label_smoothing=eps, epochs=5)
        model = build_model(cfg.model, 20, 3)
        fit(model, cfg.training, (x, y))
        model.eval()
        with torch.no_grad():
            peaks.append(float(torch.softmax(model(x), 1).amax(1).mean()))
    assert peaks[1] < peaks[0] - 0.05
    assert peaks[1] < 1 - 0.3 + 0.3 / 3 + 0.02  # the smoothed target's peak, about 0.8


def row_norms(model):
    return [m.weight.detach().norm(dim=1) for m in model.modules() if isinstance(m, torch.nn.Linear)]


@pytest.mark.parametrize("activation", ["relu", "tanh"], ids=["hand-written", "autograd"])
def test_max_norm_clips_every_units_incoming_weights(activation):
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(256, 20, generator=g) * 4, torch.randint(0, 3, (256,), generator=g)

    def train(**extra):
        cfg = config_from_dict({
            "name": "t", "model": {"layers": [{"type": "dense", "units": 16, "activation": activation}]},
            "training": {"batch_size": 32, "epochs": 3, "optimizer": {"name": "adam", "learning_rate": 0.05}, **extra},
        })
        model = build_model(cfg.model, 20, 3)
        fit(model, cfg.training, (x, y))
        return model

    free = max(float(n.max()) for n in row_norms(train()))
    limit = free / 3
    clipped = row_norms(train(max_norm=limit))
    assert all(float(n.max()) <= limit * (1 + 1e-5) for n in clipped)
    assert any(float(n.max()) >= limit * 0.99 for n in clipped)  # the constraint binds, not just small weights


def test_input_dropout_is_a_first_dropout_layer_that_the_hand_written_step_trains():
    """Input dropout (Srivastava et al. 2014; Keras's Dropout before the first Dense) is a dropout layer
    placed first. The hand-written step runs it, and it stops a model from leaning on a few inputs:
    here three inputs give the class away during training and are missing at test time, while 30
    weak ones carry it everywhere. Without input dropout the model learns little from the weak ones."""
    from mlplab.training.gradients import describe

    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 3, (600,), generator=g)
    weak = torch.randn(3, 30, generator=g) * 0.3
    x = torch.cat([F.one_hot(y, 3).float() * 8, weak[y] + torch.randn(600, 30, generator=g)], 1)
    train, (x_test, y_test) = (x[:400], y[:400]), (x[400:].clone(), y[400:])
    x_test[:, :3] = 0  # the give-away inputs are missing

    def accuracy_without_the_give_away(layers):
        cfg = config_from_dict({"name": "t", "model": {"layers": [*layers, {"type": "dense", "units": 32, "activation": "relu"}]},
                                "training": {"batch_size": 32, "epochs": 6,
                                             "optimizer": {"name": "adam", "learning_rate": 0.01}}})
        model = build_model(cfg.model, 33, 3)
        assert describe(model, "categorical_crossentropy", "fp32", mode="auto") == "hand-written"
        fit(model, cfg.training, train)
        with torch.no_grad():
            return float((model.predict_logits(x_test).argmax(1) == y_test).float().mean())

    plain = accuracy_without_the_give_away([])
    dropped = accuracy_without_the_give_away([{"type": "dropout", "rate": 0.5}])
    assert dropped > plain + 0.05, (plain, dropped)  # measured: 0.63 and 0.77
