"""Active-learning round 14's queue: frames of the showcase run with small model gaps.

    python data/stilbene/r2/al14_frames.py runs/stilbene_cis_r2 data/stilbene/r2/al14.xyz

Takes the frames that ``fusionff.analysis.selection`` picks by gap (model S1-S0 gap below
0.6 eV, at least 20 fs apart per trajectory), drops those where a hydrogen of a central carbon
is within 1.58 Angstrom of the other central carbon (R2's active-space guard fails there, so
they cost a label and give none), and orders the rest by |gap|, smallest first, so that a queue
cut short has labelled the frames nearest the seam. Each frame's ``h_other_c`` (Angstrom) is
that shortest hydrogen-to-other-carbon distance.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from ase.io import read, write

CENTRAL = (0, 13)  # the central carbons (0-based), as in fusionff.data.molecules
BONDED_H = 1.3  # Angstrom: a hydrogen this close to a central carbon is its own


def hydrogen_to_other_carbon(atoms) -> float:
    """Shortest distance (Angstrom) of a central carbon's hydrogen to the other central carbon."""
    p = atoms.positions
    hydrogens = np.flatnonzero(atoms.numbers == 1)
    distances = [
        np.linalg.norm(p[h] - p[other])
        for own, other in (CENTRAL, CENTRAL[::-1])
        for h in hydrogens
        if np.linalg.norm(p[h] - p[own]) < BONDED_H
    ]
    return float(min(distances)) if distances else float("inf")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("output", type=Path)
    parser.add_argument("--max-gap", type=float, default=0.6, help="eV")
    parser.add_argument("--min-separation-fs", type=float, default=20.0)
    parser.add_argument("--min-h-distance", type=float, default=1.58, help="Angstrom")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        picked = Path(tmp) / "picked.xyz"
        subprocess.run(
            [sys.executable, "-m", "fusionff.analysis.selection", str(args.run_dir), str(picked),
             "--n-spread", "0", "--max-gap", str(args.max_gap),
             "--min-separation-fs", str(args.min_separation_fs)],
            check=True,
        )  # fmt: skip
        frames = read(picked, ":")
    kept = []
    for atoms in frames:
        atoms.info["h_other_c"] = round(hydrogen_to_other_carbon(atoms), 3)
        if atoms.info["h_other_c"] > args.min_h_distance:
            kept.append(atoms)
    kept.sort(key=lambda a: abs(a.info["model_gap_ev"]))
    write(args.output, kept)
    print(f"{args.output}: {len(kept)} of {len(frames)} frames (the rest within "
          f"{args.min_h_distance} A of a hydrogen bridge)")  # fmt: skip


if __name__ == "__main__":
    main()
