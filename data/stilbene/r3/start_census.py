"""On which starts does each R3 label rest? A census of the labels' meta, and a recheck queue.

A CASSCF label records how it was reached (``fusionff.labeling.molcas``): the starts whose
state averages were screened (meta ``screen_state_averages_eV`` with RICD screens,
``state_averages_eV`` with exact ones: ``followed``, ``fresh``, ``second neighbour``), the one
kept (``start``) and a start that failed (``failed_start``). A label screened from one start
alone can sit on a higher SA-CASSCF solution that the other start would have found (al15 row
27, al17 row 41, transfer row 592: data/stilbene/r3/README.md). This prints, over the ok
labels of the queue files given, how many rest on which starts, and lists the labels that
rest on followed orbitals alone after a failed fresh start::

    HDF5_USE_FILE_LOCKING=FALSE python data/stilbene/r3/start_census.py \\
        data/stilbene/stilbene-r3-*.h5 --skip data/stilbene/r3/recheck25.xyz \\
        --known data/stilbene/stilbene-r3-al15.h5:27 data/stilbene/stilbene-r3-fix22.h5:0 \\
        data/stilbene/stilbene-r3-fix25.h5:0 --queue data/stilbene/r3/recheck26.xyz

``--skip`` names recheck queues already made (their frames' ``source`` / ``source_row`` are
left out), ``--known`` single labels already settled (FILE:ROW); ``--queue`` writes the rest
as a relabelling queue (positions in Angstrom, info ``source``, ``source_row``, ``reason``),
to label with the queue command of data/stilbene/r3/README.md and compare with
``relabel_check.py``. Files whose name holds ``sa3`` or ``recheck`` (other levels, checks)
are passed over.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

from ase import Atoms
from ase.io import read, write

from fusionff.data.dataset import MultiStateDataset

REASON = (
    "stored label rests on followed orbitals alone (its fresh start failed and no other start "
    "was screened); relabelled to check its solution"
)


def basis(meta: dict) -> tuple[bool, tuple[str, ...], str]:
    """(fresh start failed, the starts screened in sorted order, the start kept) of a label."""
    screened = meta.get("screen_state_averages_eV") or meta.get("state_averages_eV") or {}
    failed = "fresh" in str(meta.get("failed_start", ""))
    return failed, tuple(sorted(screened)), str(meta.get("start", ""))


def rests_on_followed_alone(meta: dict) -> bool:
    """True for a label kept from followed orbitals, no other start screened, its fresh start
    failed."""
    failed, screened, start = basis(meta)
    return failed and start == "followed" and screened in ((), ("followed",))


def census(
    files: list[Path], skip: set[tuple[str, int]] = frozenset()
) -> tuple[Counter, list[tuple[str, int, Atoms]]]:
    """Counts of :func:`basis` over the ok labels of ``files``, and the labels (file, row,
    atoms) that rest on followed orbitals alone, less those in ``skip``."""
    counts: Counter = Counter()
    alone = []
    for path in files:
        if "sa3" in path.name or "recheck" in path.name:
            continue
        with MultiStateDataset.open(path) as data:
            for row in range(len(data)):
                label = data[row]
                if label.status != "ok":
                    continue
                counts[basis(label.meta)] += 1
                if rests_on_followed_alone(label.meta) and (str(path), row) not in skip:
                    atoms = Atoms(numbers=label.numbers, positions=label.positions)
                    alone.append((str(path), row, atoms))
    return counts, alone


def _known(text: str) -> tuple[str, int]:
    path, _, row = text.rpartition(":")
    if not path or not row.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r}: expected FILE:ROW")
    return path, int(row)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", type=Path, nargs="+", help="R3 label files (HDF5)")
    parser.add_argument("--skip", type=Path, nargs="*", default=[], help="recheck queues made")
    parser.add_argument("--known", type=_known, nargs="*", default=[], help="FILE:ROW settled")
    parser.add_argument("--queue", type=Path, help="write the labels to recheck here (xyz)")
    args = parser.parse_args(argv)
    skip = set(args.known)
    for queue in args.skip:
        for k, frame in enumerate(read(queue, index=":")):
            if "source" not in frame.info or "source_row" not in frame.info:
                parser.error(f"--skip {queue} frame {k}: no source / source_row in its info line")
            skip.add((str(frame.info["source"]), int(frame.info["source_row"])))
    counts, alone = census(sorted(args.files), skip)
    print(f"{sum(counts.values())} ok labels; (fresh start failed, starts screened, kept):")
    for key, n in counts.most_common():
        print(f"  {n:5d}  {key}")
    print(f"{len(alone)} rest on followed orbitals alone after a failed fresh start (not skipped):")
    for path, row, _ in alone:
        print(f"  {path}:{row}")
    if args.queue and alone:
        frames = []
        for path, row, atoms in alone:
            atoms.info = {"source": path, "source_row": row, "reason": REASON}
            frames.append(atoms)
        write(args.queue, frames, format="extxyz")
        print(f"wrote {args.queue}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
