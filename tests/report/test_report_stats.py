"""Statistics over seeds: mean, std (ddof=1) and the 95 % t-interval."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlplab.report.stats import summarize, t975

try:
    from scipy import stats as sps
except ImportError:  # pragma: no cover - scipy is optional
    sps = None


@pytest.mark.parametrize("df", [*range(1, 31), 31, 40, 60, 120, 1000])
def test_t_quantile_matches_scipy_or_table(df):
    if sps is not None:
        assert t975(df) == pytest.approx(float(sps.t.ppf(0.975, df)), abs=2e-4)
    else:
        known = {1: 12.706, 2: 4.303, 4: 2.776, 9: 2.262, 29: 2.045, 30: 2.042, 60: 2.000, 120: 1.980}
        if df in known:
            assert t975(df) == pytest.approx(known[df], abs=1e-3)


def test_t_quantile_rejects_zero_df():
    with pytest.raises(ValueError):
        t975(0)


def test_summary_of_three_seeds():
    x = [0.97, 0.975, 0.981]
    s = summarize(x)
    assert s.n == 3
    assert s.mean == pytest.approx(np.mean(x))
    assert s.std == pytest.approx(np.std(x, ddof=1))
    half = 4.302652730 * np.std(x, ddof=1) / math.sqrt(3)
    assert (s.ci_low, s.ci_high) == pytest.approx((np.mean(x) - half, np.mean(x) + half))
    if sps is not None:
        lo, hi = sps.t.interval(0.95, 2, loc=np.mean(x), scale=sps.sem(x))
        assert (s.ci_low, s.ci_high) == pytest.approx((lo, hi))
    assert (s.min, s.max) == (0.97, 0.981)
    assert "±" in s.text()


def test_summary_of_one_seed_has_no_spread():
    s = summarize([0.98])
    assert s.mean == 0.98 and math.isnan(s.std) and math.isnan(s.ci_low)
    assert s.text() == "0.9800"


def test_summary_of_nothing_is_an_error():
    with pytest.raises(ValueError):
        summarize([])


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(0, 1, allow_nan=False), min_size=2, max_size=40))
def test_interval_is_centred_on_the_mean(xs):
    s = summarize(xs)
    assert s.ci_low <= s.mean + 1e-12 and s.mean <= s.ci_high + 1e-12
    assert (s.ci_low + s.ci_high) / 2 == pytest.approx(s.mean, abs=1e-9)


def test_si_prefix_for_flops():
    from mlplab.report.table import si

    assert si(1.3215e11) == "132 G"
    assert si(1.81e12) == "1.81 T"
    assert si(950) == "950"
