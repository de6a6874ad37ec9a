"""Frames on the way to a hydrogen bridging the central carbons, for labelling at R2.

Round 9's dynamics went where a hydrogen of one central carbon moves over to the other
(README, "Active learning, round 9"); R2 labels that approach down to about 1.45 A and finds
its gap falling to 0.2 eV, where the potentials have no data. This script writes
``hmig.xyz``: (1) every frame of the active-learning runs with a hydrogen 1.45-1.72 A from the
other central carbon (at least 3 fs apart per trajectory), and (2) that approach built by hand
on twisted frames of ``al8.xyz``: the hydrogen moved on a straight line towards the bridging
position (1.0 A above the middle of the C=C bond, on the hydrogen's side) until it is 1.80,
1.68, 1.58 or 1.50 A from the other carbon. Run from the repository root:

    python data/stilbene/r2/hmig_frames.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import h5py
import numpy as np
from ase import Atoms
from ase.io import read, write

from fusionff.data import stilbene as sb

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from r2_crossing import describe_geometry  # noqa: E402

RUNS = ["runs/r2-al6", "runs/r2-al7", "runs/r2-al8", "runs/r2-al8b", "runs/r2-al9"]
BAND = (1.45, 1.72)
TARGETS = (1.80, 1.68, 1.58, 1.50)
N_BASES = 12


def natural_frames() -> list[Atoms]:
    frames = []
    for run in RUNS:
        for path in sorted(Path(run).glob("traj_*.h5md")):
            with h5py.File(path, "r") as f:
                positions = f["particles/molecule/position/value"][:]
                times = f["particles/molecule/position/time"][:]
                numbers = f["particles/molecule/species"][:]
            last = -np.inf
            for x, t in zip(positions, times, strict=True):
                d = describe_geometry(x)["H_to_other_central_carbon_A"]
                if BAND[0] < d < BAND[1] and t - last >= 3.0:
                    atoms = Atoms(numbers=numbers, positions=x)
                    atoms.info.update(
                        run=run,
                        trajectory=int(path.stem.split("_")[1]),
                        time_fs=float(t),
                        H_to_other_central_carbon_A=float(d),
                        kind="natural",
                    )
                    frames.append(atoms)
                    last = t
    return frames


def moved_hydrogen(x: np.ndarray, hydrogen: int, own: int, other: int, target: float):
    """Positions with ``hydrogen`` moved from its place towards the bridging position until
    it is ``target`` Angstrom from ``other`` (None if the line never gets that close)."""
    mid = 0.5 * (x[own] + x[other])
    axis = (x[other] - x[own]) / np.linalg.norm(x[other] - x[own])
    side = x[hydrogen] - mid
    side -= axis * (side @ axis)
    bridge = mid + 1.0 * side / np.linalg.norm(side)
    for lam in np.linspace(0.0, 1.0, 2001):
        h = x[hydrogen] + lam * (bridge - x[hydrogen])
        if np.linalg.norm(h - x[other]) <= target:
            y = x.copy()
            y[hydrogen] = h
            return y
    return None


def built_frames() -> list[Atoms]:
    bases = read(HERE / "al8.xyz", index=":")
    picks = np.linspace(0, len(bases) - 1, N_BASES).round().astype(int)
    frames = []
    for n, i in enumerate(picks):
        base = bases[int(i)]
        # alternate the migrating hydrogen: H1 (on C1) to C2, then H2 (on C2) to C1
        hydrogen, own, other = (sb.H1, sb.C1, sb.C2) if n % 2 == 0 else (sb.H2, sb.C2, sb.C1)
        for target in TARGETS:
            y = moved_hydrogen(base.positions, hydrogen, own, other, target)
            if y is None:
                continue
            atoms = Atoms(numbers=base.numbers, positions=y)
            atoms.info.update(
                base="al8.xyz",
                base_row=int(i),
                hydrogen=int(hydrogen),
                H_to_other_central_carbon_A=float(
                    describe_geometry(y)["H_to_other_central_carbon_A"]
                ),
                kind="built",
            )
            frames.append(atoms)
    return frames


def main() -> None:
    frames = natural_frames() + built_frames()
    write(HERE / "hmig.xyz", frames, format="extxyz")
    kinds = [a.info["kind"] for a in frames]
    print(f"{len(frames)} frames ({kinds.count('natural')} natural, {kinds.count('built')} built)")


if __name__ == "__main__":
    main()
