"""Check a surface-hopping run on the potential against the reference, frame by frame.

Takes evenly spaced frames of every trajectory of a ``fusionff run`` output directory (after
the first), recomputes S0 and S1 there with MOPAC at R1 and compares them with the energies
the potential gave during the run (stored in the H5MD files). It answers: does the run go
where the reference would let it (energies, S1-S0 gap), and where is the potential wrong?

    python data/stilbene/check_run.py runs/stilbene_small_cpu [--frames 5] [--workers 2]

Writes ``<run>/reference_check.json`` (one row per frame: trajectory, time fs, central
dihedral and angle sums at C1/C2 in degrees, potential and reference energies in eV) and
prints every frame and the summary: mean absolute and mean signed error of S0, S1 and the
gap (the potential is trained on the reference's energies, zero included) and the smallest
gap of each. Units: eV, fs, degrees.
"""

from __future__ import annotations

import argparse
import json
import sys
from multiprocessing import Pool
from pathlib import Path

import h5py
import numpy as np

_backend = None


def _init() -> None:
    global _backend
    from fusionff.labeling.mopac import MopacBackend

    _backend = MopacBackend()


def _label(task):
    numbers, positions = task
    result = _backend.compute(numbers, positions, 2)
    return result.energies


def frames(run: Path, per_trajectory: int) -> list[dict]:
    """Evenly spaced frames (not the first) of every trajectory file in ``run``."""
    from fusionff.data import stilbene as st

    rows = []
    for path in sorted(run.glob("traj_*.h5md")):
        with h5py.File(path, "r") as f:
            positions = f["particles/molecule/position/value"][:]
            numbers = f["particles/molecule/species"][:]
            times = f["particles/molecule/position/time"][:]
            energies = f["observables/energies/value"][:]
            state = f["observables/active_state/value"][:]
        picks = np.linspace(0, len(positions) - 1, per_trajectory + 1).astype(int)[1:]
        for k in picks:
            x = positions[k]
            rows.append(
                {
                    "trajectory": path.stem,
                    "time_fs": float(times[k]),
                    "active_state": int(state[k]),
                    "dihedral_deg": float(abs(st.dihedral(x))),
                    "angle_sum_c1_deg": float(st.pyramidalisation(x, st.C1)),
                    "angle_sum_c2_deg": float(st.pyramidalisation(x, st.C2)),
                    "potential_eV": energies[k].tolist(),
                    "numbers": numbers,
                    "positions": x,
                }
            )
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run", type=Path, help="output directory of `fusionff run`")
    p.add_argument("--frames", type=int, default=5, help="frames per trajectory (default 5)")
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args(argv)
    rows = frames(args.run, args.frames)
    if not rows:
        raise FileNotFoundError(f"{args.run}: no traj_*.h5md files")
    with Pool(args.workers, initializer=_init) as pool:
        reference = pool.map(_label, [(r["numbers"], r["positions"]) for r in rows])
    for row, ref in zip(rows, reference, strict=True):
        row["reference_eV"] = [float(e) for e in ref]
        del row["numbers"], row["positions"]
    model = np.array([r["potential_eV"] for r in rows])
    ref = np.array([r["reference_eV"] for r in rows])
    ok = np.isfinite(ref).all(axis=1)
    err = model[ok] - ref[ok]
    gap_m, gap_r = model[ok, 1] - model[ok, 0], ref[ok, 1] - ref[ok, 0]
    summary = {
        "n_frames": int(ok.sum()),
        "n_failed": int((~ok).sum()),
        "state_mae_eV": np.abs(err).mean(axis=0).tolist(),
        "state_mean_error_eV": err.mean(axis=0).tolist(),
        "gap_mae_eV": float(np.abs(gap_m - gap_r).mean()),
        "gap_mean_error_eV": float((gap_m - gap_r).mean()),
        "min_gap_potential_eV": float(gap_m.min()),
        "min_gap_reference_eV": float(gap_r.min()),
        "min_angle_sum_deg": float(
            min(min(r["angle_sum_c1_deg"], r["angle_sum_c2_deg"]) for r in rows)
        ),
        "reference": "MOPAC R1 (data/stilbene/README.md)",
    }
    print(f"{'trajectory':>12} {'t/fs':>6} {'dih':>5} {'sumC1':>6} {'sumC2':>6}  gap pot / ref")
    for r in rows:
        g = r["potential_eV"][1] - r["potential_eV"][0]
        gr = r["reference_eV"][1] - r["reference_eV"][0]
        print(
            f"{r['trajectory']:>12} {r['time_fs']:6.0f} {r['dihedral_deg']:5.0f} "
            f"{r['angle_sum_c1_deg']:6.0f} {r['angle_sum_c2_deg']:6.0f}  {g:5.2f} / {gr:5.2f}"
        )
    print(json.dumps(summary, indent=1))
    out = args.run / "reference_check.json"
    out.write_text(json.dumps({"summary": summary, "frames": rows}, indent=1) + "\n")
    print(f"written {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
