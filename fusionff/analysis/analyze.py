"""The whole analysis of an ensemble run: populations, decay fits, products, yields, hops and
the diagnostics that explain them (smallest gaps, energy drift, flagged trajectories).

:func:`analyze_run` is pure computation on a :class:`~fusionff.analysis.run.Run` (apart from
reading the dihedral and ortho carbons of each trajectory, and the central carbons at the
hops); :func:`analysis_to_dict` gives the numbers written to ``analysis.json`` and
:func:`format_report` the short text printed by the CLI.
Fractions of trajectories (final states, products, yields, populations) carry exact binomial
95% intervals (:mod:`fusionff.analysis.intervals`). Decays are fitted only where the curve
shows one (:mod:`fusionff.analysis.lifetime`) and never for scattering runs (Tully's models),
whose final states are transmission and reflection. Random numbers (bootstrap resamples of the
fits) come from ``np.random.SeedSequence(options.seed)``: the same run and options give the
same numbers.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import asdict, dataclass, field

import numpy as np

from fusionff.analysis.diagnostics import Diagnostics, diagnostics
from fusionff.analysis.dihedral import (
    CentralNeighbours,
    Dihedral,
    Ortho,
    central_angle_sums,
    dihedral_series,
    ortho_distance_series,
    read_topology,
    topology_central_neighbours,
    topology_dihedral,
    topology_ortho,
)
from fusionff.analysis.domain import DomainRecheck, reapply_domain
from fusionff.analysis.hops import HopEvent, HopStatistics, hop_statistics, nearest_frame
from fusionff.analysis.intervals import METHOD, Proportion
from fusionff.analysis.lifetime import DecayFit, fit_decay
from fusionff.analysis.populations import (
    PopulationCurves,
    default_grid,
    per_trajectory,
    population_curves,
)
from fusionff.analysis.products import (
    ProductStatistics,
    Thresholds,
    excluded_bounds,
    product_statistics,
)
from fusionff.analysis.run import Run
from fusionff.analysis.survival import (
    HazardEstimate,
    HazardHomogeneity,
    ReachedBy,
    constant_hazard,
    first_passages,
    hazard_homogeneity,
    reached_by,
    window_edges,
)

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
    trans_above: isomer thresholds on |dihedral| (degrees); dhp_below: a trajectory ending on
    the ground state with its smallest ortho-ortho distance below this (Angstrom) is DHP (see
    :class:`~fusionff.analysis.products.Thresholds`; None: no DHP classification);
    n_boot_fit: bootstrap resamples of the decay fits; seed: of the bootstrap generators;
    domain_min_distance: re-apply the run's domain pairs at this distance (Angstrom, not below
    the run's own limit) to the written frames, excluding as out-of-domain every trajectory
    whose pair came closer (see :mod:`fusionff.analysis.domain`; None: the run's limit only).
    hazard_after_fs: the first-passage rate (:mod:`fusionff.analysis.survival`) counts
    passages and time at risk after this time, fs (the induction period left out).
    hazard_edges_fs: the intervals (fs) on which one rate is tested against a rate of each
    (:func:`~fusionff.analysis.survival.hazard_homogeneity`; None: ``hazard_intervals``
    equal intervals from ``hazard_after_fs`` to the longest observation).
    reached_by_fs: the times (fs) at which the fraction of trajectories that reached the
    ground state is reported (:func:`~fusionff.analysis.survival.reached_by`; a time no
    trajectory is watched until is left out with a note).
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
    dhp_below: float | None = 2.0
    n_boot_fit: int = 200
    seed: int = 0
    domain_min_distance: float | None = None
    hazard_after_fs: float = 0.0
    hazard_edges_fs: tuple[float, ...] | None = None
    hazard_intervals: int = 4
    reached_by_fs: tuple[float, ...] = (500.0,)


@dataclass
class Analysis:
    """Results of :func:`analyze_run`; ``dihedrals[i]`` is (time fs, degrees) of the i-th
    analysed trajectory and ``ortho_distances[i]`` (time fs, smallest ortho-ortho distance
    Angstrom); ``central_neighbours`` are the atoms bonded to the dihedral's two central
    carbons, whose angle sums (pyramidalisation) are taken at the hops (None: not measured, a
    note says why). Without products (``options.products`` false) ``dihedral_atoms``,
    ``dihedrals``, ``central_neighbours`` and ``products`` are None; without DHP
    classification (not a stilbene, or ``options.dhp_below`` None; a note says why)
    ``ortho_atoms`` and ``ortho_distances`` are None.
    ``final_states[s]``: the fraction of analysed trajectories ending on state s; ``fits`` is
    empty for scattering runs. ``domain``: what re-applying the domain at
    ``options.domain_min_distance`` changed (``run`` is then the run after it), or None."""

    run: Run
    options: AnalysisOptions
    dihedral_atoms: Dihedral | None
    dihedral_source: str
    dihedrals: list[tuple[np.ndarray, np.ndarray]] | None
    ortho_atoms: Ortho | None
    ortho_distances: list[tuple[np.ndarray, np.ndarray]] | None
    central_neighbours: CentralNeighbours | None
    populations: PopulationCurves
    decay_state: int
    fits: dict[str, DecayFit]
    final_states: list[Proportion]
    products: ProductStatistics | None
    hops: HopStatistics
    diagnostics: Diagnostics
    notes: list[str] = field(default_factory=list)
    domain: DomainRecheck | None = None
    first_passage: HazardEstimate | None = None
    """The constant-hazard rate of first passage from ``decay_state`` to the ground state,
    from every started trajectory, failed ones censored where they were stopped (None for
    scattering runs, or when no trajectory is watched past ``options.hazard_after_fs``)."""
    first_passage_test: HazardHomogeneity | None = None
    """Whether that one rate fits each interval of the window (None where
    ``first_passage`` is, or without passages; a note says why)."""
    reached: list[ReachedBy] = field(default_factory=list)
    """The fraction that reached the ground state by each of ``options.reached_by_fs``
    (empty for scattering runs)."""


def _last_finite(values: np.ndarray, where: str, what: str = "dihedral") -> float:
    finite = np.flatnonzero(np.isfinite(values))
    if not len(finite):
        raise ValueError(f"{where}: no frame with a finite {what}")
    return float(values[finite[-1]])


def analyze_run(run: Run, options: AnalysisOptions | None = None) -> Analysis:
    """Analyse the trajectories of ``run`` (those in ``run.trajectories``, less those out of
    the domain re-applied at ``options.domain_min_distance``)."""
    options = options or AnalysisOptions()
    notes: list[str] = []
    domain = None
    if options.domain_min_distance is not None:
        if options.include_failed:
            raise ValueError(
                "domain_min_distance excludes trajectories and include_failed analyses the "
                "failed ones: give one of them (--domain-min-distance, --include-failed)"
            )
        run, domain = reapply_domain(run, options.domain_min_distance)
        notes.append(domain.note())
    trajectories = run.trajectories
    if not trajectories:
        raise ValueError(f"{run.directory}: no trajectories to analyse (all were excluded)")
    atoms, source, dihedrals = None, "none", None
    ortho, ortho_distances = None, None
    central, angle_sums = None, None
    if options.products:
        thresholds = Thresholds(options.cis_below, options.trans_above)
        if options.dhp_below is not None:
            thresholds = Thresholds(options.cis_below, options.trans_above, options.dhp_below)
        topology = None
        if options.dihedral is not None:
            atoms, source = tuple(int(i) for i in options.dihedral), "given"
        else:
            topology = read_topology(run.topology)
            atoms, source = topology_dihedral(topology), "detected"
        dihedrals = [dihedral_series(t.path, atoms) for t in trajectories]

        def read_topology_once():  # with a given dihedral it is read only here, may be missing
            nonlocal topology
            if topology is None:
                topology = read_topology(run.topology)
            return topology

        try:
            central = topology_central_neighbours(read_topology_once(), atoms)
        except (ValueError, OSError) as err:
            notes.append(f"pyramidalisation of the central carbons not measured: {err}")
        else:  # at the frame nearest each hop, as the dihedral (hops.hop_events)
            angle_sums = [
                central_angle_sums(
                    t.path, atoms, central, [nearest_frame(time, h.time_fs) for h in t.hops]
                )
                for t, (time, _) in zip(trajectories, dihedrals, strict=True)
            ]
        if options.dhp_below is None:
            notes.append("no DHP classification: turned off (dhp_below None, --no-dhp)")
        else:
            try:
                ortho = topology_ortho(read_topology_once(), atoms)
            except (ValueError, OSError) as err:
                notes.append(f"no DHP classification (no stilbene ortho carbons): {err}")
            else:
                ortho_distances = [ortho_distance_series(t.path, ortho) for t in trajectories]

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

    fits = {}
    first_passage = None
    first_passage_test = None
    reached: list[ReachedBy] = []
    if not run.scattering and decay_state != options.ground_state:
        passages = first_passages(
            run.trajectories + run.excluded,
            decay_state,
            options.ground_state,
            ends=None if domain is None else domain.exit_time_fs,
        )
        for t in options.reached_by_fs:
            try:
                reached.append(reached_by(passages, t))
            except ValueError as err:
                notes.append(f"no fraction reached by {t:g} fs: {err}")
        try:
            first_passage = constant_hazard(passages, options.hazard_after_fs)
        except ValueError as err:
            notes.append(f"no first-passage rate: {err}")
        if first_passage is not None:
            try:
                edges = options.hazard_edges_fs or window_edges(
                    passages, options.hazard_after_fs, options.hazard_intervals
                )
                first_passage_test = hazard_homogeneity(passages, edges, seed=options.seed)
            except ValueError as err:
                notes.append(f"no constant-hazard test: {err}")
    if run.scattering:
        notes.append(
            "scattering run (Tully model): the final active state is transmission/reflection "
            "on each surface; no decay is fitted"
        )
    else:
        seeds = np.random.SeedSequence(options.seed).spawn(len(FITS))
        for (curve, model), seed in zip(FITS, seeds, strict=True):
            values = per_trajectory(
                trajectories, decay_state, grid, options.hold_last, electronic=curve == "electronic"
            )
            rng = np.random.default_rng(seed)
            fits[f"{curve}/{model}"] = fit_decay(grid, values, model, options.n_boot_fit, rng)
    finals = Counter(t.final_state for t in trajectories)
    final_states = [Proportion.of(finals[s], len(trajectories)) for s in range(run.n_states)]

    products = None
    if dihedrals is not None:
        where = [str(t.path) for t in trajectories]
        final_ortho = None
        if ortho_distances is not None:
            final_ortho = [
                _last_finite(r, w, "ortho-ortho distance")
                for (_, r), w in zip(ortho_distances, where, strict=True)
            ]
        products = product_statistics(
            initial_dihedral=[
                _last_finite(d[:1], w) for (_, d), w in zip(dihedrals, where, strict=True)
            ],
            final_dihedral=[_last_finite(d, w) for (_, d), w in zip(dihedrals, where, strict=True)],
            final_state=[t.final_state for t in trajectories],
            ground_state=options.ground_state,
            thresholds=thresholds,
            final_ortho_distance=final_ortho,
        )
    no_dihedral = [(t.time, np.full(len(t.time), np.nan)) for t in trajectories]
    return Analysis(
        run=run,
        options=options,
        dihedral_atoms=atoms,
        dihedral_source=source,
        dihedrals=dihedrals,
        ortho_atoms=ortho,
        ortho_distances=ortho_distances,
        central_neighbours=central,
        populations=populations,
        decay_state=decay_state,
        fits=fits,
        final_states=final_states,
        products=products,
        hops=hop_statistics(trajectories, dihedrals or no_dihedral, angle_sums),
        diagnostics=diagnostics(run),
        notes=notes,
        domain=domain,
        first_passage=first_passage,
        first_passage_test=first_passage_test,
        reached=reached,
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


def yield_bounds_all(a: Analysis, of: str = "all") -> tuple[Proportion, Proportion] | None:
    """The quantum yield of isomerisation as a fraction of *every* started trajectory (``of``
    "all") or of those back on the ground state with the excluded counted as back there
    ("decayed"), the excluded (flagged) ones counted first as not isomerised (lower bound),
    then as isomerised (upper bound); None without products or without excluded trajectories.
    The yield over the analysed trajectories alone assumes the flagged ones would have ended
    like the rest; these bounds assume nothing about them
    (:func:`~fusionff.analysis.products.excluded_bounds`)."""
    prod, n_excluded = a.products, len(a.run.excluded)
    if prod is None or not n_excluded:
        return None
    return excluded_bounds(prod, n_excluded)[of]


def _products_dict(a: Analysis) -> dict | None:
    prod = a.products
    if prod is None:
        return None
    bounds, decayed = yield_bounds_all(a), yield_bounds_all(a, "decayed")
    if a.ortho_distances is None:
        final_ortho = [None] * len(prod.product)
    else:
        final_ortho = [r[np.isfinite(r)][-1] for _, r in a.ortho_distances]
    rows = zip(a.run.trajectories, a.dihedrals, final_ortho, prod.start, prod.product, strict=True)
    return {
        "counts": prod.counts,
        "start_counts": dict(Counter(prod.start)),
        "yields": {p: y.to_dict() for p, y in prod.yields.items()},
        "quantum_yield": prod.quantum_yield.to_dict(),
        "quantum_yield_all_started": None
        if bounds is None
        else {"lower": bounds[0].to_dict(), "upper": bounds[1].to_dict()},
        "quantum_yield_decayed": prod.decayed_yield.to_dict(),
        "quantum_yield_decayed_bounds": None
        if decayed is None
        else {"lower": decayed[0].to_dict(), "upper": decayed[1].to_dict()},
        "trajectories": [
            {
                "index": t.index,
                "status": t.status,
                "final_state": t.final_state,
                "initial_dihedral_deg": d[0],
                "final_dihedral_deg": d[np.isfinite(d)][-1],
                "final_ortho_distance_angstrom": r,
                "start": s,
                "product": p,
            }
            for t, (_, d), r, s, p in rows
        ],
    }


def analysis_to_dict(a: Analysis) -> dict:
    """Every number of the analysis, JSON-ready (NaN as null). Keys (times fs, energies eV):

    * ``run_dir``, ``n_states``, ``dt_fs``, ``scattering`` (bool), ``options``, ``notes``;
    * ``counts``: ``total``, ``analysed``, ``excluded``, ``excluded_indices``, ``by_status``
      (after the domain is re-applied, with ``options.domain_min_distance``);
    * ``domain`` (None unless ``options.domain_min_distance``): ``pairs``,
      ``min_distance_angstrom``, ``run_min_distance_angstrom``, ``frames`` ("written": a dip
      between two written frames is missed), ``out_of_domain`` and ``out_of_domain_indices``
      (relabelled "out-of-domain"), ``previous_status`` {status: count} of those,
      ``newly_excluded`` and ``newly_excluded_indices`` (those among them that had been
      analysed);
    * ``final_state``: {"S<s>": fraction} of the analysed trajectories ending on each state;
    * ``populations``: ``time_fs`` (T,); ``active_fraction`` (T, S) with its 95% interval
      ``active_fraction_ci95_low`` / ``_high`` (T, S); ``electronic`` (T, S) mean |c|^2 and
      ``electronic_se`` (T, S); ``n_trajectories`` (T,); ``interval`` (the method);
    * ``decay``: ``state``; ``fitted`` (bool: some fit describes the data); ``fits``
      {"<curve>/<model>": tau, tau_se, t0, t0_se, ..., success, message, drop, window_fs}
      (empty for scattering runs); ``first_passage`` (null for scattering runs): the
      constant-hazard rate of first passage to the ground state after ``t0_fs``, every started
      trajectory counted, failed ones censored where stopped (``t0_fs``, ``at_risk``,
      ``events``, ``before_t0``, ``exposure_fs``, ``window_fs``, ``tau_fs`` with its exact
      ``tau_low_fs`` / ``tau_high_fs`` (null: unbounded), ``confidence``,
      ``censored_by_failure`` {status: count}; :mod:`fusionff.analysis.survival`);
      ``first_passage_test`` (null without passages): whether that one rate fits each
      interval (``edges_fs``, ``events``, ``exposure_fs``, likelihood ratio ``statistic``,
      ``dof``, Monte Carlo ``p_value`` of ``n_draws`` draws, ``p_chi2``); ``reached``
      [{``t_fs``, ``fraction``, ``low``, ``high``, ``events``, ``n``, ``censored``,
      ``method``, ``bounds``, ``confidence``}]: the fraction that reached the ground state
      by each time of ``options.reached_by_fs`` (:func:`~fusionff.analysis.survival.reached_by`);
    * ``dihedral``: ``atoms``, ``source``, ``central_neighbours`` [[3 atoms], [3 atoms]]
      bonded to its two central carbons (null when their pyramidalisation is not measured;
      the notes say why); ``dhp``: ``ortho_atoms`` [[a1, a2], [b1, b2]] (null
      without DHP classification; the notes say why), ``below_angstrom``;
    * ``products`` (None without products): ``counts``, ``yields`` {product: fraction} (no
      "DHP" key without DHP classification), ``quantum_yield`` (fraction, cis <-> trans only),
      ``quantum_yield_all_started`` ({lower, upper} fractions of every started trajectory, the
      excluded ones counted as not / as isomerised; null when none is excluded),
      ``quantum_yield_decayed`` (isomerised among those back on the ground state) and
      ``quantum_yield_decayed_bounds`` (the same with the excluded counted as back, not / as
      isomerised; null when none is excluded), ``trajectories`` [{index, status,
      final_state, initial_dihedral_deg, final_dihedral_deg, final_ortho_distance_angstrom
      (null without DHP classification), start, product}];
    * ``hops``: see :meth:`~fusionff.analysis.hops.HopStatistics.to_dict`;
    * ``diagnostics``: ``summary`` {min_gap_ev: {min, trajectory, median}, drift_ev: {max,
      trajectory, median}} over the analysed trajectories, ``flagged`` {status: [index]}
      (with "committee-spread" also for those flagged for their spread that ran on),
      ``trajectories`` [{index, status, analysed, min_gap_ev, min_gap_time_fs, drift_ev,
      flag, flag_time_fs}] (``flag``: why a committee run flagged it, or null; ``flag_time_fs``:
      when, or null).

    A fraction is {value, count, n, ci95: [low, high], interval: "clopper-pearson",
    measured}; ``measured`` is false when the count is 0: then ``ci95[1]`` is the 95% upper
    bound and the value is not a measurement of zero.
    """
    run, pops = a.run, a.populations
    trajectories = run.trajectories
    return _clean(
        {
            "run_dir": str(run.directory),
            "n_states": run.n_states,
            "dt_fs": run.dt_fs,
            "scattering": run.scattering,
            "options": asdict(a.options),
            "notes": a.notes,
            "counts": {
                "total": len(trajectories) + len(run.excluded),
                "analysed": len(trajectories),
                "excluded": len(run.excluded),
                "excluded_indices": [t.index for t in run.excluded],
                "by_status": run.status_counts,
            },
            "domain": None if a.domain is None else a.domain.to_dict(),
            "final_state": {f"S{s}": p.to_dict() for s, p in enumerate(a.final_states)},
            "populations": {
                "time_fs": pops.time,
                "active_fraction": pops.active,
                "active_fraction_ci95_low": pops.active_low,
                "active_fraction_ci95_high": pops.active_high,
                "electronic": pops.electronic,
                "electronic_se": pops.electronic_se,
                "n_trajectories": pops.n,
                "interval": METHOD,
            },
            "decay": {
                "state": a.decay_state,
                "fitted": any(fit.success for fit in a.fits.values()),
                "fits": {name: fit.to_dict() for name, fit in a.fits.items()},
                "first_passage": None if a.first_passage is None else a.first_passage.to_dict(),
                "first_passage_test": (
                    None if a.first_passage_test is None else a.first_passage_test.to_dict()
                ),
                "reached": [r.to_dict() for r in a.reached],
            },
            "dihedral": {
                "atoms": a.dihedral_atoms,
                "source": a.dihedral_source,
                "central_neighbours": a.central_neighbours,
            },
            "dhp": {
                "ortho_atoms": a.ortho_atoms,
                "below_angstrom": None if a.ortho_atoms is None else a.options.dhp_below,
            },
            "products": _products_dict(a),
            "hops": a.hops.to_dict(),
            "diagnostics": a.diagnostics.to_dict(),
        }
    )


def _decay_lines(a: Analysis) -> list[str]:
    """One line per fit; a single line when no fit describes the data for the same reason."""
    fits = a.fits
    if not fits:
        return []
    reasons = {fit.message for fit in fits.values() if not fit.success}
    if not any(fit.success for fit in fits.values()) and len(reasons) == 1:
        return [f"S{a.decay_state} decay: {reasons.pop()}; no lifetime fitted"]
    lines = []
    for name, fit in fits.items():
        curve, model = name.split("/")
        what = "active-state fraction" if curve == "active" else "mean |c|^2"
        if not fit.success:
            lines.append(f"S{a.decay_state} decay ({what}, {model}): no fit ({fit.message})")
            continue
        text = f"tau = {fit.tau:.1f} +- {fit.tau_se:.1f} fs"
        if model == "delayed":
            text += f", t0 = {fit.t0:.1f} +- {fit.t0_se:.1f} fs"
        lines.append(f"S{a.decay_state} decay ({what}, {model}): {text}")
    return lines


def _number(value: float | None, unit: str, spec: str = ".3f") -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:{spec}} {unit}"


def _diagnostic_lines(a: Analysis) -> list[str]:
    """Smallest S1-S0 gap, energy drift, flagged trajectories and the gaps (and dihedrals and
    central carbons' angle sums) at the hops: what decides whether anything could hop and
    whether to trust it."""
    summary = a.diagnostics.summary()
    gap, drift = summary["min_gap_ev"], summary["drift_ev"]
    lines = []
    if a.run.n_states > 1:
        lines.append(
            f"smallest S1-S0 gap per trajectory: min {_number(gap['min'], 'eV')} (trajectory "
            f"{gap['trajectory']}), median {_number(gap['median'], 'eV')}; S1 below S0 on "
            f"{gap['inverted']} of {gap['n']} (adiabatic states are ordered: a potential's defect)"
        )
    lines.append(
        f"energy drift max |E_tot(t) - E_tot(0)|: largest {_number(drift['max'], 'eV', '.3g')} "
        f"(trajectory {drift['trajectory']}), median {_number(drift['median'], 'eV', '.3g')}"
    )
    flagged = a.diagnostics.flagged()
    excluded = {t.index for t in a.run.excluded}
    if flagged:
        parts = []
        for status, indices in flagged.items():
            shown = ", ".join(f"{i}{' (excluded)' if i in excluded else ''}" for i in indices)
            parts.append(f"{status}: {shown}")
        lines.append("flagged trajectories: " + "; ".join(parts))
        reasons = a.diagnostics.reasons()
        limits = (a.run.config.get("dynamics") or {}).get("committee")
        if reasons and limits:
            units = {"max_energy_std": "eV", "max_force_std": "eV/Angstrom"}
            shown = [f"{k} {limits[k]:g} {u}" for k, u in units.items() if limits.get(k)]
            lines.append(f"  committee limits: {', '.join(shown)}; action {limits['action']}")
        for index, reason in reasons.items():
            lines.append(f"  trajectory {index}: {reason}")
    else:
        lines.append("flagged trajectories: none")
    events = a.hops.events
    if events:
        gaps = np.array([e.gap for e in events])
        text = (
            f"at the {len(events)} hops: gap median {np.median(gaps):.3f} eV "
            f"(range {gaps.min():.3f}-{gaps.max():.3f})"
        )
        dihedral = np.abs([e.dihedral for e in events])
        if np.isfinite(dihedral).any():
            text += (
                f", |dihedral| median {np.nanmedian(dihedral):.0f} degrees "
                f"(range {np.nanmin(dihedral):.0f}-{np.nanmax(dihedral):.0f})"
            )
        lines.append(text)
        if a.dihedrals is not None:
            lines.append(_pyramidalisation_line(events))
    return lines


def _pyramidalisation_line(events: list[HopEvent]) -> str:
    """The smaller of the two central carbons' angle sums at the hops (360 degrees planar)."""
    text = "more pyramidal central carbon at the hops: "
    if any(e.pyramidalisation is None for e in events):
        return text + "not measured (see the note)"
    smaller = np.array([e.most_pyramidal for e in events])
    smaller = smaller[np.isfinite(smaller)]
    if not len(smaller):
        return text + "n/a (no finite positions at the hops)"
    return text + (
        f"angle sum median {np.median(smaller):.1f} degrees "
        f"(range {smaller.min():.1f}-{smaller.max():.1f}; 360 = planar)"
    )


def format_report(a: Analysis) -> str:
    """A short text summary: counts by status, final states and yields with their 95%
    intervals, decay times where a decay was observed, hops, and the diagnostics."""
    run, prod = a.run, a.products
    n = len(run.trajectories)
    statuses = ", ".join(f"{s} {c}" for s, c in run.status_counts.items() if c)
    lines = [
        f"run {run.directory}: {n + len(run.excluded)} trajectories, {n} analysed, "
        f"{len(run.excluded)} excluded",
        f"  status: {statuses}",
    ]
    lines += [f"  note: {note}" for note in a.notes]
    lines.append(
        "final active state (fraction [95% CI, Clopper-Pearson]): "
        + ", ".join(f"S{s} {p.text()}" for s, p in enumerate(a.final_states))
    )
    lines += _decay_lines(a)
    if a.first_passage is not None:
        states = f"S{a.decay_state} -> S{a.options.ground_state}"
        lines.append(f"{states} first passage {a.first_passage.describe()}")
    if a.first_passage_test is not None:
        lines.append(f"  {a.first_passage_test.describe()}")
    for r in a.reached:
        states = f"S{a.decay_state} -> S{a.options.ground_state}"
        lines.append(f"{states} first passage {r.describe()}")
    if prod is not None:
        i, j, k, m = a.dihedral_atoms
        lines.append(f"central dihedral: atoms {i} {j} {k} {m} ({a.dihedral_source})")
        if a.ortho_atoms is not None:
            (a1, a2), (b1, b2) = a.ortho_atoms
            lines.append(
                f"DHP: ends on S{a.options.ground_state} with an ortho-ortho distance < "
                f"{a.options.dhp_below:.2f} Angstrom (ortho carbons {a1} {a2} | {b1} {b2})"
            )
        start = ", ".join(f"{s} {c}" for s, c in sorted(Counter(prod.start).items()))
        lines.append(f"starting isomers: {start}")
        shown = [p for p in prod.names if prod.counts[p] or p != "twisted"]
        lines.append(
            "products (fraction [95% CI, Clopper-Pearson]): "
            + ", ".join(f"{p} {prod.yields[p].text()}" for p in shown)
        )
        qy = f"quantum yield of isomerisation: {prod.quantum_yield.text()}"
        if a.ortho_atoms is not None:
            qy += " (cis <-> trans; DHP is not isomerisation)"
        lines.append(qy)
        bounds = yield_bounds_all(a)
        if bounds is not None:
            lines.append(
                f"  of all {bounds[0].n} started, the {len(run.excluded)} excluded counted as not "
                f"isomerised / as isomerised: {bounds[0].text()} to {bounds[1].text()}"
            )
        lines.append(
            f"  of those back on S{a.options.ground_state} (the quantum yield once all have "
            f"decayed, if products do not depend on when): {prod.decayed_yield.text()}"
        )
        decayed = yield_bounds_all(a, "decayed")
        if decayed is not None:
            lines.append(
                f"  of those back, the {len(run.excluded)} excluded counted as back and not "
                f"isomerised / isomerised: {decayed[0].text()} to {decayed[1].text()}"
            )
    hops = a.hops.to_dict()
    types = ", ".join(f"{t}: {c}" for t, c in hops["by_type"].items()) or "none"
    lines.append(
        f"hops: {hops['n_hops']} ({types}), {hops['mean_hops_per_trajectory']:.2f} per "
        f"trajectory; frustrated: {hops['n_frustrated']}"
    )
    lines += _diagnostic_lines(a)
    return "\n".join(lines)
