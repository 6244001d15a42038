"""The layer-kind registry: each kind is built, summarised, counted and judged for the fast step
exactly as declared, from the one walk over the layers; sizes are checked before allocating."""

from __future__ import annotations

import math
import warnings
import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from mlplab.config import config_from_dict
from mlplab.errors import ConfigError
from mlplab.model import ModelSpec, build_model, summarize
from mlplab.model.build import MLP
from mlplab.model.dropout import FastDropout
from mlplab.model.flops import dense_shapes, training_flops
from mlplab.model.layers import (
    ACTIVATIONS, HIDDEN_KINDS, MAX_PARAMETERS, MAX_WIDTH, BatchNorm, Dense, Dropout, Output, Support,
    activation_module, check_parameters, checked_widths,
)
from mlplab.validation import union_member_names

EVERY_KIND = ModelSpec(
    layers=[
        Dropout(rate=0.1),
        Dense(units=12, activation="tanh"),
        BatchNorm(momentum=0.9, epsilon=1e-4),
        Dense(units=6, activation="relu", use_bias=False),
        Dropout(rate=0.3),
        Dense(units=5),
    ],
    output=Output(activation="linear"),
)


def test_the_walk_tracks_widths_through_every_kind():
    placed = EVERY_KIND.walk(9, 4)
    assert [(type(p.layer).__name__, p.in_width, p.out_width) for p in placed] == [
        ("Dropout", 9, 9), ("Dense", 9, 12), ("BatchNorm", 12, 12), ("Dense", 12, 6), ("Dropout", 6, 6),
        ("Dense", 6, 5), ("Output", 5, 4),
    ]


def test_each_kind_builds_exactly_its_modules():
    model = build_model(EVERY_KIND, 9, 4)
    built = [[type(m) for m in block.modules] for block in model.blocks]
    assert built == [
        [FastDropout], [nn.Linear, nn.Tanh], [nn.BatchNorm1d], [nn.Linear, nn.ReLU], [FastDropout], [nn.Linear], [nn.Linear],
    ]
    assert [m for block in model.blocks for m in block.modules] == list(model.layers)  # registered once, in order
    linears = [m for m in model.layers if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features, m.bias is not None) for m in linears] == [
        (9, 12, True), (12, 6, False), (6, 5, True), (5, 4, True),
    ]
    bn = model.blocks[2].modules[0]
    assert (bn.num_features, bn.eps, bn.momentum) == (12, 1e-4, pytest.approx(0.1))  # torch's momentum is 1 - Keras's
    assert [m.p for m in model.dropout_layers()] == [0.1, 0.3]
    assert [k for k in model.state_dict()][:3] == ["layers.1.weight", "layers.1.bias", "layers.3.weight"]


def test_each_kind_is_summarised_with_kerass_names_and_counts():
    rows = summarize(EVERY_KIND, 9, 4).rows
    assert [(r.name, r.kind, r.output_shape, r.params, r.trainable, r.activation) for r in rows] == [
        ("dropout", "Dropout", (None, 9), 0, 0, None),
        ("dense", "Dense", (None, 12), 9 * 12 + 12, 9 * 12 + 12, "tanh"),
        ("batch_normalization", "BatchNormalization", (None, 12), 48, 24, None),
        ("dense_1", "Dense", (None, 6), 12 * 6, 12 * 6, "relu"),
        ("dropout_1", "Dropout", (None, 6), 0, 0, None),
        ("dense_2", "Dense", (None, 5), 6 * 5 + 5, 6 * 5 + 5, "linear"),
        ("dense_3", "Dense", (None, 4), 5 * 4 + 4, 5 * 4 + 4, "linear"),
    ]
    model = build_model(EVERY_KIND, 9, 4)
    summary = summarize(EVERY_KIND, 9, 4)
    assert summary.trainable_params == sum(p.numel() for p in model.parameters())
    assert summary.non_trainable_params == sum(b.numel() for n, b in model.named_buffers() if "running" in n)


