"""A labelling queue where model trajectories pass R3's crossing region: is the S1 trapping real?

    HDF5_USE_FILE_LOCKING=FALSE python data/stilbene/r3/crossing_region_frames.py OUT.xyz \
        RUN_DIR [RUN_DIR ...] [--dihedral 95 135] [--max-angle-sum 320] [--per-trajectory 1]

Why: on the snapshot-6 committee (``preview-snapshot-6*/``) cis trajectories twist within
about 50 fs and then stay on S1 for 600 fs, although 25 of 32 pass through R3's crossing region
in twist and pyramidalisation (R3's relaxed crossing, ``../r2/crossing-6-31g.xyz``: central
dihedral 113 degrees, C1 angle sum 306 degrees) with model gaps of 0.4 eV and more.
Active-learning frames are chosen by committee spread, not there. If R3's own gap at those
frames is much smaller than the models', the trapping is the models' and these labels are what
they lack; if not, R3 dynamics too would need the rarer paths to the seam.

For each trajectory of the runs: the frames whose |central dihedral| (atoms 2-0-13-15) lies in
``--dihedral`` (degrees) and whose more pyramidal central carbon (C0 with 1, 2, 13; C13 with
0, 14, 15) has an angle sum below ``--max-angle-sum`` (degrees; 360 planar), and of them the
``--per-trajectory`` frames of smallest model S1-S0 gap at least 10 fs apart. Trajectories
that left the domain are included (their frames before leaving are ordinary dynamics). Each
frame's info records run, trajectory, frame, time (fs), the model gap (eV), dihedral and angle
sum. Units: Angstrom, fs, eV, degrees.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import h5py
import numpy as np
from ase import Atoms
from ase.io import write

from fusionff.analysis.dihedral import angle_sum, dihedral_degrees
from fusionff.analysis.run import read_positions

DIHEDRAL = [2, 0, 13, 15]
CENTRES = ((0, (1, 2, 13)), (13, (0, 14, 15)))


def trajectory_frames(
    path: Path, dihedral: tuple[float, float], max_angle_sum: float, per_trajectory: int
) -> list[dict]:
    """The chosen frames of one H5MD trajectory (module docstring), smallest model gap first."""
    with h5py.File(path, "r") as f:
        energies = f["observables/energies/value"][()]
        numbers = f["particles/molecule/species"][()].astype(np.int64)
    time, positions = read_positions(path, list(range(len(numbers))))  # fs, Angstrom
    n = min(len(positions), len(energies))
    positions, time, gap = positions[:n], time[:n], energies[:n, 1] - energies[:n, 0]
    twist = np.abs(dihedral_degrees(positions[:, DIHEDRAL]))
    sums = np.min([angle_sum(positions, c, nb) for c, nb in CENTRES], axis=0)
    inside = (twist >= dihedral[0]) & (twist <= dihedral[1]) & (sums < max_angle_sum)
    chosen: list[int] = []
    for k in np.flatnonzero(inside)[np.argsort(gap[inside], kind="stable")]:
        if len(chosen) == per_trajectory:
            break
        if all(abs(time[k] - time[j]) >= 10.0 for j in chosen):
            chosen.append(int(k))
    return [
        {
            "numbers": numbers,
            "positions": positions[k],
            "info": {
                "trajectory": path.stem,
                "frame": k,
                "time_fs": float(time[k]),
                "model_gap_ev": float(gap[k]),
                "dihedral_deg": float(twist[k]),
                "angle_sum_deg": float(sums[k]),
            },
        }
        for k in chosen
    ]


def frames(
    run_dirs: list[str], dihedral: tuple[float, float], max_angle_sum: float, per_trajectory: int
) -> list[Atoms]:
    """The queue: chosen frames of every trajectory of ``run_dirs``, in run and file order."""
    out = []
    for run in run_dirs:
        files = sorted(Path(run).glob("traj_*.h5md"))
        if not files:
            raise FileNotFoundError(f"{run}: no traj_*.h5md files")
        for path in files:
            for item in trajectory_frames(path, dihedral, max_angle_sum, per_trajectory):
                atoms = Atoms(numbers=item["numbers"], positions=item["positions"])
                atoms.info.update({"run": run, **item["info"]})
                out.append(atoms)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("output")
    parser.add_argument("run_dirs", nargs="+")
    parser.add_argument("--dihedral", type=float, nargs=2, default=(95.0, 135.0))
    parser.add_argument("--max-angle-sum", type=float, default=320.0)
    parser.add_argument("--per-trajectory", type=int, default=1)
    args = parser.parse_args(argv)
    queue = frames(args.run_dirs, tuple(args.dihedral), args.max_angle_sum, args.per_trajectory)
    write(args.output, queue, format="extxyz")
    gaps = np.array([a.info["model_gap_ev"] for a in queue])
    print(
        f"{args.output}: {len(queue)} frames; model gaps {gaps.min():.2f}-{gaps.max():.2f} eV "
        f"(median {np.median(gaps):.2f})"
        if len(queue)
        else f"{args.output}: no frame in the region",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
