"""Are the models worse where the third state comes near S1? Errors beside SA-3's S2 - S1.

    HDF5_USE_FILE_LOCKING=FALSE python data/stilbene/r3/third_state_errors.py MODEL [MODEL ...] \\
        --rows FILE[:START-STOP] [--rows ...] [--split RUN_DIR[:SUBSET]] \\
        [--alias LABELS.h5=QUEUE.xyz ...] \\
        [--probe data/stilbene/r3/third-state-probe.json] [--near 0.5] [--json OUT]

For every ok row of the labelled R3 files (SA-2-CASSCF(2,2)/6-31G) that the third-state probe
(``third_state_probe.py``) has an SA-3 point for, the model's (or the committee's mean) errors:
S0 and S1 energies (predicted minus label, as they stand: no offset removed), the S1 - S0 gap,
and each state's force MAE (mean over atoms and components), beside SA-3's S2 - S1 there. Then
the same errors averaged over the rows with S2 within ``--near`` eV of S1 and over the rest.
Where a cusp of SA-2's S1 (an S1/S2 crossing seen from a two-state average) is what the models
miss, the near rows carry the larger S1 error. A probe point is found by the label file's name
and row ("stilbene-r3-barrier.h5:3"); ``--alias`` names the queue a label file was made from
when the probe was run on the queue's frames ("s1-frames-seed6.xyz:3" for row 3 of
``stilbene-r3-s1frames.h5``: a queue's row i is its frame i). Units: eV, eV/Angstrom.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]
from third_state_probe import labelled_rows, split_specs  # noqa: E402
from worst_structures import structure_errors  # noqa: E402

PROBE = HERE / "third-state-probe.json"


def probe_key(label_file: str, row: int, aliases: dict[str, str]) -> str:
    """The probe's name of row ``row`` of ``label_file``: its file name (or the alias of that
    name, the queue it was labelled from) and the row."""
    name = Path(label_file).name
    return f"{aliases.get(name, name)}:{row}"


def row_errors(models: list[str], specs: list[str], points: dict, aliases: dict) -> list[dict]:
    """Errors of ``models`` (their mean, for more than one) on each ok labelled row of
    ``specs`` (``FILE[:START-STOP]``) that has an SA-3 point in ``points`` (the probe's
    ``points``; failed probe points are skipped)."""
    import torch
    from ase import Atoms

    from fusionff.calculator import FusionCalculator

    torch.set_num_threads(1)
    calc = FusionCalculator(models if len(models) > 1 else models[0], device="cpu")
    rows = []
    for spec in specs:
        for path, i, entry in labelled_rows(spec):
            key = probe_key(path, i, aliases)
            point = points.get(key, {})
            if "E_eV" not in point:
                continue
            calc.calculate(Atoms(entry.numbers, entry.positions))
            errors = structure_errors(
                calc.results["energies"], calc.results["state_forces"], entry.energies, entry.forces
            )
            sa3 = point["E_eV"]
            rows.append(
                {
                    "label": f"{Path(path).name}:{i}",
                    "probe": key,
                    "dihedral_deg": point.get("dihedral_deg"),
                    "sa3_gap21_eV": sa3[2] - sa3[1],
                    "reference_gap_eV": errors["reference_gap"],
                    "energy_error_eV": errors["energy_error"],
                    "gap_error_eV": errors["energy_error"][1] - errors["energy_error"][0],
                    "force_mae_eV_A": errors["force_mae"],
                    "atom_force_mae_eV_A": errors["atom_force_mae"],
                }
            )
    return rows


def group_means(rows: list[dict], near_eV: float) -> dict[str, dict]:
    """Mean absolute errors over the rows with S2 - S1 below ``near_eV`` ("near") and the rest
    ("far"): count, |S0| and |S1| energy error, |gap| error (eV), S0 and S1 force MAE (eV/A),
    and the four atoms with the largest S1 force MAE over the group as (index, S0, S1) eV/A."""
    out = {}
    for group, keep in (("near", True), ("far", False)):
        chosen = [r for r in rows if (r["sa3_gap21_eV"] < near_eV) == keep]
        if not chosen:
            out[group] = {"n": 0}
            continue
        energy = np.abs([r["energy_error_eV"] for r in chosen]).mean(axis=0)
        force = np.mean([r["force_mae_eV_A"] for r in chosen], axis=0)
        atoms = np.mean([r["atom_force_mae_eV_A"] for r in chosen], axis=0)  # (S, N)
        worst = np.argsort(-atoms[1])[:4]
        out[group] = {
            "n": len(chosen),
            "S0_energy_mae_eV": float(energy[0]),
            "S1_energy_mae_eV": float(energy[1]),
            "gap_mae_eV": float(np.mean([abs(r["gap_error_eV"]) for r in chosen])),
            "S0_force_mae_eV_A": float(force[0]),
            "S1_force_mae_eV_A": float(force[1]),
            "worst_S1_atoms": [(int(i), float(atoms[0, i]), float(atoms[1, i])) for i in worst],
        }
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("models", nargs="+", help="model files (.fff); more than one: a committee")
    parser.add_argument("--rows", action="append", default=[], help="FILE[:START-STOP]")
    parser.add_argument(
        "--split", action="append", default=[], metavar="RUN_DIR[:SUBSET]",
        help="the rows of a training run's split (default subset: test), as --rows",
    )  # fmt: skip
    parser.add_argument("--alias", action="append", default=[], help="LABELS.h5=QUEUE.xyz")
    parser.add_argument("--probe", type=Path, default=PROBE)
    parser.add_argument("--near", type=float, default=0.5, help="eV")
    parser.add_argument("--json", type=Path, help="also write every row's errors here")
    args = parser.parse_args(argv)
    aliases = {}
    for alias in args.alias:
        label, sep, queue = alias.partition("=")
        if not sep or not label or not queue:
            parser.error(f"--alias {alias!r}: expected LABELS.h5=QUEUE.xyz")
        aliases[Path(label).name] = Path(queue).name
    args.rows += [row for spec in args.split for row in split_specs(spec)]
    if not args.rows:
        parser.error("give --rows or --split")
    points = json.loads(args.probe.read_text())["points"]
    rows = row_errors(args.models, args.rows, points, aliases)
    if not rows:
        print("no labelled row has an SA-3 point in the probe")
        return 1
    print("label  dihedral  S2-S1 (SA-3)  gap (R3)  dE S0 / S1  d gap  force MAE S0 / S1")
    for r in sorted(rows, key=lambda r: r["sa3_gap21_eV"]):
        e, f = r["energy_error_eV"], r["force_mae_eV_A"]
        print(
            f"{r['label']}  {r['dihedral_deg']:6.1f}  {r['sa3_gap21_eV']:6.3f}  "
            f"{r['reference_gap_eV']:6.3f}  {e[0]:+.3f} / {e[1]:+.3f}  {r['gap_error_eV']:+.3f}"
            f"  {f[0]:.3f} / {f[1]:.3f}"
        )
    groups = group_means(rows, args.near)
    for name, g in groups.items():
        if g["n"] == 0:
            print(f"{name}: no rows")
            continue
        print(
            f"{name} (S2-S1 {'<' if name == 'near' else '>='} {args.near} eV): {g['n']} rows; "
            f"|dE| S0 / S1 {g['S0_energy_mae_eV']:.3f} / {g['S1_energy_mae_eV']:.3f} eV, "
            f"|d gap| {g['gap_mae_eV']:.3f} eV, force MAE {g['S0_force_mae_eV_A']:.3f} / "
            f"{g['S1_force_mae_eV_A']:.3f} eV/A; worst S1 atoms (index: S0 / S1 eV/A) "
            + ", ".join(f"{i}: {a:.3f} / {b:.3f}" for i, a, b in g["worst_S1_atoms"])
        )
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "groups": groups}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
