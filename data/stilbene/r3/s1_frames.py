"""An unbiased sample of where S1 dynamics go: frames at fixed times of trajectories on S1.

    python data/stilbene/r3/s1_frames.py RUN_DIR OUT.xyz [--times 50 100 ... ] [--state 1]

Active-learning queues pick frames by committee spread or small gaps, so they over-represent
where the models disagree. To ask how often the dynamics visit some region of the level (e.g.
where the third state of the (2,2) space comes near S1: ``third_state_probe.py --frames``),
take every trajectory's frame nearest to each of ``--times`` (fs), if the trajectory is still
running then and its active state is ``--state``. Writes extended XYZ (Angstrom) with the run,
trajectory, time (fs) and the model's S1-S0 gap (eV) in each frame's info.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.io import read, write

from fusionff.analysis.run import read_positions, read_run


def sample(run_dir: str | Path, times: list[float], state: int = 1) -> list[Atoms]:
    """Frames (see the module docstring), trajectory by trajectory, times in order."""
    run = read_run(run_dir, include_failed=True)
    numbers = read(run.topology).numbers
    frames = []
    for t in run.trajectories:
        chosen = []
        for when in times:
            if when > t.time[-1] + 1e-9:
                break
            k = int(np.argmin(np.abs(t.time - when)))
            if int(t.active_state[k]) == state:
                chosen.append(k)
        if not chosen:
            continue
        _, positions = read_positions(t.path, list(range(len(numbers))), chosen)
        for k, x in zip(chosen, positions, strict=True):
            atoms = Atoms(numbers=numbers, positions=x)
            atoms.info.update(
                run=str(run_dir),
                trajectory=t.index,
                time_fs=float(t.time[k]),
                model_gap_ev=float(t.energies[k, 1] - t.energies[k, 0]),
            )
            frames.append(atoms)
    return frames


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_dir")
    parser.add_argument("output", help="extended XYZ to write")
    parser.add_argument("--times", type=float, nargs="+", default=[100.0, 200.0, 300.0, 400.0])
    parser.add_argument("--state", type=int, default=1, help="active state of the frames")
    args = parser.parse_args(argv)
    frames = sample(args.run_dir, sorted(args.times), args.state)
    if not frames:
        raise SystemExit(f"{args.run_dir}: no trajectory on S{args.state} at {args.times} fs")
    write(args.output, frames, format="extxyz")
    print(f"{len(frames)} frames -> {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
