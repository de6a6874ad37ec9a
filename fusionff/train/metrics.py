"""Error metrics of multi-state predictions: pure functions on arrays, and a text table.

Per state: energy MAE/RMSE per structure and per atom (meV), force MAE/RMSE per Cartesian
component (meV/Angstrom); per excited state s >= 1 the gap E_s - E_0 MAE/RMSE (meV); and the
same for the "near-intersection" structures (reference E_1 - E_0 below a threshold, 0.5 eV by
default) when there are any, and, when asked, the same for bins of the reference gap
(``gap_edges``: which gaps carry the error, e.g. the seam against a hot ground state). Only
labelled entries count; a metric without entries is None.

Couplings, when given: per pair i < j the phase-free MAE and RMSE (1/Angstrom) over the Cartesian
components of every atom of the structures with labelled couplings, each structure's error
taken against the nearer of +d_ij^ref and -d_ij^ref (the reference's sign is arbitrary), and
``ref_mae``, the mean |d_ij^ref| component (the MAE of predicting zero), for scale.
"""

from __future__ import annotations

from typing import Any

import numpy as np

MEV = 1000.0  # meV per eV
NEAR_INTERSECTION_GAP = 0.5  # eV


def _mae_rmse(errors: np.ndarray) -> tuple[float | None, float | None]:
    if errors.size == 0:
        return None, None
    return float(np.mean(np.abs(errors))), float(np.sqrt(np.mean(errors**2)))


def compute_metrics(
    pred_energies: np.ndarray,
    ref_energies: np.ndarray,
    energy_mask: np.ndarray,
    n_atoms: np.ndarray,
    pred_forces: np.ndarray,
    ref_forces: np.ndarray,
    force_mask: np.ndarray,
    near_gap: float | None = NEAR_INTERSECTION_GAP,
    pred_nacs: np.ndarray | None = None,
    ref_nacs: np.ndarray | None = None,
    nac_mask: np.ndarray | None = None,
    gap_edges: list[float] | None = None,
) -> dict[str, Any]:
    """Metrics of B structures (n atoms in all) and S states.

    Args:
        pred_energies, ref_energies: (B, S) eV.
        energy_mask: (B, S) bool, True where the reference energy is labelled.
        n_atoms: (B,) atoms per structure (the atoms of the force arrays, in order).
        pred_forces, ref_forces: (n, S, 3) eV/Angstrom.
        force_mask: (B, S) bool, True where the structure's reference forces are labelled.
        near_gap: threshold (eV) of the near-intersection subset; None to leave it out.
        pred_nacs, ref_nacs: (n, S, S, 3) 1/Angstrom couplings, or None.
        nac_mask: (B,) bool, True where the reference couplings are labelled.
        gap_edges: increasing reference gaps E1 - E0 (eV) that split the structures with both
            energies labelled into bins [-inf, e1), [e1, e2), ..., [ek, inf); None for none.

    Returns:
        ``{"n_structures", "states": [per state], "gaps": [per s >= 1],
        "couplings": [per pair i < j] (with couplings), "near_intersection": {...} (when
        S >= 2 and a structure qualifies), "by_gap": [{"gap_from_eV", "gap_to_eV", ...} per
        bin, None for an open end] (with gap_edges; an empty bin has n_structures 0 and no other
        keys)}``; energies in meV, forces in meV/Angstrom, couplings in 1/Angstrom.
    """
    energy_mask = np.asarray(energy_mask, dtype=bool)
    force_mask = np.asarray(force_mask, dtype=bool)
    n_atoms = np.asarray(n_atoms)
    n_structures, n_states = energy_mask.shape
    atom_mask = np.repeat(force_mask, n_atoms, axis=0)  # (n, S)
    e_err = (np.asarray(pred_energies) - np.asarray(ref_energies)) * MEV
    f_err = (np.asarray(pred_forces) - np.asarray(ref_forces)) * MEV
    states = []
    for s in range(n_states):
        rows = energy_mask[:, s]
        e_mae, e_rmse = _mae_rmse(e_err[rows, s])
        a_mae, a_rmse = _mae_rmse(e_err[rows, s] / n_atoms[rows])
        f_mae, f_rmse = _mae_rmse(f_err[atom_mask[:, s], s].ravel())
        states.append(
            {
                "state": s,
                "n_energies": int(rows.sum()),
                "energy_mae": e_mae,
                "energy_rmse": e_rmse,
                "energy_mae_per_atom": a_mae,
                "energy_rmse_per_atom": a_rmse,
                "n_forces": int(force_mask[:, s].sum()),
                "force_mae": f_mae,
                "force_rmse": f_rmse,
            }
        )
    gaps = []
    for s in range(1, n_states):
        rows = energy_mask[:, s] & energy_mask[:, 0]
        mae, rmse = _mae_rmse(e_err[rows, s] - e_err[rows, 0])
        gaps.append({"state": s, "n": int(rows.sum()), "mae": mae, "rmse": rmse})
    out: dict[str, Any] = {"n_structures": int(n_structures), "states": states, "gaps": gaps}
    with_nacs = pred_nacs is not None and ref_nacs is not None and nac_mask is not None
    if with_nacs:
        out["couplings"] = coupling_metrics(pred_nacs, ref_nacs, nac_mask, n_atoms)
    edges = None if gap_edges is None else check_gap_edges(gap_edges, n_states)
    if n_states < 2 or (near_gap is None and edges is None):
        return out
    ref = np.asarray(ref_energies)
    gap = ref[:, 1] - ref[:, 0]
    both = energy_mask[:, 0] & energy_mask[:, 1]

    def subset(rows: np.ndarray) -> dict[str, Any]:
        """These metrics of the structures ``rows`` (B,) bool alone, without subsets."""
        atoms = np.repeat(rows, n_atoms)
        return compute_metrics(
            np.asarray(pred_energies)[rows],
            ref[rows],
            energy_mask[rows],
            n_atoms[rows],
            np.asarray(pred_forces)[atoms],
            np.asarray(ref_forces)[atoms],
            force_mask[rows],
            near_gap=None,
            pred_nacs=np.asarray(pred_nacs)[atoms] if with_nacs else None,
            ref_nacs=np.asarray(ref_nacs)[atoms] if with_nacs else None,
            nac_mask=np.asarray(nac_mask)[rows] if with_nacs else None,
        )

    if near_gap is not None and (both & (gap < near_gap)).any():
        out["near_intersection"] = {"gap_below_eV": near_gap, **subset(both & (gap < near_gap))}
    if edges is not None:
        out["by_gap"] = []
        for lo, hi in zip([None, *edges], [*edges, None], strict=True):
            rows = both & (gap >= (-np.inf if lo is None else lo))
            rows &= gap < (np.inf if hi is None else hi)
            sub = subset(rows) if rows.any() else {"n_structures": 0}
            out["by_gap"].append({"gap_from_eV": lo, "gap_to_eV": hi, **sub})
    return out


