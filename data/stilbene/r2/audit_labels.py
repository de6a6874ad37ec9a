"""Audit every R2 label of the queue files against a fresh start (resumable background queue).

    # once: the queue of labels to audit, most suspect first (S1 residual on MODEL)
    HDF5_USE_FILE_LOCKING=FALSE OMP_NUM_THREADS=1 python data/stilbene/r2/audit_labels.py \
        queue data/stilbene/r2/audit.xyz data/stilbene/stilbene-r2.h5 ... \
        --model potentials/stilbene-r2-adiabatic.fff --skip data/stilbene/r2/recheck.xyz
    # then, in the background, resumable like fusionff label:
    OMP_NUM_THREADS=1 nohup python data/stilbene/r2/audit_labels.py run \
        data/stilbene/r2/audit.xyz data/stilbene/stilbene-r2-audit.h5 >> label-audit.log 2>&1 &
    # and, as for the recheck, the exclusion list and the corrections:
    HDF5_USE_FILE_LOCKING=FALSE python data/stilbene/r2/recheck_labels.py \
        data/stilbene/r2/audit.xyz data/stilbene/stilbene-r2-audit.h5 --wrong ... --corrections ...

``queue`` writes the ok labels of the given queue files, less those listed in ``--skip``
files (the recheck's), as an extended XYZ in the recheck's format (``source``, ``row``,
``E_S0_eV``, ``E_S1_eV``); with ``--model``, ordered by the model's S1 residual (model -
label, eV), most negative first: the higher solutions found so far all had S1 too high.

``run`` audits them in that order with :class:`fusionff.labeling.audit.StoredLabelAudit`
(SA-2-CASSCF(2,2)/STO-3G with couplings, active atoms 0 and 13, as the queues): per label a
fresh start's RASSCF (about a third of a label's cost), and a new label only where its state
average is more than 10 meV lower. The output holds, row for row, the confirmed old label or
its replacement. The old labels are read from the files named in the XYZ (``source``, in
``data/stilbene/``).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.io import read, write

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from fusionff.data.dataset import MultiStateDataset  # noqa: E402
from fusionff.labeling.audit import StoredLabelAudit  # noqa: E402
from fusionff.labeling.molcas import MolcasCasscfBackend  # noqa: E402
from fusionff.labeling.runner import label  # noqa: E402

DATA = HERE.parent


def ok_labels(path: Path) -> list[tuple[int, object]]:
    """(row, Structure) of the labels of ``path`` with status ok and every energy finite."""
    out = []
    with MultiStateDataset.open(path) as ds:
        for row in range(len(ds)):
            s = ds[row]
            if s.status == "ok" and s.energies is not None and np.isfinite(s.energies).all():
                out.append((row, s))
    return out


def make_queue(args) -> int:
    from find_suspects import listed  # noqa: PLC0415 (a sibling script)

    skip = listed(args.skip)
    frames, order = [], []
    for path in args.labels:
        rows = [(r, s) for r, s in ok_labels(path) if (path.name, r) not in skip]
        if not rows:
            continue
        residual = np.zeros(len(rows))
        if args.model:
            from r2_probe_compare import model_energies  # noqa: PLC0415

            numbers = rows[0][1].numbers
            e = model_energies(args.model, numbers, np.array([s.positions for _, s in rows]))
            residual = e[:, 1] - np.array([s.energies[1] for _, s in rows])
        for (row, s), res in zip(rows, residual, strict=True):
            info = {
                "source": path.name,
                "row": row,
                "E_S0_eV": float(s.energies[0]),
                "E_S1_eV": float(s.energies[1]),
                "reasons": f"audit; S1 residual {res:+.3f} eV" if args.model else "audit",
            }
            frames.append(Atoms(numbers=s.numbers, positions=s.positions, info=info))
            order.append(res)
        print(f"{path.name}: {len(rows)} labels to audit")
    frames = [frames[k] for k in np.argsort(order, kind="stable")]
    write(args.queue, frames, format="extxyz")
    print(f"{len(frames)} labels -> {args.queue}")
    return 0


def run(args) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    frames = read(args.queue, ":")
    stored = []
    for source in sorted({str(f.info["source"]) for f in frames}):
        path = args.data / source
        if not path.exists():
            raise FileNotFoundError(f"{args.queue} names source {source}: no file {path}")
        stored += [s for _, s in ok_labels(path)]
    backend = MolcasCasscfBackend((0, 13), couplings=True)
    audit = StoredLabelAudit(backend, stored)
    label(frames, audit, 2, args.out, workers=args.workers)
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    q = sub.add_parser("queue", help="write the audit queue (extended XYZ)")
    q.add_argument("queue", type=Path)
    q.add_argument("labels", type=Path, nargs="+", help="queue files (HDF5)")
    q.add_argument("--model", type=Path, help="order by this model's S1 residual")
    q.add_argument("--skip", type=Path, action="append", default=[])
    r = sub.add_parser("run", help="audit the queue's labels (resumes)")
    r.add_argument("queue", type=Path)
    r.add_argument("out", type=Path)
    r.add_argument("--data", type=Path, default=DATA, help="folder of the source files")
    r.add_argument("--workers", type=int, default=1)
    args = parser.parse_args(argv)
    return make_queue(args) if args.command == "queue" else run(args)


if __name__ == "__main__":
    raise SystemExit(main())
