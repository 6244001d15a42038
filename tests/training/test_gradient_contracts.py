"""The hand-written step's contracts: known modules only, gradients as views into the flat buffer,
private torch operations looked up lazily with autograd as the fallback, and a config key that
forces autograd (recorded truthfully)."""

from __future__ import annotations

import json
import subprocess
import sys
from functools import partial

import pytest
import torch
from torch import nn

import mlplab.training.gradients as gradients
import mlplab.training.loop as loop
from mlplab.config import config_from_dict
from mlplab.errors import ConfigError
from mlplab.model import build_model
from mlplab.model.build import Block
from mlplab.model.spec import ModelSpec
from mlplab.training import fit
from mlplab.training.device import resolve_runtime
from mlplab.training.gradients import (
    AutogradGradients, GradientContractError, ManualGradients, Support, _Program, make_gradients, private_ops, supports,
)
from mlplab.training.flat_optim import WeightCopy
from mlplab.training.losses import make_loss
from mlplab.training.optim import flatten_parameters

SPEC = ModelSpec.model_validate({"layers": [
    {"type": "dense", "units": 9, "activation": "relu"}, {"type": "dropout", "rate": 0.3}, {"type": "dense", "units": 5},
]})
SPEC_INPUT_DROPOUT = ModelSpec.model_validate({"layers": [
    {"type": "dropout", "rate": 0.2}, {"type": "dense", "units": 9, "activation": "relu"}, {"type": "dense", "units": 5},
]})


def _choose(model, flat, mode="auto"):
    return make_gradients(model, "categorical_crossentropy", make_loss("categorical_crossentropy", "softmax"),
                          flat.grad, resolve_runtime("cpu"), 16, mode=mode)


def _swap_module(model, block_index, position, module):
    """Replace one built module consistently (in the Sequential and in its block), as a bug in a kind would."""
    block = model.blocks[block_index]
    modules = list(block.modules)
    old = modules[position]
    modules[position] = module
    model.blocks[block_index] = Block(block.placed, tuple(modules))
    index = next(i for i, m in enumerate(model.layers) if m is old)
    model.layers[index] = module


def test_only_known_modules_take_the_fast_path():
    model = build_model(SPEC, 11, 4)
    flat = flatten_parameters(model)
    assert isinstance(_choose(model, flat), ManualGradients)
    _swap_module(model, 1, 0, nn.Dropout(0.3))  # torch's dropout: not mlplab's, whose masks the step draws
    assert supports(model, "categorical_crossentropy", "fp32") == Support(False, "no hand-written operations for Dropout")
    assert isinstance(_choose(model, flat), AutogradGradients)
    # Even if a caller skipped `supports`, the program refuses what it has no operations for.
    with pytest.raises(GradientContractError, match="no operations for Dropout"):
        _Program(model, 8, flat.grad, private_ops())


def test_a_module_changed_behind_the_models_back_means_autograd():
    model = build_model(SPEC, 11, 4)
    flat = flatten_parameters(model)
    model.layers[1] = nn.Tanh()
    assert supports(model, "categorical_crossentropy", "fp32") == Support(
        False, "the model's modules were changed after it was built")
    assert isinstance(_choose(model, flat), AutogradGradients)


def test_gradients_must_be_views_into_the_flat_buffer():
    model = build_model(SPEC, 11, 4)
    with pytest.raises(GradientContractError, match="gradient of layers.0.weight is not a view into the flat"):
        ManualGradients(model, 8, torch.zeros(sum(p.numel() for p in model.parameters())))  # never flattened
    flat = flatten_parameters(model)
    step = ManualGradients(model, 8, flat.grad)
    x, y = torch.rand(8, 11), torch.randint(0, 4, (8,))
    step(x, y)
    model.layers[3].weight.grad = torch.zeros_like(model.layers[3].weight)  # detached from the buffer
    with pytest.raises(GradientContractError, match="gradient of layers.3.weight is not a view"):
        step(torch.rand(5, 11), torch.randint(0, 4, (5,)))  # a new row count builds a new program: checked


def test_a_missing_private_op_falls_back_to_autograd(monkeypatch, blobs, make_config):
    def missing():
        raise AttributeError("module 'torch' has no attribute '_log_softmax'")

    monkeypatch.setattr(gradients, "_lookup_private_ops", missing)
    model = build_model(SPEC, 11, 4)
    flat = flatten_parameters(model)
    support = supports(model, "categorical_crossentropy", "fp32")
    assert not support.ok and support.reason.startswith(f"torch {torch.__version__} lacks an operation it needs")
    assert isinstance(_choose(model, flat), AutogradGradients)
    cfg = make_config("relu", epochs=1)
    history = fit(build_model(cfg.model, 20, 3), cfg.training, *blobs)
    assert len(history.history["loss"]) == 1


