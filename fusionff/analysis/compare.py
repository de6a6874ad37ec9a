"""Are two ensembles the same within statistics? ``fusionff compare RUN_A RUN_B``.

Surface-hopping trajectories are chaotic: two runs of one ensemble on two devices, two
potentials, or a potential and its reference diverge trajectory by trajectory within a few
hundred fs, and even their initial conditions differ where a Wigner sample follows a Hessian
computed on another device. What can agree is the ensemble. This module compares two
``fusionff analyze`` results (``analysis.json``) quantity by quantity:

- proportions (final active state, products, the quantum yield, each kind of flagged
  trajectory, the fraction that first reaches the ground state within a time): the
  difference with Newcombe's 95% interval (hybrid Wilson score) and Fisher's exact two-sided
  p-value;
- distributions (first-hop times to the ground state; twist, gap and pyramidalisation at the
  hops; each trajectory's smallest gap): medians and the two-sample Kolmogorov-Smirnov
  p-value;
- the active-state population curves: the largest difference over the common times.

The verdict applies Holm's step-down correction to all p-values together: the ensembles are
called consistent when no difference is significant at family-wise level ``alpha``. That
finds differences larger than the ensembles' statistics resolve, not small ones: the
intervals say how large a difference the data could still hide.

Units: fs, degrees, eV.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
from scipy.stats import fisher_exact, ks_2samp

from fusionff.analysis.intervals import wilson

ALPHA = 0.05
MIN_SAMPLES = 5  # a distribution needs this many values in both runs to be compared


def load_analysis(path: str | Path) -> dict:
    """The ``analysis.json`` of a run: ``path`` is the file itself, a run directory (its
    ``analysis/analysis.json``) or a directory holding ``analysis.json``."""
    path = Path(path)
    candidates = (
        [path]
        if path.suffix == ".json"
        else [path / "analysis" / "analysis.json", path / "analysis.json"]
    )
    for candidate in candidates:
        if candidate.is_file():
            with open(candidate) as f:
                data = json.load(f)
            if "counts" not in data or "final_state" not in data:
                raise ValueError(
                    f"{candidate}: not an analysis.json of 'fusionff analyze' "
                    "(no 'counts' or 'final_state')"
                )
            data["_path"] = str(candidate)
            return data
    raise FileNotFoundError(
        f"no analysis.json at {' or '.join(str(c) for c in candidates)}: "
        f"run 'fusionff analyze {path}' first"
    )


def newcombe_interval(count_a: int, n_a: int, count_b: int, n_b: int) -> tuple[float, float]:
    """95% interval of p_b - p_a by Newcombe's hybrid score method (his method 10), from the
    Wilson intervals of the two proportions; sound at counts of 0 and n, unlike the Wald
    interval."""
    p_a, p_b = count_a / n_a, count_b / n_b
    low_a, high_a = (float(x) for x in wilson(count_a, n_a))
    low_b, high_b = (float(x) for x in wilson(count_b, n_b))
    diff = p_b - p_a
    low = diff - np.sqrt((p_b - low_b) ** 2 + (high_a - p_a) ** 2)
    high = diff + np.sqrt((high_b - p_b) ** 2 + (p_a - low_a) ** 2)
    return float(max(low, -1.0)), float(min(high, 1.0))


def compare_proportions(name: str, count_a: int, n_a: int, count_b: int, n_b: int) -> dict:
    """One proportion in both runs: values, difference (b - a), its 95% interval, Fisher's
    exact two-sided p-value."""
    if n_a <= 0 or n_b <= 0:
        raise ValueError(f"{name}: no trajectories to compare (n = {n_a} and {n_b})")
    table = [[count_a, n_a - count_a], [count_b, n_b - count_b]]
    p_value = float(fisher_exact(table, alternative="two-sided").pvalue)
    low, high = newcombe_interval(count_a, n_a, count_b, n_b)
    return {
        "quantity": name,
        "kind": "proportion",
        "a": {"count": int(count_a), "n": int(n_a), "value": count_a / n_a},
        "b": {"count": int(count_b), "n": int(n_b), "value": count_b / n_b},
        "difference": count_b / n_b - count_a / n_a,
        "difference_ci95": [low, high],
        "test": "fisher-exact",
        "p_value": min(p_value, 1.0),
    }


def compare_samples(name: str, a: np.ndarray, b: np.ndarray, unit: str) -> dict:
    """One distribution in both runs: sizes, medians, the two-sample Kolmogorov-Smirnov
    statistic and p-value (None with fewer than MIN_SAMPLES values in a run)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    out = {
        "quantity": name,
        "kind": "distribution",
        "unit": unit,
        "a": {"n": int(a.size), "median": float(np.median(a)) if a.size else None},
        "b": {"n": int(b.size), "median": float(np.median(b)) if b.size else None},
        "test": "kolmogorov-smirnov",
        "statistic": None,
        "p_value": None,
    }
    if a.size >= MIN_SAMPLES and b.size >= MIN_SAMPLES:
        result = ks_2samp(a, b)
        out["statistic"], out["p_value"] = float(result.statistic), float(result.pvalue)
    else:
        out["note"] = f"fewer than {MIN_SAMPLES} values in a run: not tested"
    return out


