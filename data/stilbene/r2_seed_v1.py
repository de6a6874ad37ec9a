"""Seed v1 for the stilbene R2 dataset: the S1/S0 crossing region, which seed v0 misses.

Seed v0 (``r2_seed.py``) spans the torsion path and thermal structures about it; its labelled
S1-S0 gaps run from 2.2 to 8.4 eV, so a potential trained on it knows nothing of the seam
that surface hopping has to find. Seed v1 samples around the relaxed R2 crossing
(``r2/crossing-r2.xyz``: gap 8.9 meV, central dihedral 115 degrees, C1 pyramidalised to an
angle sum of 301 degrees) and along a route to it from the R2 cis minimum (``r2/cis-r2.xyz``),
in an order that lets each structure follow its predecessor's orbitals:

  seam-twist  the crossing geometry with the central dihedral set to 85..145 degrees
              (5-degree steps, the second half rotated rigidly)
  seam-pyr    the crossing geometry with C1's substituents bent back towards planarity and
              further, angle sums from about 354 to 275 degrees, dihedral reset to 115
  cis-seam    from the cis minimum towards the crossing: dihedral 6 -> 115 degrees and C1's
              angle sum 360 -> 301 degrees together, 12 structures
  seam-near   random structures about the crossing: dihedral +-15 degrees, C1 angle sum
              285..335 degrees, each phenyl turned +-15 degrees, then Gaussian displacements
              (0.04 Angstrom per coordinate); ordered by dihedral

The crossing with C2 pyramidalised is the same structure with the two halves relabelled; the
potential is invariant under that permutation, so it is not sampled separately.

    python data/stilbene/r2_seed_v1.py data/stilbene/r2/seed-v1.xyz --near 120
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from ase.io import read
from r2_seed import write_seed

from fusionff.data import stilbene as sb

HERE = Path(__file__).resolve().parent


def _bend_to(positions: np.ndarray, carbon: int, degrees: float) -> np.ndarray:
    """:func:`fusionff.data.stilbene.bend_substituents`; negative bends towards planarity."""
    return sb.bend_substituents(positions, carbon, degrees)


def seed(
    cis: np.ndarray, crossing: np.ndarray, n_near: int, rng: np.random.Generator
) -> list[tuple[str, np.ndarray]]:
    """(stage, positions (26, 3) Angstrom) of every seed-v1 structure, in labelling order."""
    out = []
    for dihedral in np.arange(85.0, 145.1, 5.0):
        out.append(("seam-twist", sb.set_torsion(crossing, dihedral)))
    for bend in np.arange(-30.0, 10.1, 5.0):
        bent = _bend_to(crossing, sb.C1, bend)
        out.append(("seam-pyr", sb.set_torsion(bent, sb.dihedral(crossing))))
    target_dihedral = sb.dihedral(crossing)
    target_sum = sb.pyramidalisation(crossing, sb.C1)
    start_dihedral = sb.dihedral(cis)
    for t in np.linspace(0.0, 1.0, 12):
        positions = sb.set_torsion(cis, start_dihedral + t * (target_dihedral - start_dihedral))
        angle_sum = 360.0 + t * (target_sum - 360.0)
        if angle_sum < sb.pyramidalisation(positions, sb.C1) - 0.5:
            positions = sb.pyramidalise(positions, sb.C1, angle_sum)
        dihedral = start_dihedral + t * (target_dihedral - start_dihedral)
        out.append(("cis-seam", sb.set_torsion(positions, dihedral)))
    numbers = read(HERE / "r2" / "crossing-r2.xyz").numbers
    near = []
    while len(near) < n_near:
        positions = _bend_to(crossing, sb.C1, rng.uniform(-12.0, 8.0))
        positions = sb.set_torsion(positions, target_dihedral + rng.uniform(-15.0, 15.0))
        for carbon in (sb.C1, sb.C2):
            positions = sb.twist_phenyl(positions, carbon, rng.uniform(-15.0, 15.0))
        positions = positions + rng.normal(0.0, 0.04, positions.shape)
        if sb.closest_nonbonded(positions, numbers) < 1.2:
            continue
        near.append((sb.dihedral(positions) % 360.0, positions))
    near.sort(key=lambda item: item[0])
    out += [("seam-near", positions) for _, positions in near]
    return out


def landmarks(positions: np.ndarray) -> dict[str, float]:
    """The central dihedral and C1's angle sum (degrees, to 0.01) of positions (26, 3)
    Angstrom, as each frame's info records them."""
    return {
        "dihedral": round(sb.dihedral(positions), 2),
        "angle_sum_c1": round(sb.pyramidalisation(positions, sb.C1), 2),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("output", help="extended XYZ to write (stage in each frame's info)")
    parser.add_argument("--near", type=int, default=120, help="random structures near the seam")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    cis = read(HERE / "r2" / "cis-r2.xyz")
    crossing = read(HERE / "r2" / "crossing-r2.xyz")
    rng = np.random.default_rng(args.seed)
    structures = seed(cis.positions, crossing.positions, args.near, rng)
    write_seed(args.output, crossing.numbers, structures, landmarks)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