def check_gap_edges(gap_edges, n_states: int = 2) -> list[float]:
    """``gap_edges`` as floats (eV); ValueError unless they are increasing and there are two or
    more states (bins of E1 - E0 need S1)."""
    edges = [float(e) for e in gap_edges]
    if n_states < 2 or not edges or any(b <= a for a, b in zip(edges, edges[1:], strict=False)):
        raise ValueError(
            f"gap_edges must be increasing gaps (eV) of a model with two or more states, "
            f"got {list(gap_edges)} with {n_states} state(s)"
        )
    return edges


def coupling_metrics(
    pred_nacs: np.ndarray, ref_nacs: np.ndarray, nac_mask: np.ndarray, n_atoms: np.ndarray
) -> list[dict[str, Any]]:
    """Phase-free coupling errors per pair i < j (module docstring), 1/Angstrom.

    Args:
        pred_nacs, ref_nacs: (n, S, S, 3) 1/Angstrom.
        nac_mask: (B,) bool, True where the reference is labelled.
        n_atoms: (B,) atoms per structure.
    """
    nac_mask = np.asarray(nac_mask, dtype=bool)
    n_atoms = np.asarray(n_atoms)
    owner = np.repeat(np.arange(n_atoms.size), n_atoms)[np.repeat(nac_mask, n_atoms)]
    n_states = np.asarray(ref_nacs).shape[1]
    labelled = np.repeat(nac_mask, n_atoms)
    out = []
    for i, j in zip(*np.triu_indices(n_states, k=1), strict=True):
        entry: dict[str, Any] = {"pair": [int(i), int(j)], "n": int(nac_mask.sum())}
        entry["mae"] = entry["rmse"] = entry["ref_mae"] = None
        if nac_mask.any():
            pred = np.asarray(pred_nacs)[labelled, i, j]  # (n_labelled, 3)
            ref = np.asarray(ref_nacs)[labelled, i, j]
            for key, err in (("mae", np.abs), ("rmse", np.square)):
                per_sign = [
                    np.bincount(owner, err(pred - s * ref).sum(-1), n_atoms.size) for s in (1, -1)
                ]
                mean = np.minimum(*per_sign).sum() / ref.size
                entry[key] = float(mean if key == "mae" else np.sqrt(mean))
            entry["ref_mae"] = float(np.abs(ref).mean())
        out.append(entry)
    return out


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def format_metrics(metrics: dict[str, Any], title: str = "") -> str:
    """A text table of :func:`compute_metrics`' result (meV, meV/Angstrom)."""
    lines = [
        f"{title} ({metrics['n_structures']} structures)"
        if title
        else f"{metrics['n_structures']} structures"
    ]
    lines.extend(_table(metrics))
    near = metrics.get("near_intersection")
    if near is not None:
        lines.append(
            f"near intersection: E1 - E0 < {near['gap_below_eV']} eV "
            f"({near['n_structures']} structures)"
        )
        lines.extend(_table(near))
    if metrics.get("by_gap"):
        lines.append("by reference gap E1 - E0 (eV):")
        for b in metrics["by_gap"]:
            lo = "" if b["gap_from_eV"] is None else f"{b['gap_from_eV']:g} <= "
            hi = "" if b["gap_to_eV"] is None else f" < {b['gap_to_eV']:g}"
            line = summary_line(b) if b["n_structures"] else "-"
            lines.append(f"  {lo}gap{hi}: {b['n_structures']} structures; {line}")
    return "\n".join(lines)