def holm(p_values: list[float]) -> list[float]:
    """Holm's step-down adjusted p-values (family-wise error), in the input's order."""
    p = np.asarray(p_values, dtype=np.float64)
    m = p.size
    order = np.argsort(p)
    adjusted = np.empty(m)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adjusted[i] = running
    return adjusted.tolist()


def _first_ground_hops(analysis: dict, ground: int) -> dict[int, dict]:
    """Each analysed trajectory's first hop into the ground state (trajectory -> event)."""
    first: dict[int, dict] = {}
    for event in analysis.get("hops", {}).get("events", []):
        if event["to"] != ground:
            continue
        if (
            event["trajectory"] not in first
            or event["time_fs"] < first[event["trajectory"]]["time_fs"]
        ):
            first[event["trajectory"]] = event
    return first


def _proportion_rows(a: dict, b: dict, within_fs: float | None) -> list[dict]:
    rows = []
    n_a, n_b = a["counts"]["analysed"], b["counts"]["analysed"]
    for state in sorted(set(a["final_state"]) & set(b["final_state"])):
        rows.append(
            compare_proportions(
                f"final active state {state}",
                a["final_state"][state]["count"],
                n_a,
                b["final_state"][state]["count"],
                n_b,
            )
        )
    prod_a, prod_b = a.get("products") or {}, b.get("products") or {}
    if prod_a.get("counts") and prod_b.get("counts"):
        n_pa = sum(prod_a["counts"].values())
        n_pb = sum(prod_b["counts"].values())
        for product in sorted(set(prod_a["counts"]) & set(prod_b["counts"])):
            if prod_a["counts"][product] == 0 and prod_b["counts"][product] == 0:
                continue
            rows.append(
                compare_proportions(
                    f"product {product}",
                    prod_a["counts"][product],
                    n_pa,
                    prod_b["counts"][product],
                    n_pb,
                )
            )
        qa, qb = prod_a.get("quantum_yield"), prod_b.get("quantum_yield")
        if qa and qb and qa.get("n") and qb.get("n"):
            rows.append(
                compare_proportions("quantum yield", qa["count"], qa["n"], qb["count"], qb["n"])
            )
    total_a, total_b = a["counts"]["total"], b["counts"]["total"]
    rows.append(
        compare_proportions(
            "excluded (flagged)", a["counts"]["excluded"], total_a, b["counts"]["excluded"], total_b
        )
    )
    by_a, by_b = a["counts"].get("by_status", {}), b["counts"].get("by_status", {})
    for status in sorted(set(by_a) | set(by_b)):
        if by_a.get(status, 0) == 0 and by_b.get(status, 0) == 0:
            continue
        rows.append(
            compare_proportions(
                f"status {status}", by_a.get(status, 0), total_a, by_b.get(status, 0), total_b
            )
        )
    if within_fs is not None:
        ground = int(a.get("options", {}).get("ground_state", 0))
        hops_a = _first_ground_hops(a, ground).values()
        hops_b = _first_ground_hops(b, ground).values()
        rows.append(
            compare_proportions(
                f"first reach S{ground} within {within_fs:g} fs",
                sum(e["time_fs"] <= within_fs for e in hops_a),
                n_a,
                sum(e["time_fs"] <= within_fs for e in hops_b),
                n_b,
            )
        )
    return rows


