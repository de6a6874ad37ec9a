"""Is a third state near S1? The same structures labelled with two state averages, row by row.

    HDF5_USE_FILE_LOCKING=FALSE python data/stilbene/r3/state_average_probe.py \\
        data/stilbene/stilbene-r3-recheck4.h5 data/stilbene/stilbene-r3sa3-recheck4.h5

FEWER and MORE are labels of the same queue (row i of one is row i of the other; positions
are checked) with fewer and more states averaged, e.g. SA-2 and SA-3-CASSCF(2,2)
(``fusionff label --n-states 3``). Per row: the S1-S0 gap of both, S2-S1 of the larger
average, and how much the larger average moves S1 relative to S0. Then, for each pair of rows
(a < b), each level's S1-S0 change between them: where a state outside the smaller average
passes S1, the smaller average's S1 bends and the two levels' changes differ. Units: eV.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from fusionff.data.dataset import MultiStateDataset

sys.path.insert(0, str(Path(__file__).resolve().parent))
from label_consistency import superpose  # noqa: E402  (a sibling script)


def read(path: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Positions (K, N, 3), energies (K, S) (NaN where a row failed) and status per row."""
    positions, energies, status = [], [], []
    with MultiStateDataset.open(path) as ds:
        for i in range(len(ds)):
            entry = ds[i]
            positions.append(entry.positions)
            ok = entry.status == "ok" and entry.energies is not None
            energies.append(entry.energies if ok else np.full(ds.n_states, np.nan))
            status.append(entry.status)
    return np.array(positions), np.array(energies, dtype=float), status


def compare(fewer: np.ndarray, more: np.ndarray) -> dict[str, np.ndarray]:
    """Row quantities from energies (K, S) and (K, S') with S' > S >= 2: gaps and S1's shift."""
    if more.shape[1] <= fewer.shape[1] or fewer.shape[1] < 2:
        raise ValueError(
            f"need 2 <= states of FEWER ({fewer.shape[1]}) < states of MORE ({more.shape[1]})"
        )
    gap_fewer = fewer[:, 1] - fewer[:, 0]
    gap_more = more[:, 1] - more[:, 0]
    return {
        "gap_fewer": gap_fewer,
        "gap_more": gap_more,
        "gap_above": more[:, fewer.shape[1]] - more[:, fewer.shape[1] - 1],
        "s1_shift": gap_more - gap_fewer,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("fewer", help="labels with the smaller state average (HDF5)")
    parser.add_argument("more", help="the same structures with the larger one (HDF5)")
    args = parser.parse_args(argv)
    xa, ea, sa = read(args.fewer)
    xb, eb, sb = read(args.more)
    n = min(len(xa), len(xb))
    if n == 0:
        raise SystemExit("no rows to compare")
    worst = float(np.abs(xa[:n] - xb[:n]).max())
    if worst > 1e-6:
        raise SystemExit(f"{args.fewer} and {args.more}: positions differ by {worst:.3g} A")
    rows = compare(ea[:n], eb[:n])
    top = eb.shape[1] - 1
    print(f"row  S1-S0 ({ea.shape[1]} states)  S1-S0 ({eb.shape[1]})  S{top}-S{top - 1}  S1 shift")
    for i in range(n):
        print(
            f"{i:3d}  {rows['gap_fewer'][i]:17.3f}  {rows['gap_more'][i]:12.3f}  "
            f"{rows['gap_above'][i]:7.3f}  {rows['s1_shift'][i]:+8.3f}"
            + ("" if sa[i] == sb[i] == "ok" else f"  ({sa[i]} / {sb[i]})")
        )
    print("pair (RMSD)  change of S1-S0 between them: fewer  more  difference (pairs below 0.3 A)")
    for a in range(n):
        for b in range(a + 1, n):
            da = rows["gap_fewer"][b] - rows["gap_fewer"][a]
            db = rows["gap_more"][b] - rows["gap_more"][a]
            _, rmsd = superpose(xa[a], xa[b])
            if rmsd < 0.3:
                print(f"{a}-{b} ({rmsd:.2f} A)  {da:+.3f}  {db:+.3f}  {db - da:+.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
