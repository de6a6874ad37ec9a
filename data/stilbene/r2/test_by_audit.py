"""Test-split errors of R2 potentials, grouped by what the label audit says of each test label.

    HDF5_USE_FILE_LOCKING=FALSE python data/stilbene/r2/test_by_audit.py \
        potentials/training/stilbene-r2-adiabatic-round6 data/stilbene/r2/audit.json \
        potentials/training/stilbene-r2-adiabatic-round6/model.fff \
        potentials/stilbene-r2-adiabatic.fff

Each test structure of the run's split (split.json: global rows over its data files) is matched
by geometry to ``audit.xyz``: *confirmed* (a fresh start's RASSCF found no lower solution),
*wrong* (the stored label is a higher SA-CASSCF solution and still in the split: errors are
given against it and, as *wrong->new*, against the audit's new one), *corrected* (the audit's
replacement label, same geometry, from a corrections file), *audit pending* (in the queue, not
yet reached), *not in audit* (labels the audit does not cover: active-learning round 5 and later,
corrections, probe frames). MAE per state and of the S1-S0 gap, meV; models in float32 as
stored, one CPU thread. ``audit.json`` is ``recheck_labels.py``'s output for the audit.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from ase.io import read

from fusionff.data.dataset import MultiStateDataset
from fusionff.potential import Potential

HERE = Path(__file__).resolve().parent
GROUPS = ("confirmed", "wrong", "corrected", "audit pending", "not in audit")


def test_structures(run: Path) -> list:
    """The test structures of a training run, in split order."""
    split = json.loads((run / "split.json").read_text())
    starts = np.cumsum([0] + [f["n_structures"] for f in split["files"]])
    opened, out = {}, []
    for i in split["test"]:
        k = int(np.searchsorted(starts, i, side="right") - 1)
        path = split["files"][k]["path"]
        if path not in opened:
            opened[path] = MultiStateDataset.open(path)
        out.append(opened[path][i - int(starts[k])])
    for ds in opened.values():
        ds.close()
    return out


def classify(structures, audit_xyz: Path, audit_json: Path):
    """Group name per structure, and the audit's new energies (eV) for the wrong ones."""
    frames = read(audit_xyz, ":")
    index = {np.round(a.positions, 5).tobytes(): k for k, a in enumerate(frames)}
    rows = {r["recheck_row"]: r for r in json.loads(audit_json.read_text())["rows"]}
    groups, new = [], []
    for s in structures:
        k = index.get(np.round(s.positions, 5).tobytes())
        row = rows.get(k) if k is not None else None
        verdict = row["verdict"] if row else ""
        if k is None:
            groups.append("not in audit")
        elif row is None or "not relabelled" in verdict:
            groups.append("audit pending")
        elif "higher" in verdict:
            info = frames[k].info
            old = np.array([info["E_S0_eV"], info["E_S1_eV"]], dtype=float)
            is_old = np.allclose(np.asarray(s.energies, dtype=float), old, rtol=0, atol=1e-6)
            groups.append("wrong" if is_old else "corrected")
        else:
            groups.append("confirmed")
        shift = row["new_minus_old_eV"] if groups[-1] == "wrong" else None
        new.append(None if shift is None else np.asarray(s.energies) + np.asarray(shift))
    return groups, new


def mae_line(name: str, err: np.ndarray) -> dict:
    gap = err[:, 1] - err[:, 0]
    row = {
        "n": len(err),
        "S0_meV": 1000 * float(np.abs(err[:, 0]).mean()),
        "S1_meV": 1000 * float(np.abs(err[:, 1]).mean()),
        "gap_meV": 1000 * float(np.abs(gap).mean()),
    }
    print(
        f"  {name:14s} n={row['n']:3d}  S0 {row['S0_meV']:6.1f}  S1 {row['S1_meV']:6.1f}"
        f"  gap {row['gap_meV']:6.1f} meV"
    )
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", type=Path, help="training run directory (its split.json)")
    parser.add_argument("audit_json", type=Path)
    parser.add_argument("models", type=Path, nargs="+")
    parser.add_argument("--audit-xyz", type=Path, default=HERE / "audit.xyz")
    parser.add_argument("--out", type=Path, help="write the table as JSON")
    args = parser.parse_args(argv)
    structures = test_structures(args.run)
    groups, new = classify(structures, args.audit_xyz, args.audit_json)
    labels = np.array([s.energies for s in structures])
    print({g: groups.count(g) for g in GROUPS})
    table = {}
    for model in args.models:
        out = Potential(str(model), device="cpu").evaluate_structures(
            [s.numbers for s in structures], [s.positions for s in structures]
        )
        err = np.array([o["energies"] for o in out]) - labels
        print(model)
        rows = {}
        for g in GROUPS:
            idx = [j for j, x in enumerate(groups) if x == g]
            if not idx:
                continue
            rows[g] = mae_line(g, err[idx])
            if g == "wrong":
                fixed = np.array([new[j] for j in idx])
                rows["wrong->new"] = mae_line("wrong->new", err[idx] + labels[idx] - fixed)
        rows["all"] = mae_line("all", err)
        table[str(model)] = rows
    if args.out:
        args.out.write_text(json.dumps({"run": str(args.run), "models": table}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
