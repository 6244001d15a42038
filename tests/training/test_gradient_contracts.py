"""The hand-written step's contracts: known modules only, gradients as views into the flat buffer,
private torch operations looked up lazily with autograd as the fallback, and a config key that
forces autograd (recorded truthfully)."""

from __future__ import annotations

import json
import subprocess
import sys

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
from mlplab.training.losses import make_loss
from mlplab.training.optim import flatten_parameters

SPEC = ModelSpec.model_validate({"layers": [
    {"type": "dense", "units": 9, "activation": "relu"}, {"type": "dropout", "rate": 0.3}, {"type": "dense", "units": 5},
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
