"""A labelling queue around R3's S1/S0 crossing and on the way to it from the cis FC point.

Why: the snapshot-3 potential finds its crossing 0.10 A from R3's, yet puts S1 there only 0.70
eV below its FC S1 (R3: 1.29 eV; ``model-check-snapshot-3.json``), with a gap of 0.36 eV at
R3's crossing (R3: 0.012 eV). Of 137 R3 labels only 3 of the validation and test structures
have a gap below 0.5 eV: the seam region is thin in the data, and active learning from
dynamics reaches it slowly because the potentials' S1 does not descend far enough to get
there. So, as for R2's seed (``../r2/README.md``), frames placed by geometry:

- ``grid``: R3's relaxed crossing (``../r2/crossing-6-31g.xyz``: dihedral 113 degrees, C1
  angle sum 306) with the central dihedral moved by -20..+20 degrees (rigid rotation of the
  second half about C1=C2, :func:`fusionff.data.stilbene.set_torsion`) and C1's substituents
  tilted by -12..+6 degrees (:func:`fusionff.data.stilbene.bend_substituents`; negative:
  flatter; the dihedral is set after the tilt), each with small random displacements
  (``--sigma`` A per coordinate);
- ``jitter``: the crossing with random displacements only;
- ``path``: R3's cis minimum (``../r2/cis-6-31g.xyz``) rigidly twisted to 30, 60 and 90
  degrees, and C1 pyramidalised to an angle sum of 330 and 315 then twisted to 90 and 110.

``--set seam2`` (``seam2.xyz``) is the second queue, made after snapshot 4 (192 labels): on
the snapshot-4 models S1 at R3's crossing lies 0.23 eV too high relative to the cis minimum's
S1, while on seam1's ``jitter`` frames the error is 0.07-0.14 eV; those frames lie 0.7-1.1 eV
above the crossing in S1 (0.02 A per coordinate puts that much into the bonds), so nothing
labelled lies near the bottom of the seam or near the cis minimum itself. seam2 holds frames
within about 0.1 eV of those two points and on the way between them, all with 0.005 A
displacements:

- ``near``: the crossing (6 frames) and the cis minimum (3 frames), displaced only;
- ``path``: the cis minimum rigidly twisted to 15, 45, 75 and 100 degrees (between seam1's
  30, 60 and 90), and to 110 degrees with C1 at an angle sum of 345 (5 frames);
- ``untwist``: the crossing twisted back to 103, 93 and 83 degrees, C1 as it is (3 frames).

The frames were chosen on the snapshot-4 wide model to lie below its FC S1 + 0.2 eV in S1:
pyramidalising the cis minimum rigidly costs 0.5-1.9 eV there (C1 at 345-315 degrees,
twisted 15-75 degrees), far above anything S1 dynamics from the FC point reach, and so does
untwisting the crossing to 73 degrees (S1 1.0 eV above the FC S1).

The landmarks of ``../r2_model_check.py`` (S1 at the crossing against the cis minimum) are
then checked next to training data: a fit, no longer a prediction. Each frame's info keeps its
kind, the parameters and the resulting dihedral and angle sums::

    python data/stilbene/r3/seam_frames.py data/stilbene/r3/seam1.xyz
    python data/stilbene/r3/seam_frames.py data/stilbene/r3/seam2.xyz --set seam2 --sigma 0.005

Positions in Angstrom, angles in degrees.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.io import read, write

from fusionff.data import stilbene as sb

HERE = Path(__file__).resolve().parent
CROSSING = HERE.parent / "r2" / "crossing-6-31g.xyz"
CIS = HERE.parent / "r2" / "cis-6-31g.xyz"
TWISTS = (-20.0, -10.0, 0.0, 10.0, 20.0)
"""Degrees added to the crossing's central dihedral (grid)."""
BENDS = (-12.0, -6.0, 0.0, 6.0)
"""Degrees by which C1's substituents are tilted (grid; negative makes C1 flatter)."""