def _hop_values(analysis: dict, ground: int, value: Callable[[dict], float | None]) -> list:
    """``value(event)`` of every hop into the ground state where it is known."""
    events = analysis.get("hops", {}).get("events", [])
    values = (value(e) for e in events if e["to"] == ground)
    return [v for v in values if v is not None]


def _abs_or_none(x: float | None) -> float | None:
    return None if x is None else abs(x)


HOP_QUANTITIES: tuple[tuple[str, str, Callable[[dict], float | None]], ...] = (
    ("|dihedral| at hops", "degrees", lambda e: _abs_or_none(e.get("dihedral_deg"))),
    ("gap at hops", "eV", lambda e: e.get("gap_eV")),
    (
        "smaller central angle sum at hops",
        "degrees",
        lambda e: min(e["pyramidalisation_deg"]) if e.get("pyramidalisation_deg") else None,
    ),
)
"""Hop geometry compared as distributions: name, unit, value of a hop event."""


def _distribution_rows(a: dict, b: dict) -> list[dict]:
    ground = int(a.get("options", {}).get("ground_state", 0))
    rows = [
        compare_samples(
            f"first hop time to S{ground}",
            [e["time_fs"] for e in _first_ground_hops(a, ground).values()],
            [e["time_fs"] for e in _first_ground_hops(b, ground).values()],
            "fs",
        )
    ]
    for name, unit, value in HOP_QUANTITIES:
        va, vb = _hop_values(a, ground, value), _hop_values(b, ground, value)
        if va or vb:
            rows.append(compare_samples(f"{name} to S{ground}", va, vb, unit))
    gaps = []
    for analysis in (a, b):
        trajectories = analysis.get("diagnostics", {}).get("trajectories", [])
        gaps.append(
            [
                t["min_gap_ev"]
                for t in trajectories
                if t.get("analysed") and t.get("min_gap_ev") is not None
            ]
        )
    if gaps[0] or gaps[1]:
        rows.append(compare_samples("smallest gap per trajectory", gaps[0], gaps[1], "eV"))
    return rows


def _population_difference(a: dict, b: dict) -> dict | None:
    """Largest |difference| of the active-state fractions over the common time grid."""
    pa, pb = a.get("populations"), b.get("populations")
    if not pa or not pb:
        return None
    ta, tb = np.asarray(pa["time_fs"]), np.asarray(pb["time_fs"])
    fa, fb = np.asarray(pa["active_fraction"]), np.asarray(pb["active_fraction"])
    end = min(ta[-1], tb[-1])
    grid = ta[ta <= end]
    if grid.size == 0 or fa.shape[1] != fb.shape[1]:
        return None
    diff = np.stack(
        [np.interp(grid, tb, fb[:, s]) - fa[: grid.size, s] for s in range(fa.shape[1])], axis=1
    )
    i, s = np.unravel_index(np.argmax(np.abs(diff)), diff.shape)
    return {
        "state": int(s),
        "time_fs": float(grid[i]),
        "difference": float(diff[i, s]),
        "a": float(fa[i, s]),
        "b": float(np.interp(grid[i], tb, fb[:, s])),
        "common_time_fs": float(end),
    }


def _starts_excited(analysis: dict) -> bool:
    """Most trajectories start above the ground state (photochemistry, not scattering)."""
    populations = analysis.get("populations")
    if not populations or not populations.get("active_fraction"):
        return False
    ground = int(analysis.get("options", {}).get("ground_state", 0))
    return populations["active_fraction"][0][ground] < 0.5


def _merge_duplicates(rows: list[dict]) -> list[dict]:
    """One row per distinct pair of counts: 'product S1' is 'final active state S1', and the
    quantum yield is 'product trans' when every start is cis. Duplicates would only weaken
    Holm's correction; their names go to the kept row's ``same_as``."""
    kept: dict[tuple, dict] = {}
    for row in rows:
        key = (row["a"]["count"], row["a"]["n"], row["b"]["count"], row["b"]["n"])
        if key in kept:
            kept[key].setdefault("same_as", []).append(row["quantity"])
        else:
            kept[key] = row
    return list(kept.values())


