"""Products of a photoisomerisation ensemble and quantum yields with exact binomial intervals.

A trajectory that ends on the ground state is classified by its final dihedral: "cis" when
|dihedral| < ``cis_below``, "trans" when |dihedral| > ``trans_above`` (both 90 degrees by
default), "twisted" in between (only when the thresholds leave a gap). One that ends on an
excited state is "S1" (not returned to S0, whichever excited state it is on). The starting
isomer is that of the first frame. The quantum yield of isomerisation is the fraction of the
analysed trajectories that end as the other isomer; every product has its yield (branching
ratio) too, each a :class:`~fusionff.analysis.intervals.Proportion` with its Clopper-Pearson
95% interval. A yield no trajectory reached is "not measured", with its upper bound.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from fusionff.analysis.intervals import Proportion

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
class ProductStatistics:
    """Per-trajectory starting isomer and product; yields of each product and of isomerisation."""

    start: list[str]
    product: list[str]
    yields: dict[str, Proportion]
    quantum_yield: Proportion

    @property
    def counts(self) -> dict[str, int]:
        return {p: self.product.count(p) for p in PRODUCTS}


def product_statistics(
    initial_dihedral: Sequence[float],
    final_dihedral: Sequence[float],
    final_state: Sequence[int],
    ground_state: int = 0,
    thresholds: Thresholds = Thresholds(),
) -> ProductStatistics:
    """Classify each trajectory (dihedrals in degrees); yields are fractions of them all."""
    start = [isomer(d, thresholds) for d in initial_dihedral]
    product = [
        classify(s, d, ground_state, thresholds)
        for s, d in zip(final_state, final_dihedral, strict=True)
    ]
    isomerised = [
        p in ("cis", "trans") and s in ("cis", "trans") and p != s
        for s, p in zip(start, product, strict=True)
    ]
    n = len(product)
    return ProductStatistics(
        start=start,
        product=product,
        yields={name: Proportion.of(product.count(name), n) for name in PRODUCTS},
        quantum_yield=Proportion.of(sum(isomerised), n),
    )
