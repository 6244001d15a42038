"""The seed statistics to the digits they claim: the t table, the Cornish–Fisher tail, the text."""

from __future__ import annotations

import math

import pytest

from mlplab.report.stats import Summary, summarize, t975

sps = pytest.importorskip("scipy.stats")


@pytest.mark.parametrize("df", range(1, 31))
def test_the_table_is_exact_to_its_nine_decimals(df):
    assert abs(t975(df) - float(sps.t.ppf(0.975, df))) < 1e-8


@pytest.mark.parametrize("df", [31, 32, 45, 100, 300, 1000, 10_000, 10**6])
def test_the_tail_formula_errs_only_at_fourth_order(df):
    # The expansion to the third order leaves the fourth-order term, about 1.6 / df**4 (1.61 at
    # df = 31, falling to 1.59): 1.7e-6 at df = 31, 1.6e-12 at df = 1000. A wrong coefficient in
    # the third-order term still passes a bound of 2e-6 at df = 31, but errs as c / df**3 and
    # fails here from a few hundred degrees of freedom on. 4e-15 is float rounding (a few ulps).
    assert abs(t975(df) - float(sps.t.ppf(0.975, df))) < 1.7 / df**4 + 4e-15


def test_bad_degrees_of_freedom_name_the_value():
    with pytest.raises(ValueError, match=r"^degrees of freedom must be >= 1, got 0$"):
        t975(0)
    with pytest.raises(ValueError, match=r"^no values to summarize$"):
        summarize(iter([]))


def test_one_value_keeps_its_min_and_max():
    s = summarize([0.25])
    assert (s.n, s.mean, s.min, s.max) == (1, 0.25, 0.25, 0.25)
    assert math.isnan(s.ci_high)
    assert s.text("{:.1f}", scale=100) == "25.0"


def test_two_values_text_and_dict():
    s = summarize(v for v in [0.5, 0.7])  # any iterable
    half = 12.706204736 * math.sqrt(0.02) / math.sqrt(2)
    assert s.as_dict() == pytest.approx(
        {"n": 2, "mean": 0.6, "std": math.sqrt(0.02), "ci_low": 0.6 - half, "ci_high": 0.6 + half, "min": 0.5, "max": 0.7, "clipped": False}
    )
    assert s.text() == f"0.6000 ± {math.sqrt(0.02):.4f} [{0.6 - half:.4f}, {0.6 + half:.4f}]"
    assert s.text("{:.2f}", scale=100) == f"60.00 ± {100 * math.sqrt(0.02):.2f} [{100 * (0.6 - half):.2f}, {100 * (0.6 + half):.2f}]"
    assert isinstance(s, Summary) and isinstance(s.n, int) and isinstance(s.min, float)


def test_float32_values_are_summarised_in_double_precision():
    import numpy as np

    x = np.array([0.1, 0.2, 0.7, 0.3], dtype=np.float32)  # accuracies as torch hands them over
    s = summarize(x)
    assert s.mean == float(x.astype(np.float64).mean()) and s.std == float(x.astype(np.float64).std(ddof=1))


def test_a_diverged_seed_shows_as_nan_in_the_text():
    s = summarize([float("nan"), 0.5])
    assert s.text() == "nan ± nan [nan, nan]"
    assert summarize([float("inf")]).text() == "inf"
