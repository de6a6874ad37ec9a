"""Products of a photoisomerisation ensemble and quantum yields with exact binomial intervals.

A trajectory that ends on the ground state is classified by its final dihedral: "cis" when
|dihedral| < ``cis_below``, "trans" when |dihedral| > ``trans_above`` (both 90 degrees by
default), "twisted" in between (only when the thresholds leave a gap). When the smallest
distance between the ortho carbons of the two phenyl rings is known (stilbene,
:func:`~fusionff.analysis.dihedral.ortho_distance_series`), one that ends on the ground state
with that distance below ``dhp_below`` (2 Angstrom) is "DHP", 4a,4b-dihydrophenanthrene, the
photocyclisation product, whatever its dihedral (DHP's is cis-like). One that ends on an
excited state is "S1" (not returned to S0, whichever excited state it is on, whatever its
geometry). The starting isomer is that of the first frame. The quantum yield of isomerisation
is the fraction of the analysed trajectories that end as the other isomer (cis <-> trans;
DHP is not isomerisation); every product has its yield (branching ratio) too, each a
:class:`~fusionff.analysis.intervals.Proportion` with its Clopper-Pearson 95% interval. A yield
no trajectory reached is "not measured", with its upper bound.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from fusionff.analysis.intervals import Proportion

PRODUCTS = ("cis", "trans", "twisted", "DHP", "S1")
WITHOUT_DHP = tuple(p for p in PRODUCTS if p != "DHP")
"""The products when the ortho-ortho distance is not known (molecules other than stilbene)."""


@dataclass(frozen=True)
class Thresholds:
    """|dihedral| below ``cis_below`` is cis, above ``trans_above`` trans (degrees); a smallest
    ortho-ortho distance below ``dhp_below`` (Angstrom) is DHP. The bond that closes the ring
    in DHP is about 1.55 Angstrom; in cis-stilbene the closest ortho carbons are 3.1-3.4
    Angstrom apart (3.36 in data/stilbene/r2/cis-r2.xyz), so 2 Angstrom separates the two
    with room for vibration."""

    cis_below: float = 90.0
    trans_above: float = 90.0
    dhp_below: float = 2.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.cis_below <= self.trans_above <= 180.0:
            raise ValueError(
                f"need 0 <= cis_below <= trans_above <= 180, got {self.cis_below}, "
                f"{self.trans_above}"
            )
        if not 0.0 < self.dhp_below < np.inf:
            raise ValueError(f"need 0 < dhp_below (Angstrom) < inf, got {self.dhp_below}")


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
    final_ortho_distance: float | None = None,
) -> str:
    """The product of one trajectory: "S1" when it ends off the ground state; else "DHP" when
    ``final_ortho_distance`` (Angstrom; None: not known) is below ``thresholds.dhp_below``;
    else its isomer."""
    if final_state != ground_state:
        return "S1"
    if final_ortho_distance is not None:
        if not np.isfinite(final_ortho_distance):
            raise ValueError(f"ortho-ortho distance is not finite ({final_ortho_distance})")
        if final_ortho_distance < thresholds.dhp_below:
            return "DHP"
    return isomer(final_dihedral, thresholds)


@dataclass
class ProductStatistics:
    """Per-trajectory starting isomer and product; yields of each product and of isomerisation.
    ``names``: the products the classification could give (:data:`PRODUCTS`, or
    :data:`WITHOUT_DHP` without ortho-ortho distances), the keys of ``yields``."""

    start: list[str]
    product: list[str]
    yields: dict[str, Proportion]
    quantum_yield: Proportion
    names: tuple[str, ...]

    @property
    def counts(self) -> dict[str, int]:
        return {p: self.product.count(p) for p in self.names}


def product_statistics(
    initial_dihedral: Sequence[float],
    final_dihedral: Sequence[float],
    final_state: Sequence[int],
    ground_state: int = 0,
    thresholds: Thresholds = Thresholds(),
    final_ortho_distance: Sequence[float] | None = None,
) -> ProductStatistics:
    """Classify each trajectory (dihedrals in degrees, ortho-ortho distances in Angstrom; None:
    no DHP classification); yields are fractions of them all."""
    start = [isomer(d, thresholds) for d in initial_dihedral]
    names = PRODUCTS if final_ortho_distance is not None else WITHOUT_DHP
    ortho = final_ortho_distance if final_ortho_distance is not None else [None] * len(final_state)
    product = [
        classify(s, d, ground_state, thresholds, o)
        for s, d, o in zip(final_state, final_dihedral, ortho, strict=True)
    ]
    isomerised = [
        p in ("cis", "trans") and s in ("cis", "trans") and p != s
        for s, p in zip(start, product, strict=True)
    ]
    n = len(product)
    return ProductStatistics(
        start=start,
        product=product,
        yields={name: Proportion.of(product.count(name), n) for name in names},
        quantum_yield=Proportion.of(sum(isomerised), n),
        names=names,
    )