def frames(sigma: float, n_jitter: int, seed: int) -> list[Atoms]:
    """The queue's structures (see the module docstring), in queue order."""
    rng = np.random.default_rng(seed)
    crossing, cis = read(CROSSING), read(CIS)
    out = []

    def add(positions: np.ndarray, template: Atoms, jitter: bool, **info) -> None:
        if jitter:
            positions = positions + rng.normal(0.0, sigma, positions.shape)
        out.append(_frame(positions, template, info))

    x = crossing.positions
    start = float(sb.dihedral(x))
    for twist in TWISTS:
        for bend in BENDS:
            moved = sb.set_torsion(sb.bend_substituents(x, sb.C1, bend), start + twist)
            add(moved, crossing, True, kind="grid", twist=twist, bend=bend)
    for _ in range(n_jitter):
        add(x, crossing, True, kind="jitter")
    c = cis.positions
    for torsion in (30.0, 60.0, 90.0):
        add(sb.set_torsion(c, torsion), cis, False, kind="path", torsion=torsion)
    for torsion, angle_sum in ((90.0, 330.0), (110.0, 315.0)):
        twisted = sb.set_torsion(sb.pyramidalise(c, sb.C1, angle_sum), torsion)
        add(twisted, cis, False, kind="path", torsion=torsion, target_angle_sum=angle_sum)
    return out


def seam2_frames(sigma: float, seed: int) -> list[Atoms]:
    """The second queue's structures (``--set seam2``; see the module docstring)."""
    rng = np.random.default_rng(seed)
    crossing, cis = read(CROSSING), read(CIS)
    out = []

    def add(positions: np.ndarray, template: Atoms, **info) -> None:
        positions = positions + rng.normal(0.0, sigma, positions.shape)
        out.append(_frame(positions, template, info))

    x, c = crossing.positions, cis.positions
    for _ in range(6):
        add(x, crossing, kind="near", near="crossing")
    for _ in range(3):
        add(c, cis, kind="near", near="cis")
    for torsion in (15.0, 45.0, 75.0, 100.0):
        add(sb.set_torsion(c, torsion), cis, kind="path", torsion=torsion)
    pyramidal = sb.set_torsion(sb.pyramidalise(c, sb.C1, 345.0), 110.0)
    add(pyramidal, cis, kind="path", torsion=110.0, target_angle_sum=345.0)
    for torsion in (103.0, 93.0, 83.0):
        add(sb.set_torsion(x, torsion), crossing, kind="untwist", torsion=torsion)
    return out


def _frame(positions: np.ndarray, template: Atoms, info: dict) -> Atoms:
    atoms = Atoms(template.numbers, positions=positions)
    atoms.info.update(info)
    atoms.info.update(
        dihedral=round(float(sb.dihedral(positions)), 2),
        angle_sum_C1=round(float(sb.pyramidalisation(positions, sb.C1)), 2),
        angle_sum_C2=round(float(sb.pyramidalisation(positions, sb.C2)), 2),
    )
    return atoms


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("output", type=Path, help="extended xyz to write")
    parser.add_argument("--sigma", type=float, default=0.02, help="Angstrom (default 0.02)")
    parser.add_argument("--n-jitter", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", choices=["seam1", "seam2"], default="seam1", dest="which")
    args = parser.parse_args(argv)
    if args.which == "seam2":
        structures = seam2_frames(args.sigma, args.seed)
    else:
        structures = frames(args.sigma, args.n_jitter, args.seed)
    write(args.output, structures, format="extxyz")
    for k, atoms in enumerate(structures):
        info = atoms.info
        print(
            f"{k:3d} {info['kind']:6s} dihedral {info['dihedral']:8.2f} "
            f"angle sums {info['angle_sum_C1']:7.2f} {info['angle_sum_C2']:7.2f}"
        )
    print(f"{args.output}: {len(structures)} structures")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
