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

A run stopped while most trajectories are still excited gives a yield at its horizon, not the
quantum yield. ``decayed_yield`` is the fraction isomerised among the trajectories back on the
ground state: the quantum yield the ensemble approaches when every trajectory has decayed, if
the products do not depend on when a trajectory decays: an assumption the data of one horizon
can only check among the decays it saw (:func:`split_by_decay_time` compares early and late
ones), a caveat to state with the number.

Command line, pooling the products of runs already analysed (``fusionff analyze`` wrote
``analysis.json``; runs of one input with other seeds, or of successive models, each listed):
``python -m fusionff.analysis.products RUN_OR_ANALYSIS_DIR ... [--split-fs FS]``.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

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
    """Per-trajectory starting isomer and product; yields of each product and of isomerisation
    (of all analysed trajectories) and ``decayed_yield``, isomerisation among those back on
    the ground state (module docstring). ``names``: the products the classification could
    give (:data:`PRODUCTS`, or :data:`WITHOUT_DHP` without ortho-ortho distances), the keys
    of ``yields``."""

    start: list[str]
    product: list[str]
    yields: dict[str, Proportion]
    quantum_yield: Proportion
    names: tuple[str, ...]
    decayed_yield: Proportion

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
    return statistics_of(start, product, names)


def statistics_of(
    start: Sequence[str], product: Sequence[str], names: tuple[str, ...] = PRODUCTS
) -> ProductStatistics:
    """The yields of trajectories already classified: starting isomers and products (names
    of :data:`PRODUCTS`)."""
    start, product = list(start), list(product)
    if len(start) != len(product):
        raise ValueError(f"{len(start)} starting isomers for {len(product)} products")
    unknown = sorted(set(product) - set(names))
    if unknown:
        raise ValueError(f"unknown product(s) {unknown}; expected {names}")
    isomerised = sum(_isomerised(s, p) for s, p in zip(start, product, strict=True))
    n = len(product)
    return ProductStatistics(
        start=start,
        product=product,
        yields={name: Proportion.of(product.count(name), n) for name in names},
        quantum_yield=Proportion.of(isomerised, n),
        names=names,
        decayed_yield=Proportion.of(isomerised, n - product.count("S1")),
    )


def _isomerised(start: str, product: str) -> bool:
    """Whether a trajectory starting as ``start`` ended as the other isomer (cis <-> trans)."""
    return product in ("cis", "trans") and start in ("cis", "trans") and product != start


@dataclass
class AnalysedProducts:
    """The products of one analysed run: its ``analysis.json``, each analysed trajectory's
    starting isomer, product and time of its last hop (fs; None without hops or when
    ``summary.json`` is not beside it), whether DHP was classified, and how many trajectories
    the analysis excluded."""

    path: Path
    start: list[str]
    product: list[str]
    last_hop_fs: list[float | None]
    with_dhp: bool
    excluded: int

    @property
    def names(self) -> tuple[str, ...]:
        return PRODUCTS if self.with_dhp else WITHOUT_DHP


def read_products(path: str | Path) -> AnalysedProducts:
    """The :class:`AnalysedProducts` of an analysed run folder (or its ``analysis.json``)."""
    path = Path(path)
    if path.is_dir():
        path = path / "analysis.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no analysis.json (run fusionff analyze first)")
    analysis = json.loads(path.read_text())
    products = analysis.get("products")
    if not products:
        raise ValueError(f"{path}: no products (the run was analysed without a dihedral)")
    rows = products["trajectories"]
    last: dict[int, float | None] = {}
    summary = path.parent / "summary.json"
    if summary.is_file():
        for t in json.loads(summary.read_text())["trajectories"]:
            last[t["index"]] = t["hops"][-1]["time_fs"] if t.get("hops") else None
    return AnalysedProducts(
        path=path,
        start=[r["start"] for r in rows],
        product=[r["product"] for r in rows],
        last_hop_fs=[last.get(r["index"]) for r in rows],
        with_dhp="DHP" in products["counts"],
        excluded=int(analysis["counts"]["excluded"]),
    )


