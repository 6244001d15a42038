"""The flat-gradient contract, case by case: each way a `.grad` can fail to be part of the buffer the
optimizer reads is refused with its message (a layer whose gradient lies elsewhere silently stops
learning); and `make_gradients`' defaults are the plain hand-written step.
"""

from __future__ import annotations

import pytest
import torch

import mlplab.training.gradients as gradients
from mlplab.model import build_model
from mlplab.model.spec import ModelSpec
from mlplab.training.device import resolve_runtime
from mlplab.training.gradients import (
    AutogradGradients, GradientContractError, ManualGradients, Support, check_gradient_views, make_gradients,
    private_ops,
)
from mlplab.training.losses import make_loss

SPEC = ModelSpec.model_validate({"layers": [{"type": "dense", "units": 6, "activation": "relu"}]})
BUFFER_MESSAGE = "^internal error: the flat gradient buffer must be one contiguous 1-d tensor$"
VIEW_MESSAGE = ("^internal error: the gradient of {} is not a view into the flat gradient buffer "
                r"\(call mlplab.training.optim.flatten_parameters before building the step\)$")


def _model_with_grads_in(buffer: torch.Tensor):
    """A model whose parameters' gradients are consecutive views into `buffer` (from its start)."""
    model = build_model(SPEC, 5, 3)
    offset = 0
    for param in model.parameters():
        param.grad = buffer[offset:offset + param.numel()].view_as(param)
        offset += param.numel()
    return model, offset


def test_views_laid_end_to_end_over_the_whole_buffer_pass():
    size = sum(p.numel() for p in build_model(SPEC, 5, 3).parameters())
    buffer = torch.zeros(size)
    model, used = _model_with_grads_in(buffer)
    assert used == size
    check_gradient_views(model, buffer)


@pytest.mark.parametrize("shape", ["none", "2-d", "strided"])
def test_the_buffer_itself_must_be_one_contiguous_1d_tensor(shape):
    buffer = torch.zeros(200)
    model, used = _model_with_grads_in(buffer)
    flat = {"none": None, "2-d": buffer[:used].view(1, used), "strided": buffer[::2]}[shape]
    with pytest.raises(GradientContractError, match=BUFFER_MESSAGE):
        check_gradient_views(model, flat)


def test_a_transposed_gradient_in_the_buffer_is_refused():
    buffer = torch.zeros(200)
    model, used = _model_with_grads_in(buffer)
    weight = model.layers[0].weight  # (6, 5)
    weight.grad = buffer[:30].view(5, 6).t()  # right storage and place, not contiguous
    with pytest.raises(GradientContractError, match=VIEW_MESSAGE.format("layers.0.weight")):
        check_gradient_views(model, buffer[:used])


def test_a_gradient_just_past_the_end_of_the_buffer_is_refused():
    big = torch.zeros(400)
    model, used = _model_with_grads_in(big)
    last_name, last = list(model.named_parameters())[-1]
    last.grad = big[used:used + last.numel()].view_as(last)  # same storage, starting exactly at the end
    flat = big[:used]
    with pytest.raises(GradientContractError, match=VIEW_MESSAGE.format(last_name)):
        check_gradient_views(model, flat)


def test_a_buffer_longer_than_the_gradients_is_refused_with_the_counts():
    buffer = torch.zeros(200)
    model, used = _model_with_grads_in(buffer)
    with pytest.raises(GradientContractError,
                       match=f"^internal error: the parameters' gradients cover {used} of the flat buffer's "
                             f"{used + 1} values$"):
        check_gradient_views(model, buffer[:used + 1])


def test_make_gradients_defaults_to_the_hand_written_step_without_label_smoothing():
    from mlplab.training.optim import flatten_parameters

    model = build_model(SPEC, 5, 3, seed=1)
    flat = flatten_parameters(model)
    loss_fn = make_loss("categorical_crossentropy", "softmax")
    step = make_gradients(model, "categorical_crossentropy", loss_fn, flat.grad, resolve_runtime("cpu"), 8)
    assert isinstance(step, ManualGradients)
    x, y = torch.rand(8, 5, generator=torch.Generator().manual_seed(0)), torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    loss, _ = step(x, y)
    with torch.no_grad():
        expected = float(torch.nn.functional.cross_entropy(model(x), y))
    assert float(loss) == pytest.approx(expected, rel=1e-6)
    forced = make_gradients(model, "categorical_crossentropy", loss_fn, flat.grad, resolve_runtime("cpu"), 8,
                            mode="autograd")
    assert isinstance(forced, AutogradGradients)


def test_a_missing_private_op_is_an_exact_support_answer(monkeypatch):
    def missing():
        raise RuntimeError("no such operator aten::threshold_backward")

    monkeypatch.setattr(gradients, "_lookup_private_ops", missing)
    assert private_ops() == Support(False, f"torch {torch.__version__} lacks an operation it needs "
                                           "(RuntimeError: no such operator aten::threshold_backward)")


def test_a_supported_model_gets_the_exact_yes():
    from mlplab.training.gradients import supports

    model = build_model(SPEC, 5, 3)
    assert supports(model, "categorical_crossentropy", "fp32") == Support(True, "every layer has hand-written operations")


def test_a_dropout_of_rate_0_is_skipped_and_the_layers_after_it_still_learn():
    from mlplab.training.optim import flatten_parameters

    spec = ModelSpec.model_validate({"layers": [
        {"type": "dense", "units": 6, "activation": "relu"}, {"type": "dropout", "rate": 0.0},
        {"type": "dense", "units": 4, "activation": "relu"}]})
    x, y = torch.rand(8, 5, generator=torch.Generator().manual_seed(2)), torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    grads = []
    for step_kind in (ManualGradients, AutogradGradients):
        model = build_model(spec, 5, 3, seed=4)
        flat = flatten_parameters(model)
        if step_kind is ManualGradients:
            step = ManualGradients(model, 8, flat.grad)
        else:
            step = AutogradGradients(model, make_loss("categorical_crossentropy", "softmax"), flat.grad,
                                     resolve_runtime("cpu"))
        step(x, y)
        grads.append(flat.grad.clone())
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-5, atol=1e-7)
