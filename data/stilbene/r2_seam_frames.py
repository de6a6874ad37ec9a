"""Frames of a finished stilbene run that lie near the R2 reference crossing, as a labelling
queue: active learning by geometry rather than by committee spread or model gap.

Why: on the round-3 potential the main job's trajectories twist well past 90 degrees, yet no
frame comes below a model gap of 2 eV, so selection by small model gaps finds nothing there;
and the committee members agree with each other there (they were trained on the same data), so
selection by spread finds little. The reference crossing (``r2/crossing-r2.xyz``: central
dihedral 115 degrees, one central carbon pyramidalised to an angle sum of 301 degrees) says
where the seam is. This script takes the frames whose |central dihedral| lies in
[``--twist-min``, ``--twist-max``] degrees and whose more pyramidalised central carbon has an
angle sum below ``--max-angle-sum`` degrees, orders them by the distance

    ((|dihedral| - 115) / 15)^2 + ((angle sum - 301) / 30)^2

(closest first) and keeps frames of one trajectory at least ``--min-separation-fs`` apart
(:func:`fusionff.analysis.selection.pick_separated`), at most ``--n`` of them. Each frame's
info line keeps its run, trajectory, time, model gap (eV), dihedral and angle sums, so the
labels can be compared with the model afterwards::

    python data/stilbene/r2_seam_frames.py runs/stilbene_r2_small_cpu \
        data/stilbene/r2/seam-probe.xyz --n 40

Positions in Angstrom, angles in degrees, energies in eV.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.io import write

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from r2_crossing import describe_geometry  # noqa: E402

from fusionff.analysis.run import read_run  # noqa: E402
from fusionff.analysis.selection import _numbers, _positions, pick_separated  # noqa: E402

CROSSING_TWIST_DEG = 115.0
CROSSING_ANGLE_SUM_DEG = 301.0


def seam_distance(twist_deg: np.ndarray, angle_sum_deg: np.ndarray) -> np.ndarray:
    """The normalised distance of the module docstring from the reference crossing."""
    return ((np.abs(twist_deg) - CROSSING_TWIST_DEG) / 15.0) ** 2 + (
        (angle_sum_deg - CROSSING_ANGLE_SUM_DEG) / 30.0
    ) ** 2


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_dir")
    parser.add_argument("output", help="extended XYZ queue for fusionff label")
    parser.add_argument("--n", type=int, default=40, help="frames at most")
    parser.add_argument("--twist-min", type=float, default=90.0)
    parser.add_argument("--twist-max", type=float, default=145.0)
    parser.add_argument("--max-angle-sum", type=float, default=335.0)
    parser.add_argument("--min-separation-fs", type=float, default=3.0)
    args = parser.parse_args(argv)

    run = read_run(args.run_dir, include_failed=True)
    group, time, frame, gap, twist, angle, paths, read = [], [], [], [], [], [], {}, {}
    for t in run.trajectories:
        paths[t.index] = t.path
        every = read[t.index] = _positions(t.path, list(range(len(t.time))))
        for i in range(len(t.time)):
            if not np.isfinite(t.energies[i]).all():
                continue
            d = describe_geometry(every[i])
            group.append(t.index)
            time.append(float(t.time[i]))
            frame.append(i)
            gap.append(float(t.energies[i, 1] - t.energies[i, 0]))
            twist.append(abs(d["dihedral_deg"]))
            angle.append(min(d["angle_sum_C1_deg"], d["angle_sum_C2_deg"]))
    group, time, frame, gap, twist, angle = map(np.asarray, (group, time, frame, gap, twist, angle))
    inside = np.flatnonzero(
        (twist >= args.twist_min) & (twist <= args.twist_max) & (angle < args.max_angle_sum)
    )
    order = inside[np.argsort(seam_distance(twist[inside], angle[inside]), kind="stable")]
    chosen = pick_separated(group, time, order, args.min_separation_fs, args.n)
    numbers = _numbers(paths[int(group[0])])
    images = []
    for i in chosen:
        positions = read[int(group[i])][int(frame[i])]
        info = {
            "run": str(args.run_dir),
            "trajectory": int(group[i]),
            "frame": int(frame[i]),
            "time_fs": float(time[i]),
            "reasons": "seam-geometry",
            "model_gap_ev": float(gap[i]),
            "twist_deg": float(twist[i]),
            "min_angle_sum_deg": float(angle[i]),
        }
        images.append(Atoms(numbers=numbers, positions=positions, info=info))
    if not images:
        print(f"{args.run_dir}: no frame inside the window; nothing written")
        return 1
    write(args.output, images, format="extxyz")
    print(
        f"{args.output}: {len(images)} frames of {len(inside)} inside the window, from "
        f"{len(set(group[chosen].tolist()))} trajectories; model gap "
        f"{gap[chosen].min():.2f}-{gap[chosen].max():.2f} eV"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
