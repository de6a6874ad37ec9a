"""Reference R2 labels against R2 potentials, structure by structure, with the geometry that
matters for the seam: central dihedral, the smaller central-carbon angle sum and the C1/C2
distance to their phenyl carbons.

For each labelled structure of ``LABELS.h5`` (those with both energies) the reference S1-S0
gap and each model's gap (eV), and per model the MAE of the gap and of both state energies
after removing the mean offset of each state over the file (absolute energies of a potential
and of the reference differ by a constant per state only if the model fits; the offset is
reported too). Energies in eV, angles in degrees::

    python data/stilbene/r2_probe_compare.py data/stilbene/stilbene-r2-seam-probe.h5 \
        potentials/stilbene-r2-adiabatic.fff --out data/stilbene/r2/seam-probe.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import h5py
import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from r2_crossing import describe_geometry  # noqa: E402

from fusionff.calculator import FusionCalculator  # noqa: E402
from fusionff.models.io import load_model  # noqa: E402


def read_labels(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[int]]:
    """(numbers (N,), positions (K, N, 3) Angstrom, energies (K, 2) eV, rows) of the ok
    entries of a stilbene label file (status "ok", both energies labelled and finite)."""
    with h5py.File(path, "r") as f:
        energies = f["energies"][()]
        mask = f["energy_mask"][()]
        status = [s.decode() if isinstance(s, bytes) else str(s) for s in f["status"][()]]
        offsets = f["offsets"][()]
        positions = f["positions"][()]
        numbers = f["numbers"][()]
    rows = [
        i
        for i in range(len(energies))
        if status[i] == "ok" and mask[i].all() and np.isfinite(energies[i]).all()
    ]
    starts = offsets[:-1] if len(offsets) == len(energies) + 1 else offsets
    n = int(starts[1] - starts[0]) if len(starts) > 1 else len(positions)
    pos = np.array([positions[int(starts[i]) : int(starts[i]) + n] for i in rows])
    return numbers[:n], pos, energies[rows], rows


def model_energies(model: Path, numbers: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """(K, 2) eV: the model's state energies, float64, on CPU."""
    from ase import Atoms

    calc = FusionCalculator(load_model(model, device="cpu").double(), device="cpu")
    out = []
    for p in positions:
        atoms = Atoms(numbers=numbers, positions=p)
        calc.calculate(atoms, ["energy"])
        out.append(np.asarray(calc.results["energies"], dtype=float)[:2])
    return np.array(out)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("labels", type=Path)
    parser.add_argument("models", type=Path, nargs="+")
    parser.add_argument("--out", type=Path, help="write the table and summary as JSON")
    args = parser.parse_args(argv)

    numbers, positions, ref, rows = read_labels(args.labels)
    if not rows:
        print(f"{args.labels}: no structure with both energies")
        return 1
    geometry = []
    for p in positions:
        d = describe_geometry(p)
        c1_ph = float(np.linalg.norm(p[0] - p[2]))
        c2_ph = float(np.linalg.norm(p[13] - p[15]))
        geometry.append(
            {
                "twist_deg": abs(d["dihedral_deg"]),
                "min_angle_sum_deg": min(d["angle_sum_C1_deg"], d["angle_sum_C2_deg"]),
                "C1_C2_A": float(np.linalg.norm(p[0] - p[13])),
                "max_C_phenyl_A": max(c1_ph, c2_ph),
                "H_to_other_central_carbon_A": d["H_to_other_central_carbon_A"],
            }
        )
    ref_gap = ref[:, 1] - ref[:, 0]
    summary: dict = {"labels": str(args.labels), "n": len(rows), "models": {}}
    per_model = {}
    for model in args.models:
        e = model_energies(model, numbers, positions)
        gap = e[:, 1] - e[:, 0]
        offset = (e - ref).mean(axis=0)
        summary["models"][str(model)] = {
            "gap_mae_eV": float(np.abs(gap - ref_gap).mean()),
            "gap_mean_error_eV": float((gap - ref_gap).mean()),
            "energy_mae_after_offset_eV": np.abs(e - ref - offset).mean(axis=0).tolist(),
            "offset_eV": offset.tolist(),
        }
        per_model[str(model)] = gap
    summary["reference_gap_eV"] = {
        "min": float(ref_gap.min()),
        "median": float(np.median(ref_gap)),
        "below_0.5": int((ref_gap < 0.5).sum()),
        "below_1": int((ref_gap < 1.0).sum()),
    }
    table = []
    names = [m.stem for m in args.models]
    header = f"{'row':>4} {'twist':>6} {'angsum':>6} {'C1C2':>5} {'CPh':>5} {'ref gap':>8} "
    print(header + " ".join(f"{n[-14:]:>14}" for n in names))
    for k, row in enumerate(rows):
        g = geometry[k]
        entry = {"row": row, **g, "reference_gap_eV": float(ref_gap[k])}
        entry["model_gap_eV"] = {m: float(v[k]) for m, v in per_model.items()}
        table.append(entry)
        print(
            f"{row:4d} {g['twist_deg']:6.1f} {g['min_angle_sum_deg']:6.1f} {g['C1_C2_A']:5.2f} "
            f"{g['max_C_phenyl_A']:5.2f} {ref_gap[k]:8.3f} "
            + " ".join(f"{v[k]:14.3f}" for v in per_model.values())
        )
    print(json.dumps(summary, indent=1))
    if args.out:
        args.out.write_text(json.dumps({"summary": summary, "structures": table}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
