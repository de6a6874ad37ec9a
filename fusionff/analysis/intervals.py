"""Binomial proportions (yields, branching ratios, populations) with exact 95% intervals.

A fraction of trajectories k / n is a binomial proportion; its interval here is Clopper and
Pearson's exact one (``scipy.stats.beta`` quantiles), which covers the true fraction at least
95% of the time for every n and never collapses: 0 of 16 gives [0, 0.206], 16 of 16 gives
[0.794, 1]. (A bootstrap over trajectories resamples identical outcomes into the interval
[0, 0] or [1, 1], and the standard error sqrt(p (1 - p) / n) vanishes there too.) Wilson's
score interval, shorter and approximately 95%, is :func:`wilson`.

When no trajectory reached an outcome its fraction is not measured: the data bound it from
above (by :attr:`Proportion.high`) but cannot tell it from zero, and reports say so.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import beta, norm

CONFIDENCE = 0.95
METHOD = "clopper-pearson"


def clopper_pearson(
    count: np.ndarray | int, n: np.ndarray | int, confidence: float = CONFIDENCE
) -> tuple[np.ndarray, np.ndarray]:
    """Exact two-sided interval (low, high) of a proportion from ``count`` successes of ``n``
    (arrays broadcast; NaN where n = 0). low is 0 at count 0, high is 1 at count n."""
    k, n = np.broadcast_arrays(np.asarray(count, dtype=np.float64), np.asarray(n, np.float64))
    tail = (1.0 - confidence) / 2.0
    with np.errstate(invalid="ignore", divide="ignore"):
        low = np.where(k > 0, beta.ppf(tail, k, n - k + 1), 0.0)
        high = np.where(k < n, beta.ppf(1.0 - tail, k + 1, n - k), 1.0)
    empty = n <= 0
    return np.where(empty, np.nan, low), np.where(empty, np.nan, high)


def wilson(
    count: np.ndarray | int, n: np.ndarray | int, confidence: float = CONFIDENCE
) -> tuple[np.ndarray, np.ndarray]:
    """Wilson's score interval (low, high) of ``count`` of ``n`` (NaN where n = 0)."""
    k, n = np.broadcast_arrays(np.asarray(count, dtype=np.float64), np.asarray(n, np.float64))
    z = norm.ppf(0.5 + confidence / 2.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = k / n
        centre = (p + z**2 / (2 * n)) / (1 + z**2 / n)
        half = z * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / (1 + z**2 / n)
    low = np.where(k > 0, np.clip(centre - half, 0.0, 1.0), 0.0)  # exactly 0 and 1 at the
    high = np.where(k < n, np.clip(centre + half, 0.0, 1.0), 1.0)  # edges, not 1e-17 off
    empty = n <= 0
    return np.where(empty, np.nan, low), np.where(empty, np.nan, high)


@dataclass(frozen=True)
class Proportion:
    """``count`` of ``n`` trajectories, with the Clopper-Pearson 95% interval [low, high]."""

    count: int
    n: int
    low: float
    high: float

    @classmethod
    def of(cls, count: int, n: int) -> Proportion:
        low, high = clopper_pearson(count, n)
        return cls(int(count), int(n), float(low), float(high))

    @property
    def value(self) -> float:
        """count / n (NaN when n = 0)."""
        return self.count / self.n if self.n else float("nan")

    @property
    def measured(self) -> bool:
        """False when no trajectory counted: the fraction is bounded, not measured."""
        return self.count > 0

    def text(self) -> str:
        """``0.250 [0.073, 0.524] (4 of 16)``, or ``not measured (0 of 16; 95% upper bound
        0.206)`` when the count is zero."""
        if not self.n:
            return "no trajectories"
        if not self.measured:
            return f"not measured (0 of {self.n}; 95% upper bound {self.high:.3f})"
        return f"{self.value:.3f} [{self.low:.3f}, {self.high:.3f}] ({self.count} of {self.n})"

    def to_dict(self) -> dict:
        """``value`` (count / n), ``count``, ``n``, ``ci95`` [low, high], ``interval`` (the
        method) and ``measured`` (count > 0; when false ``ci95[1]`` is the upper bound)."""
        return {
            "value": self.value,
            "count": self.count,
            "n": self.n,
            "ci95": [self.low, self.high],
            "interval": METHOD,
            "measured": self.measured,
        }