def excluded_bounds(stats: ProductStatistics, n_excluded: int) -> dict[str, tuple]:
    """Bounds that assume nothing about ``n_excluded`` trajectories left out of the analysis
    (flagged or stopped): ``"all"``, isomerised of every started one, and ``"decayed"``,
    isomerised of those back on the ground state with the excluded counted as back there;
    each (lower, upper) with the excluded counted as not isomerised, then as isomerised. The
    decayed bounds hold wherever the excluded ones were: iso/(D+X) <= iso/D <=
    (iso+X)/(D+X)."""
    iso, decayed = stats.quantum_yield.count, stats.decayed_yield.n
    n_all = stats.quantum_yield.n + n_excluded
    n_decayed = decayed + n_excluded
    return {
        "all": (Proportion.of(iso, n_all), Proportion.of(iso + n_excluded, n_all)),
        "decayed": (Proportion.of(iso, n_decayed), Proportion.of(iso + n_excluded, n_decayed)),
    }


def split_by_decay_time(
    start: Sequence[str],
    product: Sequence[str],
    last_hop_fs: Sequence[float | None],
    split_fs: float,
) -> tuple[Proportion, Proportion, float]:
    """Isomerisation among the trajectories back on the ground state whose last hop came
    before ``split_fs`` fs, among those whose last hop came at or after it, and Fisher's
    exact two-sided p-value that the two fractions are equal: a check of the assumption
    behind ``decayed_yield`` (module docstring). A trajectory back on the ground state with
    no recorded hop is an error."""
    from scipy.stats import fisher_exact

    counts = {True: [0, 0], False: [0, 0]}  # early?: [isomerised, not]
    for s, p, t in zip(start, product, last_hop_fs, strict=True):
        if p == "S1":
            continue
        if t is None:
            raise ValueError(f"a {s} start ends as {p} with no hop time (summary.json missing?)")
        counts[t < split_fs][0 if _isomerised(s, p) else 1] += 1
    early, late = counts[True], counts[False]
    p_value = float(fisher_exact([early, late])[1]) if sum(early) and sum(late) else float("nan")
    return Proportion.of(early[0], sum(early)), Proportion.of(late[0], sum(late)), p_value


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m fusionff.analysis.products RUN_OR_ANALYSIS_DIR ... [--split-fs T]``: each
    run's products and yields, then all pooled; with ``--split-fs``, the pooled yield among
    those back on the ground state split by when they last hopped."""
    parser = argparse.ArgumentParser(description="Pool the products of analysed runs.")
    parser.add_argument("runs", nargs="+", help="folders with analysis.json, or the files")
    parser.add_argument(
        "--split-fs",
        type=float,
        help="also the yield among those back on the ground state, last hop before / after "
        "this time (fs; needs summary.json beside each analysis.json)",
    )
    args = parser.parse_args(argv)
    runs = [read_products(run) for run in args.runs]
    for run in runs:
        stats = statistics_of(run.start, run.product, run.names)
        print(f"{run.path.parent}: {_counts_text(stats, run.excluded)}")
    start = [s for r in runs for s in r.start]
    product = [p for r in runs for p in r.product]
    excluded = sum(r.excluded for r in runs)
    names = PRODUCTS if all(r.with_dhp for r in runs) else WITHOUT_DHP
    pooled = statistics_of(start, product, names)
    print(f"pooled ({len(runs)} runs): {_counts_text(pooled, excluded)}")
    print(f"  isomerised, of all analysed: {pooled.quantum_yield.text()}")
    print(f"  isomerised, of those back on the ground state: {pooled.decayed_yield.text()}")
    if excluded:
        bounds = excluded_bounds(pooled, excluded)
        for key, what in (("all", "of all started"), ("decayed", "of those back")):
            low, high = bounds[key]
            print(
                f"  {what}, the {excluded} excluded counted as not isomerised / as isomerised: "
                f"{low.text()} to {high.text()}"
            )
    if args.split_fs is not None:
        hops = [t for r in runs for t in r.last_hop_fs]
        early, late, p_value = split_by_decay_time(start, product, hops, args.split_fs)
        print(
            f"  of those back, last hop before {args.split_fs:g} fs: {early.text()}; at or "
            f"after: {late.text()}; Fisher exact p = {p_value:.2f}"
        )
    return 0


def _counts_text(stats: ProductStatistics, excluded: int) -> str:
    return ", ".join(f"{p} {c}" for p, c in stats.counts.items()) + (
        f"; isomerised {stats.quantum_yield.count} of {stats.quantum_yield.n} analysed"
        f" ({excluded} excluded)"
    )


if __name__ == "__main__":
    raise SystemExit(main())
