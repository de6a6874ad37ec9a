"""Figures of an analysis: populations, dihedrals, hops, diagnostics (matplotlib ``Figure``
objects drawn straight to PNG by the Agg canvas, without pyplot or any global backend state).

Each function takes an :class:`~fusionff.analysis.analyze.Analysis` and a path, writes one PNG
and returns the path. Dihedrals are drawn as |dihedral| in [0, 180] degrees (0 cis, 180 trans)
so that trans geometries do not jump between -180 and 180. No panel is drawn without data:
no dihedral figure without a dihedral, no hop-time or hop-geometry panel without hops, no
pyramidalisation panel without measured angle sums at the hops.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from fusionff.analysis.analyze import Analysis
from fusionff.analysis.products import PRODUCTS
from fusionff.analysis.run import FAILED_STATUSES

TETRAHEDRAL_ANGLE_SUM = 3.0 * float(np.degrees(np.arccos(-1.0 / 3.0)))
"""Degrees (328.4): the sum of the three bond angles at a tetrahedral (sp3) centre."""
STATE_COLOURS = ("tab:blue", "tab:red", "tab:green", "tab:purple", "tab:orange", "tab:brown")


def _colour(state: int) -> str:
    return STATE_COLOURS[state % len(STATE_COLOURS)]


def _save(fig, path: Path) -> Path:
    path = Path(path)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return path


def plot_populations(a: Analysis, path: Path) -> Path:
    """Active-state fractions with their 95% (Clopper-Pearson) bands, mean |c|^2 (dashed), the
    decay fits of the decaying state that describe the data (black), and the fraction without
    a first passage to the ground state that the first-passage rate implies (black dash-dot,
    when there is a passage; 1 before its onset: it counts only what comes after)."""
    p = a.populations
    fig = Figure(figsize=(7, 4.5))
    ax = fig.subplots()
    for s in range(a.run.n_states):
        c = _colour(s)
        ax.plot(p.time, p.active[:, s], color=c, label=f"S{s} active")
        ax.fill_between(
            p.time, p.active_low[:, s], p.active_high[:, s], color=c, alpha=0.2, linewidth=0
        )
        ax.plot(p.time, p.electronic[:, s], color=c, linestyle="--", label=f"S{s} mean |c|^2")
    styles = {"active/delayed": ":", "active/exponential": "-.", "electronic/delayed": (0, (1, 3))}
    for name, fit in a.fits.items():
        if fit.success:
            label = f"fit {name}: tau = {fit.tau:.0f} +- {fit.tau_se:.0f} fs"
            ax.plot(p.time, fit.curve(p.time), color="k", linestyle=styles[name], label=label)
    rate = a.first_passage
    if rate is not None and rate.events:
        t = np.asarray(p.time, dtype=float)
        label = (
            f"no first passage after {rate.t0_fs:g} fs, constant hazard: tau = "
            f"{rate.tau_fs / 1000:.2f} ps [{rate.tau_low_fs / 1000:.2f}, "
            f"{rate.tau_high_fs / 1000:.2f}]"
        )
        survival = np.exp(-np.clip(t - rate.t0_fs, 0.0, None) / rate.tau_fs)
        ax.plot(t, survival, color="k", linestyle=(0, (5, 2, 1, 2)), label=label)
    ax.set_xlabel("time (fs)")
    ax.set_ylabel("population")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(f"{len(a.run.trajectories)} trajectories (bands: 95% intervals)")
    ax.legend(fontsize=7, loc="center right")
    return _save(fig, path)


def plot_dihedrals(a: Analysis, path: Path) -> Path:
    """|dihedral| against time for every trajectory, points coloured by active state; and a
    histogram of the final |dihedral| by product."""
    fig = Figure(figsize=(10, 4.5))
    ax, hist = fig.subplots(1, 2, width_ratios=(2.2, 1))
    for traj, (t, d) in zip(a.run.trajectories, a.dihedrals, strict=True):
        index = np.clip(np.searchsorted(traj.time, t + 1e-6, side="right") - 1, 0, None)
        state = traj.active_state[index]
        ax.plot(t, np.abs(d), color="0.8", linewidth=0.5, zorder=1)
        ax.scatter(t, np.abs(d), c=[_colour(s) for s in state], s=2, zorder=2, linewidths=0)
    for s in range(a.run.n_states):
        ax.scatter([], [], color=_colour(s), s=10, label=f"on S{s}")
    ax.axhline(a.options.cis_below, color="k", linewidth=0.5, linestyle="--")
    ax.axhline(a.options.trans_above, color="k", linewidth=0.5, linestyle="--")
    ax.set_xlabel("time (fs)")
    ax.set_ylabel("|central dihedral| (degrees)")
    ax.set_ylim(0, 180)
    ax.legend(fontsize=8)
    final = np.array([abs(d[np.isfinite(d)][-1]) for _, d in a.dihedrals])
    product = np.array(a.products.product)
    bins = np.linspace(0, 180, 19)
    colours = dict(
        zip(PRODUCTS, ("tab:cyan", "tab:olive", "0.5", "tab:pink", _colour(1)), strict=True)
    )
    shown = [name for name in PRODUCTS if (product == name).any()]
    hist.hist(
        [final[product == name] for name in shown],
        bins=bins,
        stacked=True,
        label=shown,
        color=[colours[name] for name in shown],
    )
    hist.yaxis.set_major_locator(MaxNLocator(integer=True))
    hist.set_xlabel("final |dihedral| (degrees)")
    hist.set_ylabel("trajectories")
    qy = a.products.quantum_yield
    title = (
        f"isomerisation yield {qy.value:.2f} [{qy.low:.2f}, {qy.high:.2f}]"
        if qy.measured
        else f"isomerisation yield not measured (0 of {qy.n}; <= {qy.high:.2f})"
    )
    hist.set_title(title, fontsize=9)
    hist.legend(fontsize=8)
    return _save(fig, path)


def plot_hops(a: Analysis, path: Path) -> Path:
    """Hop times by type (with hops or frustrated attempts), the gap at each hop against the
    dihedral (or against time without one; with hops), |dihedral| against the smaller angle
    sum of the two central carbons at each hop (pyramidalisation; when measured), and hops
    per trajectory (always). Hop types have the same colour in every panel."""
    events = a.hops.events
    frustrated = a.hops.frustrated_times_fs
    has_frustrated = frustrated is not None and len(frustrated) > 0
    with_dihedral = a.dihedrals is not None
    smaller = np.array([e.most_pyramidal for e in events])
    panels = (["times"] if events or has_frustrated else []) + (["geometry"] if events else [])
    if with_dihedral and np.isfinite(smaller).any():
        panels.append("pyramidalisation")
    panels.append("counts")
    fig = Figure(figsize=(4.4 * len(panels), 4))
    axes = dict(zip(panels, np.atleast_1d(fig.subplots(1, len(panels))), strict=True))
    types = sorted({(e.source, e.target) for e in events})
    colour = {t: f"C{k}" for k, t in enumerate(types)}
    t_end = float(a.populations.time[-1]) if len(a.populations.time) else 1.0
    bins = np.linspace(0.0, max(t_end, 1e-6), 26)
    if "times" in axes:
        times = axes["times"]
        for source, target in types:
            sel = [e.time_fs for e in events if (e.source, e.target) == (source, target)]
            times.hist(
                sel,
                bins=bins,
                alpha=0.6,
                color=colour[source, target],
                label=f"S{source} -> S{target}",
            )
        if has_frustrated:
            times.hist(frustrated, bins=bins, histtype="step", color="k", label="frustrated")
        times.set_xlabel("hop time (fs)")
        times.set_ylabel("hops")
        times.yaxis.set_major_locator(MaxNLocator(integer=True))
        times.legend(fontsize=8)
    if "geometry" in axes:
        geometry = axes["geometry"]
        for source, target in types:
            sel = [e for e in events if (e.source, e.target) == (source, target)]
            x = [abs(e.dihedral) if with_dihedral else e.time_fs for e in sel]
            geometry.scatter(
                x,
                [e.gap for e in sel],
                s=10,
                color=colour[source, target],
                label=f"S{source} -> S{target}",
            )
        if with_dihedral:
            geometry.set_xlabel("|central dihedral| at hop (degrees)")
            geometry.set_xlim(0, 180)
        else:
            geometry.set_xlabel("hop time (fs)")
        geometry.set_ylabel("gap at hop (eV)")
        geometry.legend(fontsize=8)
    if "pyramidalisation" in axes:
        pyramid = axes["pyramidalisation"]
        for source, target in types:
            sel = [k for k, e in enumerate(events) if (e.source, e.target) == (source, target)]
            pyramid.scatter(
                [abs(events[k].dihedral) for k in sel],
                smaller[sel],
                s=10,
                color=colour[source, target],
                label=f"S{source} -> S{target}",
            )
        pyramid.axhline(360.0, color="k", linewidth=0.5, linestyle="--")
        pyramid.axhline(TETRAHEDRAL_ANGLE_SUM, color="k", linewidth=0.5, linestyle=":")
        pyramid.set_xlabel("|central dihedral| at hop (degrees)")
        pyramid.set_xlim(0, 180)
        pyramid.set_ylabel("smaller central-carbon angle sum (degrees)")
        pyramid.set_title(
            "pyramidalisation at the hops (360 planar, dashed; 328.4 tetrahedral, dotted)",
            fontsize=8,
        )
        pyramid.legend(fontsize=8)
    counts = axes["counts"]
    n = a.hops.hops_per_trajectory
    counts.hist(n, bins=np.arange(-0.5, (n.max() if len(n) else 0) + 1.5), rwidth=0.8)
    counts.xaxis.set_major_locator(MaxNLocator(integer=True))
    counts.set_xlabel("hops per trajectory")
    counts.set_ylabel("trajectories")
    counts.set_title(f"frustrated hops: {int(a.hops.frustrated_per_trajectory.sum())}", fontsize=9)
    return _save(fig, path)


FAILED_MARKERS = dict(
    zip(
        sorted(FAILED_STATUSES),
        (
            ("x", "tab:red"),
            ("s", "tab:purple"),
            ("^", "tab:orange"),
            ("D", "tab:olive"),
            ("v", "tab:brown"),
            ("P", "tab:pink"),
        ),
        strict=True,
    )
)
"""Marker and colour of each failed status in the diagnostics figure."""


def _mark_ran_on(ax, index: np.ndarray, values: np.ndarray) -> None:
    """Hollow diamonds: trajectories flagged for their committee spread but not stopped."""
    ax.scatter(
        index,
        values,
        s=30,
        marker="D",
        facecolors="none",
        edgecolors="tab:purple",
        label="committee flag, ran on",
    )


def plot_diagnostics(a: Analysis, path: Path) -> Path:
    """Per trajectory: its smallest S1-S0 gap (with two or more states) and its largest energy
    drift, against the trajectory index; flagged trajectories marked (failed statuses, and
    hollow diamonds for those a committee run flagged but let run on). When a committee run
    flagged any trajectory, a third panel shows each trajectory's length (grey line) and the
    time of its flag (marker)."""
    d = a.diagnostics
    ran_on = d.ran_on_flagged
    flags = ~np.isnan(d.flag_time_fs)
    panels = (["gap"] if a.run.n_states > 1 else []) + ["drift"] + (["flag"] if flags.any() else [])
    fig = Figure(figsize=(5.5 * len(panels), 4))
    axes = dict(zip(panels, np.atleast_1d(fig.subplots(1, len(panels))), strict=True))
    failed = {
        status: np.array([s == status for s in d.status], dtype=bool) for status in FAILED_MARKERS
    }
    ok = ~np.any(list(failed.values()), axis=0) & ~ran_on
    for name, values, label in (
        ("gap", d.min_gap_ev, "smallest S1-S0 gap (eV)"),
        ("drift", d.drift_ev, "max |E_tot(t) - E_tot(0)| (eV)"),
    ):
        if name not in axes:
            continue
        ax = axes[name]
        ax.scatter(d.index[ok], values[ok], s=12, color="tab:blue", label="ok")
        if ran_on.any():
            _mark_ran_on(ax, d.index[ran_on], values[ran_on])
        for status, sel in failed.items():
            if sel.any():
                marker, colour = FAILED_MARKERS[status]
                ax.scatter(
                    d.index[sel], values[sel], s=24, marker=marker, color=colour, label=status
                )
        ax.set_ylabel(label)
    if "flag" in axes:
        ax = axes["flag"]
        final = {t.index: t.final_time_fs for t in a.run.trajectories + a.run.excluded}
        ax.vlines(d.index, 0.0, [final[i] for i in d.index.tolist()], color="0.8", linewidth=2)
        if ran_on.any():
            _mark_ran_on(ax, d.index[ran_on], d.flag_time_fs[ran_on])
        stopped = flags & ~ran_on
        if stopped.any():
            marker, colour = FAILED_MARKERS["committee-spread"]
            ax.scatter(
                d.index[stopped],
                d.flag_time_fs[stopped],
                s=24,
                marker=marker,
                color=colour,
                label="committee-spread (stopped)",
            )
        ax.set_ylabel("time of the committee flag (fs)")
        ax.set_title("grey: trajectory length", fontsize=9)
        ax.set_ylim(bottom=0)
    for ax in axes.values():
        ax.set_xlabel("trajectory")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(fontsize=8)
    if "gap" in axes:
        axes["gap"].set_ylim(bottom=0)
    return _save(fig, path)


def plot_all(a: Analysis, directory: Path) -> list[Path]:
    """populations.png, dihedral.png (when there is a dihedral), hops.png and diagnostics.png
    in ``directory``."""
    directory = Path(directory)
    written = [plot_populations(a, directory / "populations.png")]
    if a.dihedrals is not None:
        written.append(plot_dihedrals(a, directory / "dihedral.png"))
    written.append(plot_hops(a, directory / "hops.png"))
    written.append(plot_diagnostics(a, directory / "diagnostics.png"))
    return written
