"""Compare relabelled structures with their old labels and write what training needs to
replace the wrong ones: an exclusion list of the old labels and a file of the new ones.

    HDF5_USE_FILE_LOCKING=FALSE python data/stilbene/r2/recheck_labels.py \
        data/stilbene/r2/recheck.xyz data/stilbene/stilbene-r2-recheck.h5 \
        --wrong data/stilbene/r2/wrong-labels.xyz \
        --corrections data/stilbene/r2/snapshot-8/stilbene-r2-corrections.h5 \
        --out data/stilbene/r2/recheck.json

``recheck.xyz`` holds the geometries with the old labels in their info lines (``source``,
``row``, ``E_S0_eV``, ``E_S1_eV``); the HDF5 file holds their new labels, made with both
starts screened (``fusionff label``'s default). An old label is wrong when the new one (an ok
label) has a state average (E_S0 + E_S1) / 2 lower by more than ``--tolerance`` eV (default
``AUDIT_TOLERANCE_EV``, 0.01, the audit's threshold too): SA-CASSCF minimises that average,
so the old one was a higher solution. For those:
the old label goes to ``--wrong`` (extended XYZ with ``energies``, the format of
``TrainConfig.exclude``) and the new one to ``--corrections`` (a dataset of those rows only,
provenance naming the source rows). Energies in eV.

Corrections already frozen in an earlier snapshot are not written again: ``--first-row K``
puts only the wrong labels of recheck rows K and later in ``--corrections`` (``--wrong``
always lists all of them). ``--pending FILE`` lists the old labels of the rows not yet
relabelled (same format, reason "suspect, not yet rechecked"), so a recipe can keep the
suspects out of training until their relabels come.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.io import read, write

from fusionff.data.dataset import MultiStateDataset
from fusionff.labeling.molcas import AUDIT_TOLERANCE_EV


def old_label(frame: Atoms, reason: str) -> Atoms:
    """The old label of a recheck frame in the exclusion format (energies in eV)."""
    info = frame.info
    return Atoms(
        numbers=frame.numbers,
        positions=frame.positions,
        info={
            "energies": [float(info["E_S0_eV"]), float(info["E_S1_eV"])],
            "source": info["source"],
            "row": int(info["row"]),
            "reason": reason,
        },
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("queue", type=Path, help="recheck.xyz (old labels in the info lines)")
    parser.add_argument("labels", type=Path, help="the new labels (HDF5)")
    parser.add_argument("--wrong", type=Path, required=True)
    parser.add_argument("--corrections", type=Path, required=True)
    parser.add_argument("--out", type=Path, help="JSON summary")
    parser.add_argument("--tolerance", type=float, default=AUDIT_TOLERANCE_EV, help="eV")
    parser.add_argument(
        "--first-row", type=int, default=0, help="corrections of recheck rows from here on only"
    )
    parser.add_argument("--pending", type=Path, help="old labels of the rows not relabelled yet")
    args = parser.parse_args(argv)

    frames = read(args.queue, ":")
    rows, wrong, kept = [], [], []
    with MultiStateDataset.open(args.labels) as new:
        n = min(len(new), len(frames))
        for k in range(n):
            info = frames[k].info
            old = np.array([info["E_S0_eV"], info["E_S1_eV"]])
            entry = new[k]
            row = {"recheck_row": k, "source": info["source"], "row": int(info["row"])}
            if entry.status != "ok":
                rows.append(row | {"verdict": "not relabelled", "error": entry.error})
                continue
            shift = np.asarray(entry.energies, dtype=float) - old
            average = float(shift.mean())
            row |= {"new_minus_old_eV": shift.round(4).tolist(), "average_shift_eV": average}
            if average < -args.tolerance:
                row["verdict"] = "old label was a higher SA-CASSCF solution"
                reason = f"higher SA-CASSCF solution; relabelled in {args.labels.name} row {k}"
                wrong.append(old_label(frames[k], reason))
                if k >= args.first_row:
                    kept.append((k, entry))
            else:
                row["verdict"] = "old label confirmed"
            rows.append(row)
        if kept:
            args.corrections.parent.mkdir(parents=True, exist_ok=True)
            provenance = dict(new.provenance) | {
                "corrections_of": [
                    {
                        "labels_row": k,
                        "source": frames[k].info["source"],
                        "row": int(frames[k].info["row"]),
                    }
                    for k, _ in kept
                ]
            }
            with MultiStateDataset.create(
                args.corrections, new.n_states, method=new.method, provenance=provenance
            ) as out:
                out.extend([entry for _, entry in kept])
    write(args.wrong, wrong, format="extxyz")
    if args.pending:
        reason = "suspect, not yet rechecked"
        pending = [old_label(frames[k], reason) for k in range(n, len(frames))]
        write(args.pending, pending, format="extxyz")
    summary = {
        "checked": n,
        "wrong": len(wrong),
        "confirmed": sum(r["verdict"] == "old label confirmed" for r in rows),
        "not_relabelled": sum(r["verdict"] == "not relabelled" for r in rows),
        "pending": len(frames) - n,
        "rows": rows,
    }
    if args.out:
        args.out.write_text(json.dumps(summary, indent=1) + "\n")
    print(
        f"{n} checked: {summary['wrong']} wrong (-> {args.wrong}, {args.corrections}), "
        f"{summary['confirmed']} confirmed, {summary['not_relabelled']} not relabelled"
    )
    for r in rows:
        print(" ", r["source"], r["row"], r.get("new_minus_old_eV"), r["verdict"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
