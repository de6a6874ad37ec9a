"""Which R3 labels may sit on a higher SA-CASSCF solution? Labels far from the committee.

    OMP_NUM_THREADS=1 HDF5_USE_FILE_LOCKING=FALSE python data/stilbene/r3/branch_suspects.py \\
        data/stilbene/stilbene-r3-*.h5 --models potentials/stilbene-r3.fff \\
        potentials/stilbene-r3-partner.fff potentials/stilbene-r3-c12.fff [--min-residual 0.4]

A label converged on a higher solution than SA-CASSCF's lowest (al15 row 27: S1 1.32 eV too
high, twenty-second session) stands out where the committee, trained on its neighbours,
predicts the lower one: the label minus the committee's mean is large in one state while the
members agree. This prints every ok label whose residual exceeds ``--min-residual`` eV in any
state, with the members' spread, the label's start and whether a start failed, and the
residual quantiles over all labels. A suspect is only a suspect (an out-of-domain geometry,
a hydrogen leaving, the seam's cusp also give large residuals): ``start_path.py`` carries
solutions to it from its nearest neighbours and tells. Energies eV.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from fusionff.data.dataset import MultiStateDataset
from fusionff.potential import Potential


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("files", nargs="+", type=Path, help="R3 datasets (two states)")
    parser.add_argument("--models", nargs="+", required=True, help="committee files (*.fff)")
    parser.add_argument("--min-residual", type=float, default=0.4, help="eV")
    parser.add_argument("--out", type=Path, help="JSON of every label's residuals")
    args = parser.parse_args(argv)
    committee = Potential(args.models)
    rows = []
    for path in args.files:
        with MultiStateDataset.open(path) as dataset:
            if dataset.n_states != committee.n_states:
                print(f"{path}: {dataset.n_states} states, the committee {committee.n_states}: "
                      "left out")  # fmt: skip
                continue
            labelled = [(i, s) for i, s in enumerate(dataset) if s.status == "ok"]
        for k in range(0, len(labelled), 64):
            chunk = labelled[k : k + 64]
            outputs = committee.evaluate_structures(
                [np.asarray(s.numbers) for _, s in chunk],
                [np.asarray(s.positions) for _, s in chunk],
            )
            for (row, s), out in zip(chunk, outputs, strict=True):
                meta = s.meta or {}
                rows.append({
                    "file": str(path), "row": row,
                    "residual_eV": (np.asarray(s.energies) - out["energies"]).tolist(),
                    "spread_eV": np.asarray(out["energies_std"]).tolist(),
                    "start": meta.get("start"), "failed_start": meta.get("failed_start", ""),
                })  # fmt: skip
    residuals = np.abs([r["residual_eV"] for r in rows])
    print(f"{len(rows)} ok labels; |label - committee mean| per state, quantiles 50/90/99/max:")
    for state in range(residuals.shape[1]):
        q = np.quantile(residuals[:, state], [0.5, 0.9, 0.99, 1.0])
        print(f"  S{state}: " + " / ".join(f"{v:.3f}" for v in q) + " eV")
    print(f"labels off by more than {args.min_residual} eV in a state:")
    for r, a in zip(rows, residuals, strict=True):
        if a.max() > args.min_residual:
            failed = "  (a start failed)" if r["failed_start"] else ""
            print(f"  {r['file']}:{r['row']}  residual "
                  + " ".join(f"{v:+.3f}" for v in r["residual_eV"]) + "  spread "
                  + " ".join(f"{v:.3f}" for v in r["spread_eV"])
                  + f"  start {r['start']}{failed}")  # fmt: skip
    if args.out:
        args.out.write_text(json.dumps(rows, indent=0))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
