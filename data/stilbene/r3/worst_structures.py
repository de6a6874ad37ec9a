"""Which labelled structures does a model fit worst? Per-structure errors on a run's split.

    HDF5_USE_FILE_LOCKING=FALSE python data/stilbene/r3/worst_structures.py MODEL RUN_DIR \
        [--subset train] [--top 12] [--json OUT]

First prints the force MAE of each element and the atoms with the largest force MAE over the
subset (where in the molecule the error sits). Then for every usable structure of RUN_DIR's
split (split.json, read by ``fusionff.train.split.split_rows``), worst
first by the larger of the two states' force MAE: the file and row, the per-state force MAE
(eV/A, mean over atoms and components), the largest force error of any atom (eV/A), the energy
errors of S0, S1 and of the gap (eV, after removing the subset's mean energy error of each
state, so that a constant offset the model carries does not rank structures), and from the
label's meta the start the label used and the active orbitals' pi weights. A training structure
whose error stays far above the others' is either a region the model cannot represent or a
label inconsistent with its neighbours; the meta tells which to check first. Units: eV,
Angstrom.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from ase import Atoms

from fusionff.calculator import FusionCalculator
from fusionff.data.dataset import MultiStateDataset
from fusionff.train.split import split_rows


def per_structure_errors(model: str, run_dir: str, subset: str) -> list[dict]:
    """Errors of ``model`` on each usable structure of ``subset`` of ``run_dir``'s split."""
    by_file: dict[str, list[int]] = {}
    for path, row in split_rows(run_dir, subset):
        by_file.setdefault(path, []).append(row)
    calc = FusionCalculator(model, device="cpu")
    rows: list[dict] = []
    for path, wanted in by_file.items():
        with MultiStateDataset.open(path) as ds:
            for row in sorted(wanted):
                structure = ds[row]
                if structure.status != "ok":
                    continue
                atoms = Atoms(numbers=structure.numbers, positions=structure.positions)
                calc.calculate(atoms, ["energies"])
                row_errors = structure_errors(
                    np.asarray(calc.results["energies"]),
                    np.asarray(calc.results["state_forces"]),
                    structure.energies,
                    structure.forces,
                )
                meta = structure.meta
                rows.append(
                    {"file": path, "row": row, **row_errors}
                    | {"numbers": structure.numbers.tolist()}
                    | {"start": meta.get("start", ""), "pi": meta.get("active_pi_weights", [])}
                )
    return rank(rows)


def structure_errors(
    energies: np.ndarray, forces: np.ndarray, ref_energies: np.ndarray, ref_forces: np.ndarray
) -> dict:
    """A structure's errors: predicted energies (S,) eV and forces (S, N, 3) eV/A against the
    labels' energies (S,) and forces (N, S, 3), the dataset's layout."""
    difference = forces - np.transpose(ref_forces, (1, 0, 2))
    atom_mae = np.abs(difference).mean(axis=2)  # (S, N)
    return {
        "force_mae": atom_mae.mean(axis=1).tolist(),
        "atom_force_mae": atom_mae.tolist(),
        "max_atom_force_error": float(np.linalg.norm(difference, axis=2).max()),
        "energy_error": (energies - ref_energies).tolist(),
        "reference_gap": float(ref_energies[1] - ref_energies[0]),
    }


def rank(rows: list[dict]) -> list[dict]:
    """Remove each state's mean energy error over ``rows`` from every row's energy errors, add
    the gap error (S1 - S0), and sort worst first by the larger state force MAE."""
    offsets = np.mean([r["energy_error"] for r in rows], axis=0)
    for r in rows:
        e = np.asarray(r["energy_error"]) - offsets
        r["energy_error"] = e.tolist()
        r["gap_error"] = float(e[1] - e[0])
    return sorted(rows, key=lambda r: -max(r["force_mae"]))


def atom_summary(rows: list[dict], worst: int = 6) -> list[str]:
    """Where the force error sits: the force MAE (eV/A) of each element and of the ``worst``
    atoms (by index, the larger state's), over ``rows`` (structures with the same atoms)."""
    per_atom = np.mean([r["atom_force_mae"] for r in rows], axis=0)  # (S, N)
    numbers = np.asarray(rows[0]["numbers"])
    lines = []
    for z in sorted(set(numbers.tolist())):
        mae = per_atom[:, numbers == z].mean(axis=1)
        lines.append(f"element Z={z}: force MAE " + " / ".join(f"{m:.3f}" for m in mae))
    order = np.argsort(-per_atom.max(axis=0))[:worst]
    lines.append(
        "worst atoms (index Z: S0 / S1): "
        + ", ".join(f"{i} {numbers[i]}: {per_atom[0, i]:.3f}/{per_atom[1, i]:.3f}" for i in order)
    )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model")
    parser.add_argument("run_dir")
    parser.add_argument("--subset", default="train", choices=["train", "validation", "test"])
    parser.add_argument("--top", type=int, default=12)
    parser.add_argument("--json", help="also write every structure's errors here")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    rows = per_structure_errors(args.model, args.run_dir, args.subset)
    force = np.array([r["force_mae"] for r in rows])
    print(
        f"{len(rows)} {args.subset} structures; force MAE per structure (eV/A), S0 / S1: "
        f"median {np.median(force[:, 0]):.3f} / {np.median(force[:, 1]):.3f}, "
        f"mean {force[:, 0].mean():.3f} / {force[:, 1].mean():.3f}"
    )
    for line in atom_summary(rows):
        print(line)
    print("file:row  F MAE S0/S1  max atom  dE S0/S1  d gap  ref gap  start  pi weights")
    for r in rows[: args.top]:
        print(
            f"{Path(r['file']).name}:{r['row']}  {r['force_mae'][0]:.3f}/{r['force_mae'][1]:.3f}"
            f"  {r['max_atom_force_error']:.2f}  {r['energy_error'][0]:+.3f}/"
            f"{r['energy_error'][1]:+.3f}  {r['gap_error']:+.3f}  {r['reference_gap']:.2f}"
            f"  {r['start']}  {r['pi']}"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