def test_importing_mlplab_does_not_touch_private_ops():
    code = (
        "import torch; del torch._log_softmax\n"
        "import mlplab.training, mlplab.training.gradients as g\n"
        "from mlplab.model import build_model; from mlplab.model.spec import ModelSpec\n"
        "s = g.supports(build_model(ModelSpec(), 4, 2), 'categorical_crossentropy', 'fp32')\n"
        "print(s.ok, s.reason)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("False torch") and "_log_softmax" in result.stdout


@pytest.mark.parametrize("mode", ["auto", "autograd"])
def test_the_config_key_chooses_the_step(mode, monkeypatch, blobs, make_config):
    chosen = []
    real = loop.make_gradients

    def spy(*args, **kwargs):
        chosen.append(real(*args, **kwargs))
        return chosen[-1]

    monkeypatch.setattr(loop, "make_gradients", spy)
    cfg = make_config("relu", epochs=1, gradients=mode)  # relu: the hand-written step applies
    fit(build_model(cfg.model, 20, 3), cfg.training, *blobs)
    assert [type(step) for step in chosen] == [ManualGradients if mode == "auto" else AutogradGradients]
    assert gradients.describe(build_model(cfg.model, 20, 3), "categorical_crossentropy", "fp32", mode=mode) == (
        "hand-written" if mode == "auto" else "autograd (training.gradients = 'autograd')")


def test_the_config_key_is_validated():
    with pytest.raises(ConfigError, match="training.gradients must be one of 'auto' or 'autograd', got 'manual'"):
        config_from_dict({"model": {}, "training": {"gradients": "manual"}})
    assert config_from_dict({"model": {}}).training.gradients == "auto"


def test_run_json_records_the_forced_step(mnist_dir, tmp_path, capsys):
    from mlplab.cli.main import main

    out = tmp_path / "run"
    code = main(["train", "tutorial-50-25", "--limit", "500", "--set", "training.epochs=1",
                 "--set", "training.gradients=autograd", "--out", str(out), "--verbose", "0"])
    assert code == 0, capsys.readouterr().err
    runtime = json.loads((out / "run.json").read_text())["runtime"]
    assert runtime["gradients"] == "autograd (training.gradients = 'autograd')"


@pytest.mark.parametrize("precision", ["fp16", "auto"])
def test_only_fp32_and_bf16_are_written_by_hand(precision):
    """fp16 (not offered) and an unresolved "auto" go to autograd, and the record says why."""
    model = build_model(SPEC, 11, 4)
    assert supports(model, "categorical_crossentropy", precision) == Support(False, f"precision {precision}")
    assert gradients.describe(model, "categorical_crossentropy", precision, mode="auto") == (
        f"autograd (precision {precision})")


def test_the_bf16_step_refuses_to_start_without_the_master_weights():
    model = build_model(SPEC, 11, 4)
    flat = flatten_parameters(model)
    with pytest.raises(GradientContractError,
                       match=r"^internal error: the bf16 hand-written step needs the flat parameters$"):
        make_gradients(model, "categorical_crossentropy", make_loss("categorical_crossentropy", "softmax"),
                       flat.grad, resolve_runtime("cpu", "bf16"), 16)


def _bound_tensors(calls):
    """The tensors a program's calls are bound to: partial arguments, bound methods' tensors, lambdas'
    defaults and closures (the buffers are allocated once, when the program is built)."""
    found = []
    for call in calls:
        if isinstance(call, partial):
            values = [*call.args, *call.keywords.values(), getattr(call.func, "__self__", None)]
        else:
            values = [*(getattr(call, "__defaults__", None) or ()),
                      *(cell.cell_contents for cell in (getattr(call, "__closure__", None) or ())),
                      getattr(call, "__self__", None)]  # a tensor's method (relu_)
        found += [value for value in values if isinstance(value, torch.Tensor)]
    return found


def _program_tensors(program):
    attributes = [value for value in vars(program).values() if isinstance(value, torch.Tensor)]
    return attributes + _bound_tensors(program.forward) + _bound_tensors(program.backward)


@pytest.mark.parametrize("low", [False, True], ids=["fp32-products", "bf16-products"])
def test_the_programs_buffers_follow_the_models_device_and_dtype(low):
    """Built for a float64 model on torch's `meta` device (where building works and nothing computes),
    every buffer must be there too and in the model's dtype, never torch's defaults (the CPU, float32):
    on a GPU a buffer left on the CPU fails or copies every step. bf16 products: the bf16 copy's dtype."""
    model = build_model(SPEC, 11, 4).to(device="meta", dtype=torch.float64)
    flat = flatten_parameters(model)
    weights = WeightCopy(flat.detach()) if low else None
    program = _Program(model, 8, flat.grad, private_ops(), 0.1, weights)
    tensors = _program_tensors(program)
    assert len(tensors) > 20 and all(tensor.device.type == "meta" for tensor in tensors)
    dtypes = {tensor.dtype for tensor in tensors}
    assert dtypes == ({torch.float64, torch.bfloat16, torch.int64} if low else {torch.float64, torch.int64})
    assert program.predicted.dtype == torch.int64 and program.eye.dtype == program.one_hot.dtype == torch.float64
    # each buffer at its final size when built, so that no step allocates
    assert program.log_probs.shape == program.one_hot.shape == (8, 4) and program.predicted.shape == (8,)
    if low:
        assert program.grad_twin.dtype == torch.bfloat16


def test_the_backward_pass_stops_at_the_first_product():
    """Nobody needs the gradient of the batch, nor of the dropout before the first layer: the backward
    pass reads the first layer's input (the dropped-out batch, for the weight gradient) and writes no
    tensor shaped like the batch of its own."""
    model = build_model(SPEC_INPUT_DROPOUT, 11, 4)
    flat = flatten_parameters(model)
    program = _Program(model, 8, flat.grad, private_ops())
    forward = [t for t in _bound_tensors(program.forward) if tuple(t.shape) == (8, 11)]
    backward = [t for t in _bound_tensors(program.backward) if tuple(t.shape) == (8, 11)]
    assert len(forward) >= 2 and backward  # the mask and the dropped-out batch; the latter read by backward
    assert all(any(t is f for f in forward) for t in backward)


def test_an_fp32_program_copies_nothing_and_without_smoothing_targets_one_hot_rows():
    """In fp32 the products read the dropout masks where they were drawn (copies and casts are for
    bf16 products only); without label smoothing the targets are the identity's rows."""
    model = build_model(SPEC, 11, 4)  # dropout after a product: bf16 products would cast its mask
    flat = flatten_parameters(model)
    program = _Program(model, 8, flat.grad, private_ops())
    names = [getattr(call.func if isinstance(call, partial) else call, "__name__", "") for call in program.forward]
    assert "copy_" not in names and "draw_mask" in names
    assert torch.equal(program.eye, torch.eye(4))


def test_a_float64_model_gets_float64_gradients_equal_to_autograds():
    x, y = torch.rand(8, 11, dtype=torch.float64), torch.randint(0, 4, (8,))
    grads = []
    for kind in (ManualGradients, AutogradGradients):
        model = build_model(SPEC, 11, 4).to(torch.float64)
        flat = flatten_parameters(model)
        model.seed_dropout(3)
        model.train()
        step = (ManualGradients(model, 8, flat.grad) if kind is ManualGradients else
                AutogradGradients(model, make_loss("categorical_crossentropy", "softmax"), flat.grad, resolve_runtime("cpu")))
        step(x, y)
        grads.append(flat.grad.clone())
    assert grads[0].dtype == torch.float64 and grads[0].abs().sum() > 0
    # fp32's tolerance: AutogradGradients computes the loss in fp32 (`outputs.float()`), as mixed precision needs
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-5, atol=1e-7)


def test_a_step_writes_into_the_buffers_allocated_when_the_program_was_built():
    """Predictions and targets land in the program's own buffers, so a step allocates none of its own."""
    model = build_model(SPEC, 11, 4)
    flat = flatten_parameters(model)
    program = _Program(model, 8, flat.grad, private_ops())
    predicted, one_hot = program.predicted, program.one_hot
    predicted.fill_(-1)
    one_hot.fill_(float("nan"))
    x, y = torch.rand(8, 11), torch.tensor([0, 1, 2, 3, 3, 2, 1, 0])
    with torch.no_grad():  # as ManualGradients runs it
        program.run(x, y)
    assert program.predicted is predicted and program.one_hot is one_hot
    assert torch.equal(predicted, program.logits.argmax(1))
    assert torch.equal(one_hot, torch.eye(4)[y])
    assert program.x is None  # the batch is not kept alive between steps
