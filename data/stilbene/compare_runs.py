"""Compare two runs of the same ensemble on two potentials, trajectory by trajectory.

Meant for a run on the potential and a run on the reference (MOPAC at R1) that start from the
same points (``initial_conditions.file`` = the first run's directory, e.g.
``md/stilbene_cis_reference.yaml``). For every trajectory the two runs share, it checks that
they start at the same positions and reports, over the time both cover: when the central C=C
dihedral first passes 70 and 90 degrees (cis start: |dihedral| from about 0), the dihedral
and active state at the common end, the smallest S1-S0 gap, hops, the largest total-energy
drift and the status. Then the ensemble: mean |dihedral| and mean gap every 50 fs in both
runs. With ``--potential MODEL.fff`` it also evaluates that potential at every frame of the
second run (a reference run stores the reference's energies) and reports its errors there:
how well the potential knows the places the reference dynamics go.

    python data/stilbene/compare_runs.py runs/stilbene_small_cpu runs/stilbene_cis_reference
        [--potential potentials/stilbene-r1.fff] [--out FILE.json] [--plot FILE.png]

Writes the numbers as JSON (default ``<second run>/comparison.json``) and, with matplotlib,
a plot of |dihedral| and gap against time (default ``<second run>/comparison.png``). Units:
fs, degrees, eV.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import h5py
import numpy as np

from fusionff.analysis.dihedral import dihedral_degrees, read_topology, topology_dihedral


def read_trajectory(path: Path, dihedral: tuple[int, ...]) -> dict:
    """Time, |dihedral|, gap, active state, total energy and the first positions of a file."""
    with h5py.File(path, "r") as f:
        positions = f["particles/molecule/position/value"][:]
        first = positions[0]
        angle = dihedral_degrees(positions[:, list(dihedral)])
        energies = f["observables/energies/value"][:]
        return {
            "time": f["particles/molecule/position/time"][:],
            "dihedral": np.abs(angle),
            "gap": energies[:, 1] - energies[:, 0],
            "state": f["observables/active_state/value"][:],
            "total": f["observables/total_energy/value"][:],
            "hops": int(np.sum(f["parameters/hops/frustrated"][:] == 0)),
            "status": f["parameters"].attrs.get("status", "running"),
            "first": first,
        }


def _first_time(time: np.ndarray, values: np.ndarray, threshold: float) -> float | None:
    above = np.flatnonzero(values >= threshold)
    return float(time[above[0]]) if len(above) else None


def _status(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def summarise(t: dict, end: float) -> dict:
    """One trajectory up to ``end`` fs."""
    keep = t["time"] <= end + 1e-6
    time, angle = t["time"][keep], t["dihedral"][keep]
    last = np.flatnonzero(keep)[-1]
    return {
        "twist_70_fs": _first_time(time, angle, 70.0),
        "twist_90_fs": _first_time(time, angle, 90.0),
        "dihedral_at_end_deg": float(angle[-1]),
        "state_at_end": int(t["state"][last]),
        "min_gap_ev": float(np.nanmin(t["gap"][keep])),
        "max_drift_ev": float(np.nanmax(np.abs(t["total"][keep] - t["total"][0]))),
        "hops_total": t["hops"],
        "status": _status(t["status"]),
        "time_covered_fs": float(t["time"][-1]),
    }


def potential_errors(model: Path, run: Path) -> dict:
    """Energies of ``model`` at every stored frame of ``run`` against the run's own energies:
    MAE of S0, S1 and the gap (eV), over all frames and per trajectory (gap)."""
    from fusionff.potential import Potential

    potential = Potential(model, "cpu")
    diffs, per_trajectory = [], {}
    for path in sorted(run.glob("traj_*.h5md")):
        with h5py.File(path, "r") as f:
            x = f["particles/molecule/position/value"][:]
            numbers = f["particles/molecule/species"][:]
            reference = f["observables/energies/value"][:]
        predicted = np.concatenate(
            [
                potential.evaluate(numbers, x[k : k + 64])["energies"].double().numpy()
                for k in range(0, len(x), 64)
            ]
        )
        d = predicted - reference
        diffs.append(d)
        per_trajectory[path.name] = float(np.mean(np.abs(d[:, 1] - d[:, 0])))
    d = np.concatenate(diffs)
    result = {
        "model": str(model),
        "frames": len(d),
        "mae_s0_ev": float(np.mean(np.abs(d[:, 0]))),
        "mae_s1_ev": float(np.mean(np.abs(d[:, 1]))),
        "mae_gap_ev": float(np.mean(np.abs(d[:, 1] - d[:, 0]))),
        "mean_signed_gap_ev": float(np.mean(d[:, 1] - d[:, 0])),
        "gap_mae_per_trajectory_ev": per_trajectory,
    }
    print(
        f"\n{model.name} at the {len(d)} frames of {run}: MAE S0 {result['mae_s0_ev']:.3f}, "
        f"S1 {result['mae_s1_ev']:.3f}, gap {result['mae_gap_ev']:.3f} eV (mean signed gap "
        f"error {result['mean_signed_gap_ev']:+.3f}); gap MAE per trajectory: "
        + ", ".join(f"{v:.2f}" for v in per_trajectory.values())
    )
    return result


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("first", type=Path, help="run directory (e.g. on the potential)")
    ap.add_argument("second", type=Path, help="run directory from the same starts (reference)")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--plot", type=Path, default=None)
    ap.add_argument("--potential", type=Path, default=None, help="evaluate at the 2nd run's frames")
    args = ap.parse_args(argv)
    dihedral = topology_dihedral(read_topology(args.first / "topology.pdb"))
    names = sorted(p.name for p in args.second.glob("traj_*.h5md"))
    names = [n for n in names if (args.first / n).exists()]
    if not names:
        print(f"no trajectory files common to {args.first} and {args.second}", file=sys.stderr)
        return 1
    rows, pairs = [], []
    for name in names:
        a = read_trajectory(args.first / name, dihedral)
        b = read_trajectory(args.second / name, dihedral)
        if not np.array_equal(a["first"], b["first"]):
            print(f"{name}: the two runs start at different positions", file=sys.stderr)
            return 1
        end = float(min(a["time"][-1], b["time"][-1]))
        rows.append(
            {"file": name, "until_fs": end, "first": summarise(a, end), "second": summarise(b, end)}
        )
        pairs.append((a, b))
    header = (
        f"{'trajectory':18s}{'until fs':>9s}  {'twist>70 fs':>13s}  {'twist>90 fs':>13s}"
        f"  {'|dih| end':>11s}  {'state':>5s}  {'min gap eV':>11s}  {'drift eV':>11s}"
    )
    print(f"first = {args.first}, second = {args.second}; 'a / b' = first / second")
    print(header)

    def pair(r: dict, key: str, fmt: str) -> str:
        values = [r[side][key] for side in ("first", "second")]
        return " / ".join("-" if v is None else format(v, fmt) for v in values)

    for r in rows:
        print(
            f"{r['file']:18s}{r['until_fs']:9.0f}  {pair(r, 'twist_70_fs', '.0f'):>13s}  "
            f"{pair(r, 'twist_90_fs', '.0f'):>13s}  {pair(r, 'dihedral_at_end_deg', '.0f'):>11s}"
            f"  {pair(r, 'state_at_end', 'd'):>5s}  {pair(r, 'min_gap_ev', '.2f'):>11s}  "
            f"{pair(r, 'max_drift_ev', '.3f'):>11s}"
        )
    end = min(r["until_fs"] for r in rows)
    grid = np.arange(0.0, end + 1e-6, 50.0)
    ensemble = {"time_fs": grid.tolist()}
    for side, k in (("first", 0), ("second", 1)):
        for key in ("dihedral", "gap"):
            series = [np.interp(grid, p[k]["time"], p[k][key]) for p in pairs]
            ensemble[f"{side}_mean_{key}"] = np.mean(series, axis=0).tolist()
    print("\nensemble means every 50 fs (|dihedral| deg, gap eV), first / second:")
    for i, t in enumerate(grid):
        print(
            f"  {t:6.0f} fs  {ensemble['first_mean_dihedral'][i]:6.1f} / "
            f"{ensemble['second_mean_dihedral'][i]:6.1f}   {ensemble['first_mean_gap'][i]:5.2f}"
            f" / {ensemble['second_mean_gap'][i]:5.2f}"
        )
    errors = None if args.potential is None else potential_errors(args.potential, args.second)
    out = args.out or args.second / "comparison.json"
    result = {
        "first": str(args.first),
        "second": str(args.second),
        "dihedral_atoms": list(dihedral),
        "trajectories": rows,
        "ensemble": ensemble,
        "potential_at_second_run": errors,
    }
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {out}")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return 0
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 6), sharex=True)
    for i, (a, b) in enumerate(pairs):
        colour = f"C{i % 10}"
        top.plot(a["time"], a["dihedral"], color=colour, lw=1)
        top.plot(b["time"], b["dihedral"], color=colour, lw=1, ls="--")
        bottom.plot(a["time"], a["gap"], color=colour, lw=1)
        bottom.plot(b["time"], b["gap"], color=colour, lw=1, ls="--")
    top.set_ylabel("|central dihedral| (deg)")
    bottom.set_ylabel("S1 - S0 gap (eV)")
    bottom.set_xlabel("time (fs)")
    top.set_title(f"solid: {args.first.name}, dashed: {args.second.name}")
    plot = args.plot or args.second / "comparison.png"
    fig.tight_layout()
    fig.savefig(plot, dpi=120)
    print(f"wrote {plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
