"""mlplab's CPU dropout: the right drop rate and scale, reproducible, and the identity outside training."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mlplab.model.dropout import FastDropout


@pytest.mark.parametrize("rate", [0.15, 0.2, 0.5, 0.9])
def test_masks_drop_the_rate_and_scale_the_rest(rate):
    layer = FastDropout(rate)
    layer.seed(7)
    mask = layer.draw_mask(torch.empty(1000, 1000))
    values = torch.unique(mask).tolist()
    assert len(values) == 2 and values[0] == 0.0 and values[1] == pytest.approx(1 / (1 - rate), rel=1e-6)
    dropped = float((mask == 0).double().mean())
    assert abs(dropped - rate) < 0.002  # ~5 standard deviations of a binomial over 10^6 draws
    assert float(mask.double().mean()) == pytest.approx(1.0, abs=0.01)  # inverted dropout keeps the mean


def test_mask_is_the_documented_function_of_pcg64_bits():
    layer = FastDropout(0.2)
    layer.seed(3)
    mask = layer.draw_mask(torch.empty(37, 11))  # 407 elements: not a multiple of 4
    words = np.random.PCG64(3).random_raw((407 + 3) // 4)
    keep = words.view(np.int16)[:407] >= np.int16(round(0.2 * 65536) - 32768)
    assert torch.equal(mask.reshape(-1), torch.from_numpy(keep.astype(np.float32) * np.float32(1.25)))


def test_forward_is_reproducible_and_the_identity_outside_training():
    x = torch.rand(64, 32) + 0.1
    a, b = FastDropout(0.3), FastDropout(0.3)
    a.seed(1), b.seed(1)
    assert torch.equal(a(x), b(x))
    b.seed(2)
    assert not torch.equal(a(x), b(x))
    a.eval()
    assert a(x) is x
    assert FastDropout(0.0)(x) is x
    assert FastDropout(0.3)(x.to(torch.bfloat16)).dtype == torch.bfloat16
    with pytest.raises(ValueError, match=r"dropout rate must be in \[0, 1\), got 1.0"):
        FastDropout(1.0)