def test_each_kind_declares_its_products_and_the_count_matches_pytorchs():
    assert dense_shapes(EVERY_KIND, 9, 4) == [(9, 12), (12, 6), (6, 5), (5, 4)]
    model = build_model(EVERY_KIND, 9, 4)
    x, y = torch.rand(8, 9), torch.randint(0, 4, (8,))
    with FlopCounterMode(display=False) as counter:
        nn.functional.cross_entropy(model(x), y).backward()
    assert counter.get_total_flops() == training_flops(EVERY_KIND, 9, 4, 8)


@pytest.mark.parametrize(
    ("layer", "support"),
    [
        (Dense(units=3, activation="relu"), Support(True, "hand-written operations exist")),
        (Dense(units=3), Support(True, "hand-written operations exist")),
        (Dense(units=3, activation="gelu"), Support(False, "activation gelu")),
        (Dense(units=3, activation="relu", use_bias=False), Support(False, "a dense layer without bias")),
        (Dropout(rate=0.5), Support(True, "hand-written operations exist")),
        (BatchNorm(), Support(False, "layer batch_norm")),
        (Output(activation="softmax"), Support(True, "hand-written operations exist")),
    ],
)
def test_each_kind_says_whether_the_fast_step_runs_it(layer, support):
    assert layer.fast_step() == support


def test_the_registry_is_what_configs_accept_and_what_error_paths_hide():
    tags = [kind.model_fields["type"].default for kind in HIDDEN_KINDS]
    assert tags == ["dense", "dropout", "batch_norm"]
    with pytest.raises(ConfigError, match="type must be one of 'dense', 'dropout', 'batch_norm', got 'conv'"):
        config_from_dict({"model": {"layers": [{"type": "conv"}]}})
    assert set(tags) | {"rmsprop", "adam", "adamw", "sgd", "EarlyStopping"} <= union_member_names()
    # A key that spells a tag is still shown when it is the offending key itself.
    with pytest.raises(ConfigError, match=r"model.layers\[0\].dense is not a known key"):
        config_from_dict({"model": {"layers": [{"type": "dense", "units": 3, "dense": 1}]}})


def test_sizes_are_checked_before_anything_is_allocated():
    with pytest.raises(ConfigError, match=rf"model.layers\[0\].units must be at most {MAX_WIDTH:,}, got 1,000,000,000"):
        config_from_dict({"model": {"layers": [{"type": "dense", "units": 10**9}]}})
    with pytest.raises(ValueError, match="num_features must be in \\[1, 1,048,576\\], got 1,000,000,000,000"):
        MLP(ModelSpec(), 10**12, 10)
    with pytest.raises(ValueError, match="num_classes must be in \\[2, 1,048,576\\], got 1"):
        MLP(ModelSpec(), 784, 1)
    wide = ModelSpec(layers=[Dense(units=MAX_WIDTH)])  # 784 · 2^20 weights: within each width, over the total
    with pytest.raises(ValueError, match=f"more than the limit of {MAX_PARAMETERS:,}"):
        build_model(wide, 784, 10)
    for bad in (True, 784.0, "784"):
        with pytest.raises(ValueError, match=f"num_features must be an integer, got {bad!r}"):
            MLP(ModelSpec(), bad, 10)
    assert MLP(ModelSpec(), np.int64(784), 10).num_features == 784  # NumPy integers are integers
    assert checked_widths(1, 2) == (1, 2) and checked_widths(MAX_WIDTH, MAX_WIDTH) == (MAX_WIDTH, MAX_WIDTH)  # bounds included
    with pytest.raises(ValueError, match=f"num_classes must be in \\[2, 1,048,576\\], got {MAX_WIDTH + 1:,}"):
        checked_widths(1, MAX_WIDTH + 1)


