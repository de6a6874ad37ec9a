"""Are the reference surfaces continuous along a run? Steps in E that no force explains.

In a run on the reference itself (``potential: {mopac: ...}``) the total energy should change
only by the integrator's error. This script finds the frame intervals of a run where it
jumps (|change| above ``--threshold`` eV), recomputes S0 and S1 with MOPAC at ``--points``
geometries on the straight line between the two frames, and compares each energy change with
the one the forces predict (trapezoidal rule: -(F_a + F_b)/2 . dx). A jump with forces that
predict none is a discontinuity of the surface (the SCF or the active orbitals changed), not
an integration error. ``--keywords`` repeats the scan with another MOPAC method on the same
intervals, for comparison.

    python data/stilbene/check_continuity.py runs/stilbene_cis_reference [--threshold 0.05]
        [--points 6] [--max-events 12] [--keywords "AM1 C.I.=2 SINGLET 1SCF GRAD"]

Prints one line per interval and writes ``<run>/continuity.json``. Units: eV, Angstrom, fs.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import h5py
import numpy as np

from fusionff.labeling.mopac import R1_KEYWORDS, MopacBackend


def events(run: Path, threshold: float) -> tuple[list[dict], float]:
    """Intervals between stored frames where the total energy changes by more than
    ``threshold``; also the total time covered by all trajectories (fs)."""
    found, covered = [], 0.0
    for path in sorted(run.glob("traj_*.h5md")):
        with h5py.File(path, "r") as f:
            total = f["observables/total_energy/value"][:]
            time = f["particles/molecule/position/time"][:]
        covered += float(time[-1] - time[0]) if len(time) else 0.0
        for k in np.flatnonzero(np.abs(np.diff(total)) > threshold):
            found.append(
                {
                    "file": path.name,
                    "frame": int(k),
                    "time_fs": float(time[k]),
                    "total_energy_change_ev": float(total[k + 1] - total[k]),
                }
            )
    return found, covered


def scan(backend: MopacBackend, numbers, a: np.ndarray, b: np.ndarray, points: int) -> dict:
    """Largest |dE - predicted dE| per state over ``points`` geometries from a to b."""
    worst, where, previous = np.zeros(2), np.zeros(2), None
    for t in np.linspace(0.0, 1.0, points):
        x = (1 - t) * a + t * b
        result = backend.compute(numbers, x, 2)
        if not result.success.all():
            return {"error": result.error}
        if previous is not None:
            x0, e0, f0 = previous
            predicted = -0.5 * np.einsum("nsk,nk->s", result.forces + f0, x - x0)
            miss = np.abs(result.energies - e0 - predicted)
            where = np.where(miss > worst, t, where)
            worst = np.maximum(worst, miss)
        previous = (x, result.energies, result.forces)
    return {"max_unexplained_ev": worst.tolist(), "at_fraction": where.tolist()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--threshold", type=float, default=0.05, help="eV between stored frames")
    ap.add_argument("--points", type=int, default=6, help="geometries per interval")
    ap.add_argument("--max-events", type=int, default=12)
    ap.add_argument("--keywords", default=None, help="a second MOPAC method to compare")
    args = ap.parse_args(argv)
    found, covered = events(args.run, args.threshold)
    print(
        f"{len(found)} intervals with |total energy change| > {args.threshold} eV in "
        f"{covered:.0f} fs of trajectories ({args.run})"
    )
    methods = {"R1": MopacBackend()}
    if args.keywords:
        methods["other"] = MopacBackend(args.keywords)
    for event in found[: args.max_events]:
        with h5py.File(args.run / event["file"], "r") as f:
            x = f["particles/molecule/position/value"][event["frame"] : event["frame"] + 2]
            numbers = f["particles/molecule/species"][:]
        line = (
            f"{event['file']} {event['time_fs']:6.1f} fs  dE_total "
            f"{event['total_energy_change_ev']:+.3f} eV; unexplained |dE| S0/S1:"
        )
        for name, backend in methods.items():
            event[name] = scan(backend, numbers, x[0], x[1], args.points)
            miss = event[name].get("max_unexplained_ev")
            text = "failed" if miss is None else f"{miss[0]:.3f}/{miss[1]:.3f}"
            line += f"  {name} {text}"
        print(line)
    out = args.run / "continuity.json"
    out.write_text(
        json.dumps(
            {
                "threshold_ev": args.threshold,
                "points": args.points,
                "fs_covered": covered,
                "n_events": len(found),
                "keywords": {"R1": R1_KEYWORDS, "other": args.keywords},
                "events": found,
            },
            indent=1,
        )
        + "\n"
    )
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
