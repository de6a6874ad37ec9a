"""List R2 labels that may be a higher SA-CASSCF solution, for the recheck queue.

    HDF5_USE_FILE_LOCKING=FALSE python data/stilbene/r2/find_suspects.py MODEL.fff \
        data/stilbene/stilbene-r2.h5 data/stilbene/stilbene-r2-al1.h5 ... \
        --below -0.1 --skip data/stilbene/r2/recheck.xyz --append data/stilbene/r2/recheck.xyz

A higher solution raises S1 far more than S0 (0.06-2.10 eV against 0.00-0.12 eV in the
recheck, ``README.md``), so a label whose S1 lies well above a model trained on the rest is a
suspect: S1 residual = model S1 - label S1 (eV) below ``--below``. Every ok label of the
queue files (rows as the queues number them) is evaluated; labels already listed in a
``--skip`` file (``source`` and ``row`` in the info lines) are left out. ``--append`` adds the
new suspects to a recheck queue input in its format (old labels as ``E_S0_eV``/``E_S1_eV``,
``reasons``), most negative residual first; the queue labels appended rows when resumed.
Prints the residual distribution per file.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ase import Atoms
from ase.io import read, write

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from r2_probe_compare import model_energies, read_labels  # noqa: E402


def listed(paths: list[Path]) -> set[tuple[str, int]]:
    """(source, row) of the frames in recheck-format xyz files."""
    out = set()
    for path in paths:
        if path.exists():
            for frame in read(path, ":"):
                out.add((str(frame.info["source"]), int(frame.info["row"])))
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("labels", type=Path, nargs="+", help="queue files (HDF5)")
    parser.add_argument("--below", type=float, default=-0.1, help="S1 residual threshold, eV")
    parser.add_argument("--skip", type=Path, action="append", default=[])
    parser.add_argument("--append", type=Path, help="recheck queue input to extend")
    parser.add_argument("--out", type=Path, help="JSON: per-file counts and the suspects")
    args = parser.parse_args(argv)
    if args.below >= 0:
        parser.error(f"--below must be negative (eV), got {args.below}")

    skip = listed(args.skip)
    suspects, files = [], {}
    for path in args.labels:
        numbers, positions, ref, rows = read_labels(path)
        if not rows:
            files[path.name] = {"ok": 0}
            continue
        e = model_energies(args.model, numbers, positions)
        residual = e - ref
        s1 = residual[:, 1]
        new = [
            k for k in range(len(rows)) if s1[k] < args.below and (path.name, rows[k]) not in skip
        ]
        files[path.name] = {
            "ok": len(rows),
            "mean_residual_eV": residual.mean(axis=0).round(4).tolist(),
            "s1_residual_below": int((s1 < args.below).sum()),
            "s1_residual_above_minus": int((s1 > -args.below).sum()),
            "new_suspects": len(new),
        }
        print(path.name, files[path.name])
        for k in new:
            suspects.append(
                {
                    "source": path.name,
                    "row": int(rows[k]),
                    "s1_residual_eV": float(s1[k]),
                    "s0_residual_eV": float(residual[k, 0]),
                    "energies_eV": ref[k].tolist(),
                    "numbers": numbers,
                    "positions": positions[k],
                }
            )
    suspects.sort(key=lambda s: s["s1_residual_eV"])
    print(f"{len(suspects)} new suspects (S1 residual below {args.below} eV, not in --skip)")
    if args.append and suspects:
        frames = read(args.append, ":") if args.append.exists() else []
        reason = f"{args.model.parent.name or args.model.stem} S1 residual below {args.below} eV"
        for s in suspects:
            frames.append(
                Atoms(
                    numbers=s["numbers"],
                    positions=s["positions"],
                    info={
                        "source": s["source"],
                        "row": s["row"],
                        "E_S0_eV": s["energies_eV"][0],
                        "E_S1_eV": s["energies_eV"][1],
                        "reasons": reason,
                    },
                )
            )
        write(args.append, frames, format="extxyz")
        print(f"appended to {args.append}: now {len(frames)} frames")
    if args.out:
        table = [
            {k: v for k, v in s.items() if k not in ("numbers", "positions")} for s in suspects
        ]
        args.out.write_text(
            json.dumps(
                {
                    "model": str(args.model),
                    "below_eV": args.below,
                    "files": files,
                    "suspects": table,
                },
                indent=1,
            )
            + "\n"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
