"""Statistics over seeds: mean, sample standard deviation and a 95 % Student-t interval.

No SciPy (a large dependency for one quantile): the two-sided 95 % t quantile comes from a table
for 1 to 30 degrees of freedom, and above that from the normal quantile with the Cornish–Fisher
expansion to the third order (error below 2e-6). tests/report/test_report_stats.py checks both
against scipy.stats.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

Z975 = 1.959963984540054
# t_{0.975, df} for df = 1..30
_T975 = (
    12.706204736, 4.302652730, 3.182446305, 2.776445105, 2.570581836,
    2.446911851, 2.364624252, 2.306004135, 2.262157163, 2.228138852,
    2.200985160, 2.178812830, 2.160368656, 2.144786688, 2.131449546,
    2.119905299, 2.109815578, 2.100922040, 2.093024054, 2.085963447,
    2.079613845, 2.073873068, 2.068657610, 2.063898562, 2.059538553,
    2.055529439, 2.051830516, 2.048407142, 2.045229642, 2.042272456,
)


def t975(df: int) -> float:
    """Two-sided 95 % critical value of Student's t with `df` degrees of freedom."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {df}")
    if df <= len(_T975):
        return _T975[df - 1]
    z = Z975
    return (z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)
            + (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / (384 * df**3))


@dataclass(frozen=True)
class Summary:
    """Mean, std (ddof=1) and 95 % t-interval of values over seeds; std and interval are NaN for n = 1.

    The interval is clipped to what the quantity can be (`lower`, `upper`): an accuracy interval
    never leaves [0, 1], an epoch count never goes below 1. `clipped` says whether it was."""

    n: int
    mean: float
    std: float
    ci_low: float
    ci_high: float
    min: float
    max: float
    clipped: bool = False

    def as_dict(self) -> dict[str, float]:
        return asdict(self)

    def text(self, fmt: str = "{:.4f}", scale: float = 1.0) -> str:
        """'m' for one value, 'm ± s [lo, hi]' for several."""
        m = fmt.format(self.mean * scale)
        if self.n < 2:
            return m
        return f"{m} ± {fmt.format(self.std * scale)} [{fmt.format(self.ci_low * scale)}, {fmt.format(self.ci_high * scale)}]"


def summarize(values, *, lower: float | None = None, upper: float | None = None) -> Summary:
    """Summary of the values; the interval clipped to [lower, upper] where given."""
    x = np.asarray(list(values), dtype=float)
    if x.size == 0:
        raise ValueError("no values to summarize")
    if lower is not None and upper is not None and lower > upper:
        raise ValueError(f"lower bound {lower} is above upper bound {upper}")
    mean = float(x.mean())
    if x.size < 2:
        nan = float("nan")
        return Summary(1, mean, nan, nan, nan, mean, mean)
    std = float(x.std(ddof=1))
    half = t975(x.size - 1) * std / math.sqrt(x.size)
    lo, hi = mean - half, mean + half
    clo = lo if lower is None else max(lower, lo)
    chi = hi if upper is None else min(upper, hi)
    return Summary(int(x.size), mean, std, clo, chi, float(x.min()), float(x.max()), (clo, chi) != (lo, hi))
