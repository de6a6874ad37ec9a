"""Products of a photoisomerisation ensemble and quantum yields with bootstrap intervals.

A trajectory that ends on the ground state is classified by its final dihedral: "cis" when
|dihedral| < ``cis_below``, "trans" when |dihedral| > ``trans_above`` (both 90 degrees by
default), "twisted" in between (only when the thresholds leave a gap). One that ends on an
excited state is "S1" (not returned to S0, whichever excited state it is on). The starting
isomer is that of the first frame. The quantum yield of isomerisation is the fraction of the
analysed trajectories that end as the other isomer; every product has its yield too. 95%
confidence intervals are bootstrap percentiles over trajectories.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

PRODUCTS = ("cis", "trans", "twisted", "S1")


@dataclass(frozen=True)
class Thresholds:
    """|dihedral| below ``cis_below`` is cis, above ``trans_above`` trans (degrees)."""

    cis_below: float = 90.0
    trans_above: float = 90.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.cis_below <= self.trans_above <= 180.0:
            raise ValueError(
                f"need 0 <= cis_below <= trans_above <= 180, got {self.cis_below}, "
                f"{self.trans_above}"
            )


def isomer(dihedral_deg: float, thresholds: Thresholds = Thresholds()) -> str:
    """ "cis", "trans" or "twisted" for a dihedral in degrees (any range; its |.| folded into
    [0, 180])."""
    if not np.isfinite(dihedral_deg):
        raise ValueError(f"dihedral is not finite ({dihedral_deg})")
    folded = abs((float(dihedral_deg) + 180.0) % 360.0 - 180.0)
    if folded < thresholds.cis_below:
        return "cis"
    if folded > thresholds.trans_above:
        return "trans"
    return "twisted"


def classify(
    final_state: int,
    final_dihedral: float,
    ground_state: int = 0,
    thresholds: Thresholds = Thresholds(),
) -> str:
    """The product of one trajectory: "S1" when it ends off the ground state, else its isomer."""
    if final_state != ground_state:
        return "S1"
    return isomer(final_dihedral, thresholds)


@dataclass
class Yield:
    """A yield (fraction of trajectories) and its bootstrap 95% interval."""

    value: float
    low: float
    high: float
    count: int

    def to_dict(self) -> dict:
        return {"value": self.value, "ci95": [self.low, self.high], "count": self.count}


def bootstrap_yields(
    outcomes: np.ndarray, n_boot: int = 2000, rng: np.random.Generator | None = None
) -> list[Yield]:
    """Yields of K outcomes with percentile 95% intervals.

    outcomes: (n, K) bool, row i true where trajectory i counts for outcome k. n_boot:
    resamples of the n trajectories with replacement; rng: the generator (default: seed 0).
    """
    outcomes = np.asarray(outcomes, dtype=np.float64)
    n = len(outcomes)
    if n == 0:
        nan = float("nan")
        return [Yield(nan, nan, nan, 0) for _ in range(outcomes.shape[1])]
    rng = np.random.default_rng(0) if rng is None else rng
    value = outcomes.mean(axis=0)
    if n_boot > 0:
        resampled = np.array([outcomes[rng.integers(0, n, n)].mean(axis=0) for _ in range(n_boot)])
        low, high = np.percentile(resampled, [2.5, 97.5], axis=0)
    else:
        low = high = np.full_like(value, np.nan)
    counts = outcomes.sum(axis=0).astype(int)
    return [Yield(float(v), float(lo), float(hi), int(c)) for v, lo, hi, c in
            zip(value, low, high, counts, strict=True)]  # fmt: skip


@dataclass
class ProductStatistics:
    """Per-trajectory starting isomer and product; yields of each product and of isomerisation."""

    start: list[str]
    product: list[str]
    yields: dict[str, Yield]
    quantum_yield: Yield

    @property
    def counts(self) -> dict[str, int]:
        return {p: self.product.count(p) for p in PRODUCTS}


def product_statistics(
    initial_dihedral: Sequence[float],
    final_dihedral: Sequence[float],
    final_state: Sequence[int],
    ground_state: int = 0,
    thresholds: Thresholds = Thresholds(),
    n_boot: int = 2000,
    rng: np.random.Generator | None = None,
) -> ProductStatistics:
    """Classify each trajectory (dihedrals in degrees) and bootstrap the yields."""
    start = [isomer(d, thresholds) for d in initial_dihedral]
    product = [
        classify(s, d, ground_state, thresholds)
        for s, d in zip(final_state, final_dihedral, strict=True)
    ]
    isomerised = [
        p in ("cis", "trans") and s in ("cis", "trans") and p != s
        for s, p in zip(start, product, strict=True)
    ]
    outcomes = np.array(
        [
            [p == name for name in PRODUCTS] + [iso]
            for p, iso in zip(product, isomerised, strict=True)
        ],
        dtype=bool,
    ).reshape(len(product), len(PRODUCTS) + 1)
    yields = bootstrap_yields(outcomes, n_boot, rng)
    return ProductStatistics(
        start=start,
        product=product,
        yields=dict(zip(PRODUCTS, yields[:-1], strict=True)),
        quantum_yield=yields[-1],
    )