def summary_line(metrics: dict[str, Any]) -> str:
    """One line of :func:`compute_metrics`' result: energy and force MAE per state, gap MAE."""

    def fmt(value) -> str:
        return "-" if value is None else f"{value:.0f}"

    energy = "/".join(fmt(s["energy_mae"]) for s in metrics["states"])
    force = "/".join(fmt(s["force_mae"]) for s in metrics["states"])
    gaps = "/".join(fmt(g["mae"]) for g in metrics["gaps"])
    return f"energy MAE {energy} meV, force MAE {force} meV/A, gap MAE {gaps} meV"


def _table(metrics: dict[str, Any]) -> list[str]:
    head = (
        f"{'state':<7}{'n_E':>5}{'E MAE':>10}{'E RMSE':>10}{'E/at MAE':>10}{'E/at RMSE':>10}"
        f"{'n_F':>6}{'F MAE':>10}{'F RMSE':>10}"
    )
    units = (
        f"{'':<12}" + "".join(f"{u:>10}" for u in ("meV",) * 4) + f"{'':>6}" + f"{'meV/A':>10}" * 2
    )
    rows = [head, units]
    for m in metrics["states"]:
        rows.append(
            f"{'S' + str(m['state']):<7}{m['n_energies']:>5}{_fmt(m['energy_mae']):>10}"
            f"{_fmt(m['energy_rmse']):>10}{_fmt(m['energy_mae_per_atom']):>10}"
            f"{_fmt(m['energy_rmse_per_atom']):>10}{m['n_forces']:>6}{_fmt(m['force_mae']):>10}"
            f"{_fmt(m['force_rmse']):>10}"
        )
    for g in metrics["gaps"]:
        rows.append(
            f"{'S' + str(g['state']) + '-S0':<7}{g['n']:>5}{_fmt(g['mae']):>10}"
            f"{_fmt(g['rmse']):>10}   (gap)"
        )
    for c in metrics.get("couplings", []):
        f = lambda v: "-" if v is None else f"{v:.4f}"  # noqa: E731
        rows.append(
            f"{'d' + ''.join(map(str, c['pair'])):<7}{c['n']:>5}{f(c['mae']):>10}"
            f"{f(c['rmse']):>10}   (coupling, 1/A, phase-free; |d_ref| mean {f(c['ref_mae'])})"
        )
    return rows
