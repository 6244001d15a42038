"""Batch normalisation is built with Keras's meaning of momentum and epsilon, and behaves so."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mlplab.model import BatchNorm, Dense, ModelSpec, build_model


def _batch_norms(model):
    return [m for m in model.modules() if isinstance(m, nn.BatchNorm1d)]


def test_keras_defaults_become_torchs_momentum_and_epsilon():
    model = build_model(ModelSpec(layers=[Dense(units=8, activation="relu"), BatchNorm()]), 5, 3)
    (bn,) = _batch_norms(model)
    # Keras: moving = 0.99 * moving + 0.01 * batch; torch: running = (1 - m) * running + m * batch
    assert bn.momentum == pytest.approx(0.01) and bn.eps == 1e-3 and bn.num_features == 8


@pytest.mark.parametrize(("keras_momentum", "epsilon"), [(0.9, 1e-5), (0.5, 0.01)])
def test_a_configured_momentum_is_converted_too(keras_momentum, epsilon):
    model = build_model(ModelSpec(layers=[Dense(units=4), BatchNorm(momentum=keras_momentum, epsilon=epsilon)]), 5, 3)
    (bn,) = _batch_norms(model)
    assert bn.momentum == pytest.approx(1 - keras_momentum) and bn.eps == epsilon


def test_running_mean_after_one_batch_follows_kerass_formula():
    keras_momentum = 0.9
    spec = ModelSpec(layers=[Dense(units=6, activation="linear"), BatchNorm(momentum=keras_momentum)])
    model = build_model(spec, 5, 3, seed=0)
    x = torch.randn(16, 5, generator=torch.Generator().manual_seed(1)) * 3 + 2
    model.train()
    model(x)
    (bn,) = _batch_norms(model)
    dense_out = model.layers[0](x).detach().double()
    expected = keras_momentum * 0.0 + (1 - keras_momentum) * dense_out.mean(dim=0)  # moving mean starts at 0
    torch.testing.assert_close(bn.running_mean.double(), expected, rtol=1e-5, atol=1e-6)


def test_eval_mode_normalises_with_the_running_statistics_and_epsilon():
    """Running statistics, epsilon and the learned scale (gamma) and shift (beta), in eval mode and in
    the inference path predictions take (`predict_logits`, which skips the mode switch)."""
    spec = ModelSpec(layers=[Dense(units=4, activation="linear"), BatchNorm(epsilon=0.5)])
    model = build_model(spec, 3, 2, seed=0)
    (bn,) = _batch_norms(model)
    with torch.no_grad():
        bn.running_mean.copy_(torch.tensor([1.0, -1.0, 0.5, 0.0]))
        bn.running_var.copy_(torch.tensor([4.0, 1.0, 0.25, 2.0]))
        bn.weight.copy_(torch.tensor([2.0, 0.5, 1.0, -1.0]))  # as training leaves them, not torch's 1 and 0
        bn.bias.copy_(torch.tensor([0.1, -0.2, 0.3, 0.0]))
    x = torch.randn(7, 3, generator=torch.Generator().manual_seed(2))
    dense = model.layers[0](x)
    expected = (dense - bn.running_mean) / torch.sqrt(bn.running_var + 0.5) * bn.weight + bn.bias
    model.eval()
    torch.testing.assert_close(model.layers[1](dense), expected)
    torch.testing.assert_close(model.predict_logits(x), model.layers[2](expected))
