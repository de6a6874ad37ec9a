"""Do the labels' forces integrate to their energies? Pairs of nearby labelled structures.

    OMP_NUM_THREADS=1 HDF5_USE_FILE_LOCKING=FALSE python data/stilbene/r3/label_consistency.py \\
        data/stilbene/stilbene-r3-*.h5 [--max-rmsd 0.15] [--show 20]

For every pair of labelled structures whose RMSD after optimal superposition (Kabsch, same atom
order) is below ``--max-rmsd`` Angstrom, the second is rotated onto the first (positions and
forces) and each state's energy difference E_b - E_a is compared with the work of the forces
along the straight path, -(F_a + F_b)/2 . (x_b - x_a) (the trapezoid rule; exact for a
quadratic surface). Forces that are the gradient of their energies make the difference small
(second order in the step, times the change of curvature); a label with a wrong state, a wrong
solution or a non-conservative gradient does not. Near the S1/S0 seam the adiabatic surfaces
have a cusp, so there the rule fails in both states at once, with opposite signs (their sum is
smooth): the summary is split by the smaller reference gap of the pair. Units: eV, Angstrom.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from fusionff.data.dataset import MultiStateDataset

GAP_BINS = ((0.0, 0.5), (0.5, 1.0), (1.0, np.inf))


def superpose(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, float]:
    """The rotation R (3, 3) that brings centred ``b`` (N, 3) onto centred ``a`` (b @ R.T ~ a)
    and the RMSD after it, Angstrom."""
    a0, b0 = a - a.mean(0), b - b.mean(0)
    u, _, vt = np.linalg.svd(a0.T @ b0)
    d = np.sign(np.linalg.det(u @ vt))
    rotation = u @ np.diag([1.0, 1.0, d]) @ vt
    rmsd = float(np.sqrt(((b0 @ rotation.T - a0) ** 2).sum(-1).mean()))
    return rotation, rmsd


def path_work(xa: np.ndarray, fa: np.ndarray, xb: np.ndarray, fb: np.ndarray) -> np.ndarray:
    """(S,) -(F_a + F_b)/2 . (x_b - x_a) per state: positions (N, 3) Angstrom, forces
    (N, S, 3) eV/Angstrom (the dataset's layout), in one frame of reference."""
    return -0.5 * np.einsum("nsi,ni->s", fa + fb, xb - xa)


def read_labels(paths: list[str]):
    """Positions (K, N, 3), forces (K, N, S, 3), energies (K, S) and (file, row) of every
    labelled structure of ``paths``."""
    x, f, e, where = [], [], [], []
    for path in paths:
        with MultiStateDataset.open(path) as ds:
            for i in range(len(ds)):
                entry = ds[i]
                if entry.status != "ok" or entry.energies is None or entry.forces is None:
                    continue
                x.append(entry.positions)
                f.append(entry.forces)
                e.append(entry.energies)
                where.append((Path(path).name, i))
    return np.array(x), np.array(f), np.array(e), where


def close_pairs(x: np.ndarray, f: np.ndarray, e: np.ndarray, max_rmsd: float) -> list[dict]:
    """Every pair (a < b) closer than ``max_rmsd`` after superposition, with the energy
    difference, the path work and their difference per state."""
    pairs = []
    for a in range(len(x)):
        for b in range(a + 1, len(x)):
            rotation, rmsd = superpose(x[a], x[b])
            if rmsd >= max_rmsd:
                continue
            xa = x[a] - x[a].mean(0)
            xb = (x[b] - x[b].mean(0)) @ rotation.T
            fb = np.einsum("nsj,ij->nsi", f[b], rotation)
            work = path_work(xa, f[a], xb, fb)
            de = e[b] - e[a]
            pairs.append(
                {
                    "a": a,
                    "b": b,
                    "rmsd": rmsd,
                    "energy_difference": de,
                    "work": work,
                    "mismatch": de - work,
                    "smaller_gap": float(min(e[a, 1] - e[a, 0], e[b, 1] - e[b, 0])),
                }
            )
    return pairs


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="+", help="labelled datasets (HDF5)")
    parser.add_argument("--max-rmsd", type=float, default=0.15, help="Angstrom")
    parser.add_argument("--show", type=int, default=20, help="closest pairs to list")
    args = parser.parse_args(argv)
    x, f, e, where = read_labels(args.files)
    pairs = sorted(close_pairs(x, f, e, args.max_rmsd), key=lambda p: p["rmsd"])
    print(f"{len(x)} labelled structures, {len(pairs)} pairs below {args.max_rmsd} A")
    for p in pairs[: args.show]:
        m = p["mismatch"]
        states = " ".join(f"S{s} {v:+.4f}" for s, v in enumerate(m))
        print(
            f"{p['rmsd']:.3f} A  {where[p['a']]} {where[p['b']]}  smaller gap "
            f"{p['smaller_gap']:.2f} eV  mismatch {states} eV"
        )
    for lo, hi in GAP_BINS:
        for limit in (0.05, args.max_rmsd):
            chosen = [p for p in pairs if lo <= p["smaller_gap"] < hi and p["rmsd"] < limit]
            if not chosen:
                continue
            mismatch = np.abs([p["mismatch"] for p in chosen])
            total = np.abs([p["mismatch"].sum() for p in chosen])
            print(
                f"smaller gap {lo:g}-{hi:g} eV, RMSD < {limit:g} A: {len(chosen)} pairs, "
                f"median |mismatch| S0 {np.median(mismatch[:, 0]):.4f} S1 "
                f"{np.median(mismatch[:, 1]):.4f} eV (largest {mismatch.max():.4f}); of the "
                f"sum of the states {np.median(total):.4f}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
