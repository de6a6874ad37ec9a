"""Starts for direct R2 dynamics where the potentials carry a hydrogen over the C=C bond.

Rounds 9-11 stop 2-4 of 16 trajectories out of R2's domain: a hydrogen of one central carbon
comes within 1.45 A of the other. Whether R2's own S1 does that, or the potentials' forces
between 1.5 and 2 A are wrong, is what direct R2 dynamics from just before the approach says.
This script writes ``hmig-direct-starts.xyz``: for each trajectory in CASES, the frame
``LEAD_FS`` before the hydrogen first comes within 1.95 A of the other carbon on its final
approach (positions in Angstrom, velocities as ASE momenta), with the potential's time and
distance in ``info``. ``md/stilbene_r2_hmig_direct.yaml`` runs R2 from these. Run from the
repository root (needs the runs, which are not in git):

    python data/stilbene/r2/hmig_direct_starts.py
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
from ase import Atoms, units
from ase.io import write

HERE = Path(__file__).resolve().parent
# (run, trajectory): the round-11 main job, the round-11 seed-1 starts, round 10 seed-1 starts
CASES = [("runs/r2-al11", 7), ("runs/r2-al11b", 10), ("runs/r2-al10b", 4)]
PAIRS = ((1, 13), (14, 0))  # H1-C2, H2-C1 (0-based)
APPROACH_A = 1.95
LEAD_FS = 3.0


def start_frame(run: str, index: int) -> Atoms:
    with h5py.File(Path(run) / f"traj_{index:05d}.h5md", "r") as f:
        x = f["particles/molecule/position/value"][:]
        v = f["particles/molecule/velocity/value"][:]  # Angstrom/fs
        t = f["particles/molecule/position/time"][:]
        numbers = f["particles/molecule/species"][:]
        masses = f["particles/molecule/mass"][:]
        active = f["observables/active_state/value"][:]
    distances = np.stack([np.linalg.norm(x[:, h] - x[:, c], axis=1) for h, c in PAIRS])
    pair = int(distances.min(axis=1).argmin())
    d = distances[pair]
    closest = int(d.argmin())
    first = closest
    while first > 0 and d[first - 1] < APPROACH_A:
        first -= 1
    i = int(np.searchsorted(t, t[first] - LEAD_FS))
    atoms = Atoms(numbers=numbers, positions=x[i], masses=masses)
    atoms.set_velocities(v[i] / units.fs)
    atoms.info.update(
        run=run,
        trajectory=index,
        time_fs=float(t[i]),
        active_state=int(active[i]),
        hydrogen=PAIRS[pair][0],
        H_to_other_carbon_A=float(d[i]),
        potential_exit_fs=float(t[closest]),
        potential_min_A=float(d[closest]),
    )
    return atoms


if __name__ == "__main__":
    frames = [start_frame(run, i) for run, i in CASES]
    write(HERE / "hmig-direct-starts.xyz", frames, format="extxyz")
    for a in frames:
        print(a.info)
