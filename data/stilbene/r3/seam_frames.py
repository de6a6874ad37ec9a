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

Each frame's info keeps its kind, the parameters and the resulting dihedral and angle sums::

    python data/stilbene/r3/seam_frames.py data/stilbene/r3/seam1.xyz

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
        atoms = Atoms(template.numbers, positions=positions)
        atoms.info.update(info)
        atoms.info.update(
            dihedral=round(float(sb.dihedral(positions)), 2),
            angle_sum_C1=round(float(sb.pyramidalisation(positions, sb.C1)), 2),
            angle_sum_C2=round(float(sb.pyramidalisation(positions, sb.C2)), 2),
        )
        out.append(atoms)

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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("output", type=Path, help="extended xyz to write")
    parser.add_argument("--sigma", type=float, default=0.02, help="Angstrom (default 0.02)")
    parser.add_argument("--n-jitter", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
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