def test_the_size_limit_counts_batch_norms_statistics_too():
    # The limit is stated in Keras's count, which includes batch norm's moving mean and variance:
    # here the trainable weights alone fit and the whole model does not. (Checked on the walk, so
    # nothing is allocated whichever way it goes.)
    placed = ModelSpec(layers=[Dense(units=MAX_WIDTH), BatchNorm()]).walk(250, 2)
    total, trainable = (sum(p.parameters[i] for p in placed) for i in (0, 1))
    assert trainable <= MAX_PARAMETERS < total
    with pytest.raises(ConfigError, match=f"would have {total:,} parameters, more than the limit"):
        check_parameters(placed)
    # and the limit itself is allowed: 262,655 · 1,022 + (1,022 + 1) · 2 = 2^28 exactly
    at_limit = ModelSpec(layers=[Dense(units=1022, use_bias=False)]).walk(262_655, 2)
    assert check_parameters(at_limit) == MAX_PARAMETERS


# Keras's definitions, written out (leaky_relu's slope is Keras 3's default, gelu the exact form)
KERAS_ACTIVATIONS = {
    "relu": lambda x: np.maximum(x, 0.0),
    "sigmoid": lambda x: 1.0 / (1.0 + np.exp(-x)),
    "tanh": np.tanh,
    "gelu": lambda x: x * 0.5 * (1.0 + np.vectorize(math.erf)(x / math.sqrt(2.0))),
    "silu": lambda x: x / (1.0 + np.exp(-x)),
    "elu": lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0.0))),
    "leaky_relu": lambda x: np.where(x > 0, x, 0.2 * x),
    "softmax": lambda x: np.exp(x) / np.exp(x).sum(axis=1, keepdims=True),
}


@pytest.mark.parametrize("name", [a for a in ACTIVATIONS if a != "linear"])
def test_each_hidden_activation_computes_kerass_function(name):
    x = np.array([[-3.0, -0.5, 0.0, 0.7, 2.5], [1.0, -2.0, 0.1, -0.1, 4.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. torch's "implicit dimension choice for softmax"
        got = activation_module(name)(torch.tensor(x, dtype=torch.float64)).numpy()
    np.testing.assert_allclose(got, KERAS_ACTIVATIONS[name](x), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    ("layer", "message"),
    [
        ({"type": "dense", "units": True}, "units must be an integer, got True"),
        ({"type": "dense", "units": "32"}, "units must be an integer, got '32'"),
        ({"type": "dense", "units": 32.0}, "units must be an integer, got 32.0"),
        ({"type": "dense", "units": 3, "use_bias": 1}, "use_bias must be true or false, got 1"),
        ({"type": "dropout", "rate": "0.2"}, "rate must be a number, got '0.2'"),
        ({"type": "dropout", "rate": False}, "rate must be a number, got False"),
        ({"type": "batch_norm", "epsilon": "1e-3"}, "epsilon must be a number, got '1e-3'"),
    ],
)
def test_layer_types_are_strict(layer, message):
    with pytest.raises(ConfigError, match=r"model.layers\[0\]." + message.replace("(", r"\(")):
        config_from_dict({"model": {"layers": [layer]}})


def test_a_float_key_still_takes_an_integer():
    assert config_from_dict({"model": {"layers": [{"type": "dropout", "rate": 0}]}}).model.layers[0].rate == 0.0


def test_a_model_too_large_is_a_one_line_cli_error_and_creates_nothing(mnist_dir, tmp_path, capsys):
    from mlplab.cli.main import main

    out = tmp_path / "run"
    code = main(["train", "tutorial-50-25", "--limit", "500", "--set", "model.layers[0].units=1000000",
                 "--out", str(out), "--verbose", "0"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err == (f"error: the model would have 810,000,285 parameters, more than the limit of "
                                 f"{MAX_PARAMETERS:,} (use fewer or narrower layers)")
    assert not out.exists()
