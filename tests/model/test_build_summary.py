"""Built models have exactly the declared structure; summaries and FLOP counts are exact."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from mlplab.config import load_config
from mlplab.model.dropout import FastDropout
from mlplab.model import BatchNorm, Dense, Dropout, ModelSpec, build_model, summarize
from mlplab.model.flops import training_flops, training_flops_per_sample


@pytest.mark.parametrize(
    ("name", "params"), [("tutorial-50-25", 40_785), ("tutorial-512-512", 669_706), ("tutorial-128-64", 109_386)]
)
def test_tutorial_parameter_counts(name, params):
    cfg = load_config(name)
    summary = summarize(cfg.model, 784, 10, name=name)
    assert summary.total_params == summary.trainable_params == params
    assert summary.non_trainable_params == 0
    assert sum(p.numel() for p in build_model(cfg.model).parameters()) == params


def test_built_module_structure_is_exact():
    model = build_model(load_config("tutorial-512-512").model)
    kinds = [type(m) for m in model.layers]
    assert kinds == [nn.Linear, nn.ReLU, FastDropout, nn.Linear, nn.ReLU, FastDropout, nn.Linear]
    shapes = [tuple(m.weight.shape) for m in model.layers if isinstance(m, nn.Linear)]
    assert shapes == [(512, 784), (512, 512), (10, 512)]
    assert [m.p for m in model.layers if isinstance(m, FastDropout)] == [0.2, 0.2]


def test_summary_table_rows_and_text():
    cfg = load_config("tutorial-50-25")
    summary = summarize(cfg.model, 784, 10, name="tutorial-50-25")
    assert [(r.name, r.kind, r.output_shape, r.params) for r in summary.rows] == [
        ("dense", "Dense", (None, 50), 39_250),
        ("dense_1", "Dense", (None, 25), 1_275),
        ("dense_2", "Dense", (None, 10), 260),
    ]
    lines: list[str] = []
    summary.print(lines.append)
    text = "\n".join(lines)
    assert 'Model: "tutorial-50-25"' in text
    assert "Total params: 40,785" in text and "Non-trainable params: 0" in text
    assert "(None, 50)" in text and "39,250" in text


def test_batch_norm_counts_like_keras():
    spec = ModelSpec(layers=[Dense(units=32, activation="relu"), BatchNorm()])
    summary = summarize(spec, 784, 10)
    assert summary.rows[1].params == 128 and summary.rows[1].trainable == 64
    assert summary.non_trainable_params == 64
    model = build_model(spec)
    trainable = sum(p.numel() for p in model.parameters())
    buffers = sum(b.numel() for n, b in model.named_buffers() if "running" in n)
    assert (trainable, buffers) == (summary.trainable_params, summary.non_trainable_params)


def test_glorot_uniform_init_and_zero_bias():
    model = build_model(ModelSpec(layers=[Dense(units=512, activation="relu")]), 784, 10, seed=3)
    first = model.layers[0]
    limit = math.sqrt(6 / (784 + 512))
    assert first.weight.abs().max() <= limit
    assert first.weight.abs().max() > 0.95 * limit  # uniform over the whole range, not a narrower one
    assert torch.all(first.bias == 0)
    again = build_model(ModelSpec(layers=[Dense(units=512, activation="relu")]), 784, 10, seed=3)
    assert torch.equal(first.weight, again.layers[0].weight)


def test_flops_hand_count_for_the_tutorial_models():
    # forward 2·i·o per layer; backward twice that, less the first layer's input gradient
    small = load_config("tutorial-50-25").model
    fwd = 2 * (784 * 50 + 50 * 25 + 25 * 10)
    assert training_flops_per_sample(small, 784, 10) == 3 * fwd - 2 * 784 * 50 == 165_800
    wide = load_config("tutorial-512-512").model
    assert training_flops_per_sample(wide, 784, 10) == 6 * (784 * 512 + 512 * 512 + 512 * 10) - 2 * 784 * 512
    assert training_flops(small, 784, 10, 1000) == 1000 * 165_800


def _measured_training_flops(spec: ModelSpec, features: int, classes: int, batch: int) -> int:
    model = build_model(spec, features, classes)
    x = torch.randn(batch, features)
    y = torch.randint(0, classes, (batch,))
    with FlopCounterMode(display=False) as counter:
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
    return counter.get_total_flops()


@settings(max_examples=25, deadline=None)
@given(
    widths=st.lists(st.integers(1, 40), min_size=0, max_size=4),
    features=st.integers(1, 50),
    classes=st.integers(2, 12),
    batch=st.integers(1, 9),
    dropout=st.booleans(),
)
def test_flops_match_pytorchs_counter_on_random_architectures(widths, features, classes, batch, dropout):
    layers = []
    for w in widths:
        layers.append(Dense(units=w, activation="relu"))
        if dropout:
            layers.append(Dropout(rate=0.1))
    spec = ModelSpec(layers=layers)
    assert _measured_training_flops(spec, features, classes, batch) == training_flops(spec, features, classes, batch)


def test_predictions_are_eval_mode_outputs_without_switching_modes():
    spec = ModelSpec.model_validate({"layers": [
        {"type": "dense", "units": 16, "activation": "relu"}, {"type": "batch_norm"}, {"type": "dropout", "rate": 0.5},
        {"type": "dense", "units": 8, "activation": "tanh"}, {"type": "dropout", "rate": 0.2},
    ]})
    model = build_model(spec, 12, 3)
    x = torch.rand(50, 12)
    for _ in range(3):  # move batch norm's running statistics away from their start
        model(x * 3 + 1)
    assert model.training
    got = model.predict_logits(x)
    assert model.training  # untouched
    model.eval()
    with torch.no_grad():
        assert torch.equal(got, model(x))
    torch.testing.assert_close(model.predict_logits(x, batch_size=7), got)  # other blocking, same values
    assert torch.allclose(model.predict_proba(x).sum(dim=1), torch.ones(50))
