"""Seed geometries for the stilbene R2 dataset (SA-2-CASSCF(2,2)/STO-3G), ordered for
orbital following.

Not Wigner samples: R2 has no minima or Hessians yet (a finite-difference R2 Hessian is about
160 gradient jobs), and R1's cis minimum, whose phenyls stand perpendicular to the C=C plane,
is a geometry where SA-2-CASSCF(2,2)/STO-3G puts both active orbitals on the phenyls (pi weight
on C1=C2 below 0.002, measured), so R1's Wigner samples do not serve. The seed is built from
the ideal geometries of :mod:`fusionff.data.stilbene` instead:

  path     the central dihedral from 180 to 0 degrees in 5-degree steps, phenyls turned
           about their C-C(ipso) bonds from 10 degrees (trans) to 40 degrees (cis, as in the
           real minimum), in that order so that each structure follows its predecessor;
  pyramid  at dihedrals 60..120 degrees, C1 pyramidalised to angle sums 340..300 degrees
           (the twisted-pyramidalised crossing region);
  thermal  random structures along the path: dihedral uniform in [0, 180], phenyl twists
           +-15 degrees about the path's, C1 or C2 pyramidalised with probability 0.3, then
           Gaussian displacements (0.04 Angstrom per coordinate); ordered by dihedral.

Later rounds add frames of ML surface-hopping runs picked by committee spread and small gaps
(active learning, see README.md).

    python data/stilbene/r2_seed.py data/stilbene/r2/seed-v0.xyz --thermal 600
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import numpy as np
from ase import Atoms
from ase.io import write

from fusionff.data import stilbene as sb
from fusionff.data.molecules import trans_stilbene


def path_geometry(dihedral: float, phenyl_twist: float | None = None) -> np.ndarray:
    """Positions (26, 3) Angstrom with the central dihedral at ``dihedral`` degrees and both
    phenyls turned by ``phenyl_twist`` (default: 10 at trans rising to 40 at cis)."""
    if phenyl_twist is None:
        phenyl_twist = 10.0 + 30.0 * (1.0 - abs(dihedral) / 180.0)
    positions = sb.set_torsion(trans_stilbene().positions, dihedral)
    positions = sb.twist_phenyl(positions, sb.C1, phenyl_twist)
    return sb.twist_phenyl(positions, sb.C2, phenyl_twist)


def seed(n_thermal: int, rng: np.random.Generator) -> list[tuple[str, np.ndarray]]:
    """(stage, positions) of every seed structure, in labelling order."""
    out = [("path", path_geometry(d)) for d in np.arange(180.0, -0.1, -5.0)]
    for dihedral in (60.0, 75.0, 90.0, 105.0, 120.0):
        for angle_sum in (340.0, 320.0, 300.0):
            out.append(("pyramid", sb.pyramidalise(path_geometry(dihedral), sb.C1, angle_sum)))
    thermal = []
    while len(thermal) < n_thermal:
        dihedral = rng.uniform(0.0, 180.0)
        base_twist = 10.0 + 30.0 * (1.0 - dihedral / 180.0)
        positions = sb.set_torsion(trans_stilbene().positions, dihedral)
        for carbon in (sb.C1, sb.C2):
            positions = sb.twist_phenyl(positions, carbon, base_twist + rng.uniform(-15, 15))
        if rng.random() < 0.3:
            carbon = (sb.C1, sb.C2)[rng.integers(2)]
            positions = sb.pyramidalise(positions, carbon, rng.uniform(300.0, 350.0))
        positions = positions + rng.normal(0.0, 0.04, positions.shape)
        if sb.closest_nonbonded(positions, trans_stilbene().numbers) < 1.2:
            continue
        thermal.append((sb.dihedral(positions) % 360.0, positions))
    thermal.sort(key=lambda item: -abs(180.0 - abs(180.0 - item[0])))
    out += [("thermal", positions) for _, positions in thermal]
    return out


def write_seed(
    output: str,
    numbers: np.ndarray,
    structures: list[tuple[str, np.ndarray]],
    info: Callable[[np.ndarray], dict] | None = None,
) -> None:
    """Write ``structures`` ((stage, positions (N, 3) Angstrom), in labelling order) of atoms
    ``numbers`` to the extended XYZ file ``output``, each frame's info holding its stage and,
    where ``info`` is given, ``info(positions)``; print how many were written."""
    frames = []
    for stage, positions in structures:
        atoms = Atoms(numbers=numbers, positions=positions)
        atoms.info["stage"] = stage
        if info is not None:
            atoms.info.update(info(positions))
        frames.append(atoms)
    write(output, frames, format="extxyz")
    print(f"{output}: {len(frames)} structures")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("output", help="extended XYZ to write (stage in each frame's info)")
    parser.add_argument("--thermal", type=int, default=600, help="thermal structures")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    structures = seed(args.thermal, np.random.default_rng(args.seed))
    write_seed(args.output, trans_stilbene().numbers, structures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
