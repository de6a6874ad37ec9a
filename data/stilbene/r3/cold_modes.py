"""What do the cold soft modes do to the cis-stilbene initial conditions? ``cold_below`` off
and on, side by side.

The R3 runs sample the 300 K harmonic Wigner distribution at the cis minimum with the modes
below 100 cm^-1 at their 0 K width (``cold_below: 100``, a guard set for trans, whose 20
cm^-1 phenyl torsions stretch bonds by Angstroms when sampled linearly at 300 K:
``../README.md``). This draws the same normal deviates with ``cold_below`` 100 and 0 (so the
samples are paired) and prints, for each: the largest bond-length change per sample, the
spread of the central dihedral C(ipso)-C=C-C(ipso) and of the two phenyl torsions
C=C-C(ipso)-C(ortho), and of their rates, and the kinetic energy.

    python data/stilbene/r3/cold_modes.py [--hessian data/stilbene/r3/cis-hessian-snapshot-21.npz]

``cis-hessian-snapshot-21.npz`` is the Hessian (eV/Angstrom^2) that the seed-23 preview
computed with the shipped snapshot-21 committee at its optimised cis minimum (the run's
``hessian.npz``; its ``source`` names the model files' SHA-256). Angles degrees, rates
degrees/fs, distances Angstrom, energies eV.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from ase.data import atomic_masses

from fusionff.data import stilbene as sb
from fusionff.sampling import normal_modes, wigner_sample
from fusionff.units import AMU_A2_PER_FS2_EV

HERE = Path(__file__).resolve().parent


def dihedrals(x: np.ndarray, indices) -> np.ndarray:
    return np.array([sb.dihedral(p, indices) for p in x])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hessian", type=Path, default=HERE / "cis-hessian-snapshot-21.npz")
    parser.add_argument("--temperature", type=float, default=300.0)
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    with np.load(args.hessian) as data:
        x0, numbers, hessian = data["positions"], data["numbers"], data["hessian"]
    masses = atomic_masses[numbers]
    wavenumbers = np.sort(normal_modes(x0, masses, hessian).wavenumbers)
    print("lowest wavenumbers (cm^-1):", np.round(wavenumbers[:7], 1).tolist())
    d0 = np.linalg.norm(x0[:, None] - x0[None], axis=-1)
    bonds = np.argwhere(np.triu((d0 > 0) & (d0 < 1.6), 1))
    torsions = {
        "central": sb.CENTRAL,
        "phenyl 1": (sb.C2, sb.C1, sb.IPSO1, sb.IPSO1 + 1),
        "phenyl 2": (sb.C1, sb.C2, sb.IPSO2, sb.IPSO2 + 1),
    }
    dt = 1e-3  # fs, for the rates by a forward difference along the sampled velocities
    for cold_below in (100.0, 0.0):
        x, v = wigner_sample(
            x0, masses, hessian, args.temperature, args.samples,
            np.random.default_rng(args.seed), imaginary_tolerance=30.0, cold_below=cold_below,
        )  # fmt: skip
        d = np.linalg.norm(x[:, bonds[:, 0]] - x[:, bonds[:, 1]], axis=-1)
        stretch = np.abs(d - d0[bonds[:, 0], bonds[:, 1]]).max(axis=1)
        kinetic = 0.5 * np.einsum("i,sij->s", masses, v**2) * AMU_A2_PER_FS2_EV
        print(f"cold_below {cold_below:g} cm^-1, {args.temperature:g} K, {args.samples} samples:")
        print(f"  largest bond change per sample: median {np.median(stretch):.3f}, "
              f"99th percentile {np.quantile(stretch, 0.99):.3f}, max {stretch.max():.3f} A; "
              f"kinetic energy mean {kinetic.mean():.3f} eV")  # fmt: skip
        for name, indices in torsions.items():
            angle = dihedrals(x, indices)
            rate = (dihedrals(x + dt * v, indices) - angle) / dt
            print(f"  {name:9s} torsion mean {angle.mean():6.1f}, sd {angle.std():5.2f} deg; "
                  f"rate sd {rate.std():.3f} deg/fs")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
