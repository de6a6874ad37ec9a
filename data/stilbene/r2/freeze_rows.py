"""Freeze rows of a growing queue file into a new dataset file (a training snapshot).

    HDF5_USE_FILE_LOCKING=FALSE python data/stilbene/r2/freeze_rows.py SRC START STOP DST

copies structures START..STOP-1 of SRC (labels, status, error and meta as stored; the file's
method and provenance, plus the source rows) into DST. A queue keeps appending to SRC while
models train; a run stores its files' SHA-256, so it trains on frozen copies, and a copy of
the rows added since the last snapshot is what lets a run extend its split (see
fusionff/train/split.py). Reading while the queue writes needs HDF5_USE_FILE_LOCKING=FALSE;
only committed rows (below the stored offsets) are read.
"""

from __future__ import annotations

import sys

from fusionff.data.dataset import MultiStateDataset


def freeze(src: str, start: int, stop: int, dst: str) -> int:
    """Copy rows ``start``..``stop - 1`` of ``src`` into the new file ``dst``; the row count."""
    with MultiStateDataset.open(src) as source:
        if not 0 <= start < stop <= len(source):
            raise ValueError(f"{src}: rows {start}..{stop - 1} asked for, it has {len(source)}")
        provenance = dict(source.provenance) | {"frozen_from": {"file": src, "rows": [start, stop]}}
        structures = [source[i] for i in range(start, stop)]
        with MultiStateDataset.create(
            dst, source.n_states, method=source.method, provenance=provenance
        ) as out:
            out.extend(structures)
    return stop - start


if __name__ == "__main__":
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    n = freeze(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
    print(f"{sys.argv[4]}: {n} structures")
