"""The last frame of every trajectory of a run, as extended XYZ with momenta: the starts of a
run that continues it (``initial_conditions: {file: OUT.xyz, state: S}``). Positions in
Angstrom; velocities from the trajectory files (Angstrom/fs) stored as ASE momenta. Only
trajectories whose last frame is on ``--state`` (default 1) and that ran to ``--time-fs`` are
kept, so that every start continues a trajectory that had not yet decayed::

    python data/stilbene/r2_last_frames.py runs/stilbene_r2_small_cpu \
        data/stilbene/r2/al4-starts.xyz --time-fs 400
"""

from __future__ import annotations

import argparse
import glob
from pathlib import Path

import h5py
import numpy as np
from ase import Atoms, units
from ase.io import write


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("output", type=Path)
    parser.add_argument("--state", type=int, default=1)
    parser.add_argument("--time-fs", type=float, required=True)
    args = parser.parse_args(argv)
    images = []
    for path in sorted(glob.glob(str(args.run_dir / "traj_*.h5md"))):
        with h5py.File(path, "r") as f:
            group = f["particles/molecule"]
            time = f["observables/active_state/time"][-1]
            state = int(f["observables/active_state/value"][-1])
            if state != args.state or not np.isclose(time, args.time_fs):
                print(f"{path}: left out (state {state} at {time} fs)")
                continue
            atoms = Atoms(
                numbers=group["species"][()],
                positions=group["position/value"][-1],
                masses=group["mass"][()],
                info={"run": str(args.run_dir), "trajectory": Path(path).stem, "time_fs": time},
            )
            atoms.set_velocities(group["velocity/value"][-1] / units.fs)  # A/fs -> ASE units
            images.append(atoms)
    write(args.output, images, format="extxyz")
    print(f"{args.output}: {len(images)} starts")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
