"""The whole analysis of an ensemble run: populations, decay fits, products, yields and hops.

:func:`analyze_run` is pure computation on a :class:`~fusionff.analysis.run.Run` (apart from
reading the dihedral atoms of each trajectory); :func:`analysis_to_dict` gives the numbers
written to ``analysis.json`` and :func:`format_report` the short text printed by the CLI.
Random numbers (bootstrap resamples) come from ``np.random.SeedSequence(options.seed)``: the
same run and options give the same numbers.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import asdict, dataclass, field

import numpy as np

from fusionff.analysis.dihedral import Dihedral, dihedral_series, read_topology, topology_dihedral
from fusionff.analysis.hops import HopStatistics, hop_statistics
from fusionff.analysis.lifetime import DecayFit, fit_decay
from fusionff.analysis.populations import (
    PopulationCurves,
    default_grid,
    per_trajectory,
    population_curves,
)
from fusionff.analysis.products import PRODUCTS, ProductStatistics, Thresholds, product_statistics
from fusionff.analysis.run import Run

FITS = (("active", "delayed"), ("active", "exponential"), ("electronic", "delayed"))
"""(curve, model) pairs fitted: active-state fraction and mean |c|^2 of the decaying state."""


@dataclass
class AnalysisOptions:
    """Choices of an analysis; every default lives here.

    dihedral: the four atoms of the central dihedral (None: detect stilbene's);
    products: classify products and compute yields (False: no dihedral at all, for systems
    without isomers such as Tully's models);
    include_failed: analyse trajectories that blew up or drifted too; hold_last: trajectories
    keep their last frame after they end (see :mod:`fusionff.analysis.populations`);
    grid_spacing_fs: population grid (None: the smallest frame interval); decay_state: the
    state whose decay is fitted (None: the most common initial state); cis_below /
    trans_above: isomer thresholds on |dihedral| (degrees); n_boot: bootstrap resamples of the
    yields; n_boot_fit: of the decay fits; seed: of the bootstrap generators.
    """

    dihedral: Dihedral | None = None
    products: bool = True
    include_failed: bool = False
    hold_last: bool = True
    grid_spacing_fs: float | None = None
    decay_state: int | None = None
    ground_state: int = 0
    cis_below: float = 90.0
    trans_above: float = 90.0
    n_boot: int = 2000
    n_boot_fit: int = 200
    seed: int = 0


@dataclass
class Analysis:
    """Results of :func:`analyze_run`; ``dihedrals[i]`` is (time fs, degrees) of the i-th
    analysed trajectory. Without products (``options.products`` false) ``dihedral_atoms``,
    ``dihedrals`` and ``products`` are None."""

    run: Run
    options: AnalysisOptions
    dihedral_atoms: Dihedral | None
    dihedral_source: str
    dihedrals: list[tuple[np.ndarray, np.ndarray]] | None
    populations: PopulationCurves
    decay_state: int
    fits: dict[str, DecayFit]
    products: ProductStatistics | None
    hops: HopStatistics
    notes: list[str] = field(default_factory=list)


def _last_finite(values: np.ndarray, where: str) -> float:
    finite = np.flatnonzero(np.isfinite(values))
    if not len(finite):
        raise ValueError(f"{where}: no frame with a finite dihedral")
    return float(values[finite[-1]])


def analyze_run(run: Run, options: AnalysisOptions | None = None) -> Analysis:
    """Analyse the trajectories of ``run`` (those in ``run.trajectories``)."""
    options = options or AnalysisOptions()
    trajectories = run.trajectories
    if not trajectories:
        raise ValueError(f"{run.directory}: no trajectories to analyse (all were excluded)")
    notes: list[str] = []
    atoms, source, dihedrals = None, "none", None
    if options.products:
        if options.dihedral is not None:
            atoms, source = tuple(int(i) for i in options.dihedral), "given"
        else:
            atoms, source = topology_dihedral(read_topology(run.topology)), "detected"
        dihedrals = [dihedral_series(t.path, atoms) for t in trajectories]

    grid = default_grid(trajectories, options.grid_spacing_fs)
    populations = population_curves(trajectories, run.n_states, grid, options.hold_last)
    initial = Counter(t.initial_state for t in trajectories)
    decay_state = options.decay_state
    if decay_state is None:
        decay_state = initial.most_common(1)[0][0]
    if not 0 <= decay_state < run.n_states:
        raise ValueError(f"decay state {decay_state} outside 0..{run.n_states - 1}")
    if len(initial) > 1:
        notes.append(
            "trajectories start in different states ("
            + ", ".join(f"S{s}: {n}" for s, n in sorted(initial.items()))
            + f"); the decay fitted is that of S{decay_state}"
        )

    seeds = np.random.SeedSequence(options.seed).spawn(len(FITS) + 1)
    *fit_rngs, yield_rng = [np.random.default_rng(s) for s in seeds]
    fits = {}
    for (curve, model), rng in zip(FITS, fit_rngs, strict=True):
        values = per_trajectory(
            trajectories, decay_state, grid, options.hold_last, electronic=curve == "electronic"
        )
        fits[f"{curve}/{model}"] = fit_decay(grid, values, model, options.n_boot_fit, rng)

    products = None
    if dihedrals is not None:
        where = [str(t.path) for t in trajectories]
        products = product_statistics(
            initial_dihedral=[
                _last_finite(d[:1], w) for (_, d), w in zip(dihedrals, where, strict=True)
            ],
            final_dihedral=[_last_finite(d, w) for (_, d), w in zip(dihedrals, where, strict=True)],
            final_state=[t.final_state for t in trajectories],
            ground_state=options.ground_state,
            thresholds=Thresholds(options.cis_below, options.trans_above),
            n_boot=options.n_boot,
            rng=yield_rng,
        )
    no_dihedral = [(t.time, np.full(len(t.time), np.nan)) for t in trajectories]
    return Analysis(
        run=run,
        options=options,
        dihedral_atoms=atoms,
        dihedral_source=source,
        dihedrals=dihedrals,
        populations=populations,
        decay_state=decay_state,
        fits=fits,
        products=products,
        hops=hop_statistics(trajectories, dihedrals or no_dihedral),
        notes=notes,
    )


def _clean(value):
    """JSON-safe copy: NaN and infinities become None, numpy scalars and arrays plain."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, np.ndarray):
        return _clean(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _products_dict(a: Analysis) -> dict | None:
    prod = a.products
    if prod is None:
        return None
    rows = zip(a.run.trajectories, a.dihedrals, prod.start, prod.product, strict=True)
    return {
        "counts": prod.counts,
        "start_counts": dict(Counter(prod.start)),
        "yields": {p: prod.yields[p].to_dict() for p in PRODUCTS},
        "quantum_yield": prod.quantum_yield.to_dict(),
        "trajectories": [
            {
                "index": t.index,
                "status": t.status,
                "final_state": t.final_state,
                "initial_dihedral_deg": d[0],
                "final_dihedral_deg": d[np.isfinite(d)][-1],
                "start": s,
                "product": p,
            }
            for t, (_, d), s, p in rows
        ],
    }


def analysis_to_dict(a: Analysis) -> dict:
    """Every number of the analysis, JSON-ready (NaN as null)."""
    run, pops = a.run, a.populations
    trajectories = run.trajectories
    return _clean(
        {
            "run_dir": str(run.directory),
            "n_states": run.n_states,
            "dt_fs": run.dt_fs,
            "options": asdict(a.options),
            "notes": a.notes,
            "counts": {
                "total": len(trajectories) + len(run.excluded),
                "analysed": len(trajectories),
                "excluded": len(run.excluded),
                "excluded_indices": [t.index for t in run.excluded],
                "by_status": run.status_counts,
            },
            "populations": {
                "time_fs": pops.time,
                "active_fraction": pops.active,
                "active_fraction_se": pops.active_se,
                "electronic": pops.electronic,
                "electronic_se": pops.electronic_se,
                "n_trajectories": pops.n,
            },
            "decay": {
                "state": a.decay_state,
                "fits": {name: fit.to_dict() for name, fit in a.fits.items()},
            },
            "dihedral": {"atoms": a.dihedral_atoms, "source": a.dihedral_source},
            "products": _products_dict(a),
            "hops": a.hops.to_dict(),
        }
    )


def _yield_text(y) -> str:
    return f"{y.value:.3f} [{y.low:.3f}, {y.high:.3f}]"


def format_report(a: Analysis) -> str:
    """A short text summary: counts by status, decay times, yields with their intervals, hops."""
    run, prod = a.run, a.products
    n = len(run.trajectories)
    statuses = ", ".join(f"{s} {c}" for s, c in run.status_counts.items() if c)
    lines = [
        f"run {run.directory}: {n + len(run.excluded)} trajectories, {n} analysed, "
        f"{len(run.excluded)} excluded",
        f"  status: {statuses}",
    ]
    lines += [f"  note: {note}" for note in a.notes]
    if n:
        finals = Counter(t.final_state for t in run.trajectories)
        shares = []
        for state in sorted(finals):
            p = finals[state] / n
            shares.append(f"S{state} {p:.3f} +- {(p * (1 - p) / n) ** 0.5:.3f}")
        lines.append(
            "final active state (fraction +- binomial standard error): " + ", ".join(shares)
        )
    for name, fit in a.fits.items():
        curve, model = name.split("/")
        what = "active-state fraction" if curve == "active" else "mean |c|^2"
        if not fit.success:
            lines.append(f"S{a.decay_state} decay ({what}, {model}): no fit ({fit.message})")
            continue
        text = f"tau = {fit.tau:.1f} +- {fit.tau_se:.1f} fs"
        if model == "delayed":
            text += f", t0 = {fit.t0:.1f} +- {fit.t0_se:.1f} fs"
        lines.append(f"S{a.decay_state} decay ({what}, {model}): {text}")
    if prod is not None:
        i, j, k, m = a.dihedral_atoms
        lines.append(f"central dihedral: atoms {i} {j} {k} {m} ({a.dihedral_source})")
        start = ", ".join(f"{s} {c}" for s, c in sorted(Counter(prod.start).items()))
        lines.append(f"starting isomers: {start}")
        shown = [p for p in PRODUCTS if prod.counts[p] or p != "twisted"]
        lines.append(
            f"products (yield [95% CI], {a.options.n_boot} bootstrap resamples): "
            + ", ".join(f"{p} {prod.counts[p]} ({_yield_text(prod.yields[p])})" for p in shown)
        )
        lines.append(f"quantum yield of isomerisation: {_yield_text(prod.quantum_yield)}")
    hops = a.hops.to_dict()
    types = ", ".join(f"{t}: {c}" for t, c in hops["by_type"].items()) or "none"
    lines.append(
        f"hops: {hops['n_hops']} ({types}), {hops['mean_hops_per_trajectory']:.2f} per "
        f"trajectory; frustrated: {hops['n_frustrated']}"
    )
    return "\n".join(lines)
