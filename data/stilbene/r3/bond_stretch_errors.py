"""Where do models go wrong as a hydrogen leaves? Per labelled row of a file: the most stretched
hydrogen (the one farthest from its nearest heavy atom), the label's status, and each model's
signed energy errors (model - label, eV, per state) and force error on that hydrogen (eV/A).

    HDF5_USE_FILE_LOCKING=FALSE python data/stilbene/r3/bond_stretch_errors.py \
        data/stilbene/stilbene-r3-hloss11.h5 potentials/stilbene-r3.fff \
        potentials/stilbene-r3-c12.fff [--json OUT]

Made for ``hloss11.xyz`` (tenth session): frames after a hop where the shipped committee let a
central hydrogen leave its carbon. Signed errors, not MAEs: a model whose S0 lies eV below the
label as the bond stretches has a hole there. Failed labels are listed with their error (the
active-space guard's verdict says where the (2,2) space stops describing the molecule).
Units: Angstrom, eV, eV/Angstrom.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from fusionff.data.dataset import MultiStateDataset


def most_stretched_hydrogen(numbers: np.ndarray, positions: np.ndarray) -> tuple[int, int, float]:
    """(hydrogen, its nearest heavy atom, their distance in Angstrom) for the hydrogen farthest
    from its nearest heavy atom. Raises ValueError without hydrogens or heavy atoms."""
    numbers = np.asarray(numbers)
    hydrogens, heavy = np.flatnonzero(numbers == 1), np.flatnonzero(numbers > 1)
    if len(hydrogens) == 0 or len(heavy) == 0:
        raise ValueError(f"needs hydrogens and heavy atoms, got atomic numbers {numbers.tolist()}")
    d = np.linalg.norm(positions[hydrogens, None] - positions[None, heavy], axis=-1)
    nearest = d.argmin(axis=1)
    k = int(d[np.arange(len(hydrogens)), nearest].argmax())
    return int(hydrogens[k]), int(heavy[nearest[k]]), float(d[k, nearest[k]])


def row_report(
    numbers, positions, status: str, energies, forces, error: str, predictions: dict
) -> dict:
    """One row: the stretched hydrogen, and per model (``predictions``: name -> (energies (S,),
    forces (S, N, 3))) the signed energy errors and the force error on that hydrogen (norm of
    the difference, per state). ``forces`` is the label's, (N, S, 3) as stored."""
    h, heavy, distance = most_stretched_hydrogen(numbers, positions)
    out = {"hydrogen": h, "heavy_atom": heavy, "distance_A": round(distance, 4), "status": status}
    if status != "ok":
        return out | {"error": error}
    label_f = np.transpose(np.asarray(forces), (1, 0, 2))  # (S, N, 3)
    out["label_energies_eV"] = np.asarray(energies).tolist()
    out["models"] = {
        name: {
            "energy_error_eV": (np.asarray(e) - np.asarray(energies)).round(4).tolist(),
            "hydrogen_force_error_eV_per_A": np.linalg.norm(
                np.asarray(f)[:, h] - label_f[:, h], axis=-1
            )
            .round(4)
            .tolist(),
        }
        for name, (e, f) in predictions.items()
    }
    return out


def main(argv: list[str] | None = None) -> int:
    from fusionff.potential import Potential, model_tag

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("models", type=Path, nargs="+")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    # a training run's model.fff is named by its run directory
    names = [model_tag(m) for m in args.models]
    potentials = {n: Potential(m, device="cpu") for n, m in zip(names, args.models, strict=True)}
    rows = []
    with MultiStateDataset.open(args.data) as ds:
        for i in range(len(ds)):
            s = ds[i]
            predictions = {}
            if s.status == "ok":
                for name, p in potentials.items():
                    out = p.evaluate(s.numbers, np.asarray(s.positions)[None])
                    predictions[name] = (
                        out["energies"][0].double().numpy(),
                        out["forces"][0].double().numpy(),
                    )
            report = row_report(
                s.numbers, s.positions, s.status, s.energies, s.forces, s.error, predictions
            )
            rows.append({"row": i} | report)
            bond = f"H{report['hydrogen']}-{report['heavy_atom']}"
            line = f"row {i}: {bond} {report['distance_A']:.2f} A"
            if s.status != "ok":
                print(f"{line}: {s.status} ({s.error[:120]})")
                continue
            for name, m in report["models"].items():
                e, f = m["energy_error_eV"], m["hydrogen_force_error_eV_per_A"]
                line += f" | {name}: dE {e[0]:+.2f} / {e[1]:+.2f} eV, F(H) {f[0]:.2f} / {f[1]:.2f}"
            print(line)
    if args.json:
        args.json.write_text(json.dumps({"data": str(args.data), "rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
