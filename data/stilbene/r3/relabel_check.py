"""Did a relabelling find another SA-CASSCF solution? Each relabelled structure against the label
it was made from.

    HDF5_USE_FILE_LOCKING=FALSE python data/stilbene/r3/relabel_check.py \\
        data/stilbene/r3/recheck25.xyz data/stilbene/stilbene-r3-recheck25.h5 \\
        --json data/stilbene/r3/recheck25-check.json

A relabelling queue (``recheck25.xyz``: labels whose fresh start had crashed, relabelled once
the fresh start retries its SCF with Fermi aufbau) names in each frame's info the label it
repeats (``source``: an HDF5 file, ``source_row``: its row); a relabelled row names its frame in
meta (``source_index``: rows are stored in the order they finished). For every row that is
``ok`` this prints the stored and the new energies (eV), the difference of their state
averages (new minus stored; SA-CASSCF minimises the state average, so a new average lower by
more than ``--tolerance`` means the stored label sits on a higher solution), the new label's
start (``fresh``, ``followed``, ``second neighbour``), how its RHF was obtained and whether
its fresh start failed again, and a
verdict: ``lower`` (the stored label is on a higher solution: leave it out of training and
train the new row instead), ``same`` or ``higher`` (the relabel landed higher: keep the stored
label). Frames not labelled yet are counted, not judged.

``--exclude-out FILE`` writes the stored labels judged ``lower`` as a label list for a training
config's ``exclude`` (atoms, positions in Angstrom and the stored ``energies`` in eV, with the
file, row and reason), so that the next snapshot trains the new row in their place::

    HDF5_USE_FILE_LOCKING=FALSE python data/stilbene/r3/relabel_check.py \\
        data/stilbene/r3/recheck25.xyz data/stilbene/stilbene-r3-recheck25.h5 \\
        --exclude-out data/stilbene/r3/recheck25-higher-solution-labels.xyz
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from ase.io import read

from fusionff.data.dataset import MultiStateDataset

DEFAULT_TOLERANCE_EV = 0.01
"""eV; state averages closer than this are the same solution (the labels' exact-integral
relaxation from their screened starts is a few meV)."""


def verdict(difference_ev: float, tolerance_ev: float = DEFAULT_TOLERANCE_EV) -> str:
    """``lower``, ``same`` or ``higher`` for a new-minus-stored state-average difference (eV)."""
    if difference_ev < -tolerance_ev:
        return "lower"
    if difference_ev > tolerance_ev:
        return "higher"
    return "same"


def compare(queue: Path, relabelled: Path, tolerance_ev: float = DEFAULT_TOLERANCE_EV) -> dict:
    """Rows of the comparison (see the module docstring) and the count of frames not labelled
    yet; refuses a frame without ``source`` / ``source_row``."""
    frames = read(queue, index=":")
    with MultiStateDataset.open(relabelled) as new:
        labels = list(new)
    sources: dict[str, MultiStateDataset] = {}
    rows = []
    try:
        for k, label in enumerate(labels):
            # rows are stored in the order they finished; meta names the queue frame
            frame = int(label.meta.get("source_index", k))
            info = frames[frame].info
            if "source" not in info or "source_row" not in info:
                raise ValueError(f"{queue} frame {frame}: no source / source_row in its info line")
            source, source_row = str(info["source"]), int(info["source_row"])
            if source not in sources:
                sources[source] = MultiStateDataset.open(source)
            stored = sources[source][source_row]
            row = {"row": k, "source": f"{source}:{source_row}", "status": label.status}
            if label.status != "ok" or stored.status != "ok":
                rows.append(row)
                continue
            difference = float(np.mean(label.energies) - np.mean(stored.energies))
            rows.append(
                row
                | {
                    "stored_eV": np.asarray(stored.energies).tolist(),
                    "new_eV": np.asarray(label.energies).tolist(),
                    "state_average_difference_eV": difference,
                    "start": label.meta.get("start", ""),
                    "rhf": label.meta.get("rhf", ""),
                    "fresh_failed": "fresh" in label.meta.get("failed_start", ""),
                    "verdict": verdict(difference, tolerance_ev),
                }
            )
    finally:
        for dataset in sources.values():
            dataset.close()
    return {
        "rows": rows,
        "not_labelled_yet": len(frames) - len(labels),
        "tolerance_eV": tolerance_ev,
    }


def write_exclusions(result: dict, relabelled: Path, path: Path) -> int:
    """Write the stored labels of the ``lower`` rows of ``result`` (from :func:`compare`) to
    ``path`` as an exclude list (extended XYZ: positions in Angstrom, info ``energies`` in eV,
    ``source``, ``row``, ``reason``); returns how many. Writes nothing when there are none."""
    from ase import Atoms
    from ase.io import write

    frames = []
    for r in result["rows"]:
        if r.get("verdict") != "lower":
            continue
        source, source_row = r["source"].rsplit(":", 1)
        with MultiStateDataset.open(source) as stored_file:
            stored = stored_file[int(source_row)]
        atoms = Atoms(numbers=stored.numbers, positions=stored.positions)
        atoms.info = {
            "energies": np.asarray(stored.energies, dtype=float).tolist(),
            "source": Path(source).name,
            "row": int(source_row),
            "reason": (
                f"on a higher SA-CASSCF solution: {relabelled} row {r['row']} repeats it "
                f"{-r['state_average_difference_eV']:.4f} eV lower in the state average"
            ),
        }
        frames.append(atoms)
    if frames:
        path.parent.mkdir(parents=True, exist_ok=True)
        write(path, frames, format="extxyz")
    return len(frames)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("queue", type=Path, help="the relabelling queue (xyz)")
    parser.add_argument("relabelled", type=Path, help="its labels (HDF5)")
    parser.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE_EV, help="eV")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    parser.add_argument(
        "--exclude-out",
        type=Path,
        help="write the stored labels judged 'lower' here, as a training config's exclude list",
    )
    args = parser.parse_args(argv)
    result = compare(args.queue, args.relabelled, args.tolerance)
    for r in result["rows"]:
        if r["status"] != "ok":
            print(f"row {r['row']:3d} {r['source']}: {r['status']}")
            continue
        start = r["start"] + (f" ({r['rhf']})" if r["rhf"] else "")
        print(
            f"row {r['row']:3d} {r['source']}: stored {np.round(r['stored_eV'], 3).tolist()} "
            f"new {np.round(r['new_eV'], 3).tolist()} "
            f"average {r['state_average_difference_eV']:+.4f} eV  start {start}"
            f"{'  fresh start failed' if r['fresh_failed'] else ''}  {r['verdict']}"
        )
    counts = {
        v: sum(r.get("verdict") == v for r in result["rows"]) for v in ("lower", "same", "higher")
    }
    print(
        f"{counts}; failed {sum(r['status'] != 'ok' for r in result['rows'])}; "
        f"not labelled yet {result['not_labelled_yet']}"
    )
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    if args.exclude_out:
        n = write_exclusions(result, args.relabelled, args.exclude_out)
        print(f"{n} stored label(s) to exclude" + (f": {args.exclude_out}" if n else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
