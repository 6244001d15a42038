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
except ImportError:  # pragma: no cover - scipy comes with the test extra
    sps = None

needs_scipy = pytest.mark.skipif(sps is None, reason="scipy (the reference for t quantiles) is not installed; "
                                                     "pip install -e '.[test]'")


@needs_scipy
@pytest.mark.parametrize("df", range(1, 31))
def test_t_quantile_table_matches_scipy(df):
    assert t975(df) == pytest.approx(float(sps.t.ppf(0.975, df)), abs=1e-8)


@needs_scipy
@pytest.mark.parametrize("df", [31, 32, 35, 40, 50, 60, 100, 120, 1000, 10**6])
def test_t_quantile_expansion_matches_scipy(df):
    assert t975(df) == pytest.approx(float(sps.t.ppf(0.975, df)), abs=2e-6)


def test_t_quantile_textbook_values():
    """Printed tables (3 decimals), so the check runs without scipy too."""
    known = {1: 12.706, 2: 4.303, 4: 2.776, 9: 2.262, 29: 2.045, 30: 2.042, 40: 2.021, 60: 2.000, 120: 1.980}
    for df, t in known.items():
        assert t975(df) == pytest.approx(t, abs=6e-4), df


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


def test_interval_is_clipped_to_the_bounds():
    s = summarize([1.0, 1.0, 0.9], lower=0.0, upper=1.0)
    half = 4.302652730 * np.std([1.0, 1.0, 0.9], ddof=1) / math.sqrt(3)
    assert s.ci_high == 1.0 and s.ci_low == pytest.approx(np.mean([1.0, 1.0, 0.9]) - half) and s.clipped
    s = summarize([1, 1, 9], lower=1.0, upper=10.0)
    assert s.ci_low == 1.0 and s.ci_high == 10.0 and s.clipped
    s = summarize([0.5, 0.52, 0.54, 0.56], lower=0.0, upper=1.0)
    assert not s.clipped and 0 < s.ci_low < s.ci_high < 1
    with pytest.raises(ValueError, match="lower bound"):
        summarize([1, 2], lower=2, upper=1)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(0, 1, allow_nan=False), min_size=2, max_size=40))
def test_clipped_interval_never_leaves_the_possible_range(xs):
    s = summarize(xs, lower=0.0, upper=1.0)
    assert 0.0 <= s.ci_low <= s.ci_high <= 1.0


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