def _option_notes(a: dict, b: dict) -> list[str]:
    """Analysis options that differ between the runs (they change what is counted)."""
    oa, ob = a.get("options", {}), b.get("options", {})
    notes = []
    for key in sorted(set(oa) | set(ob)):
        va, vb = oa.get(key), ob.get(key)
        if va != vb and not (va is None and vb is None):
            notes.append(f"analysis option {key!r} differs: {va!r} (a) against {vb!r} (b)")
    return notes


def compare_analyses(
    a: dict, b: dict, *, alpha: float = ALPHA, within_fs: float | None = None
) -> dict:
    """Compare two ``analysis.json`` dicts (see the module docstring); ``within_fs`` adds the
    fraction that first reaches the ground state by then (default: half the shorter run, where
    both runs start above the ground state)."""
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}")
    if within_fs is None and _starts_excited(a) and _starts_excited(b):
        within_fs = 0.5 * min(a["populations"]["time_fs"][-1], b["populations"]["time_fs"][-1])
    rows = _merge_duplicates(_proportion_rows(a, b, within_fs)) + _distribution_rows(a, b)
    tested = [r for r in rows if r["p_value"] is not None]
    for row, adjusted in zip(tested, holm([r["p_value"] for r in tested]), strict=True):
        row["p_holm"] = adjusted
        row["significant"] = adjusted < alpha
    significant = [r["quantity"] for r in tested if r["significant"]]
    return {
        "a": a.get("_path", a.get("run_dir")),
        "b": b.get("_path", b.get("run_dir")),
        "alpha": alpha,
        "n_tests": len(tested),
        "consistent": not significant,
        "significant": significant,
        "smallest_p_holm": min((r["p_holm"] for r in tested), default=None),
        "rows": rows,
        "populations": _population_difference(a, b),
        "notes": _option_notes(a, b),
        "units": {"time": "fs", "angle": "degrees", "energy": "eV"},
    }


def format_report(result: dict) -> str:
    """The comparison as text: one line per quantity, then the verdict."""
    lines = [f"a: {result['a']}", f"b: {result['b']}"]
    for row in result["rows"]:
        if row["kind"] == "proportion":
            a, b, (low, high) = row["a"], row["b"], row["difference_ci95"]
            text = (
                f"{row['quantity']}: {a['value']:.3f} ({a['count']}/{a['n']}) vs "
                f"{b['value']:.3f} ({b['count']}/{b['n']}), b-a {row['difference']:+.3f} "
                f"[{low:+.3f}, {high:+.3f}]"
            )
        else:
            a, b = row["a"], row["b"]
            med = lambda m: "-" if m is None else f"{m:.3g}"  # noqa: E731
            text = (
                f"{row['quantity']} ({row['unit']}): median {med(a['median'])} (n {a['n']}) "
                f"vs {med(b['median'])} (n {b['n']})"
            )
        if row.get("same_as"):
            text += f" (= {', '.join(row['same_as'])})"
        if row["p_value"] is None:
            text += ", not tested"
        else:
            text += f", p {row['p_value']:.3g} (Holm {row['p_holm']:.3g})"
            text += " DIFFERS" if row["significant"] else ""
        lines.append(text)
    pop = result["populations"]
    if pop:
        lines.append(
            f"active S{pop['state']} fraction: largest difference b-a "
            f"{pop['difference']:+.3f} at {pop['time_fs']:g} fs ({pop['a']:.3f} vs "
            f"{pop['b']:.3f}; common time {pop['common_time_fs']:g} fs)"
        )
    lines.extend(f"note: {n}" for n in result["notes"])
    if result["consistent"]:
        lines.append(
            f"consistent: no difference significant at family-wise {result['alpha']:g} "
            f"over {result['n_tests']} tests (smallest Holm p "
            f"{result['smallest_p_holm']:.3g})"
        )
    else:
        lines.append(
            f"NOT consistent at family-wise {result['alpha']:g}: "
            + ", ".join(result["significant"])
        )
    return "\n".join(lines)
