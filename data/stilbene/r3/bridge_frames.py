"""Frames on the way into a bridging-hydrogen stop: is that channel R3's or the models'?

    python data/stilbene/r3/bridge_frames.py RUN_DIR OUT.xyz [--targets 2.0 1.8 1.65 1.5]
        [--without-hop-fs 40]

Trajectories of the R3 previews that hop to S0 sometimes leave the domain a few femtoseconds
later: a central hydrogen comes within 1.45 A of the other central carbon (the run's
``domain`` limit) on the hot ground state. Whether R3 itself opens that channel, or the models
do where they have no labels, is a question for R3 labels along the way. For every
trajectory stopped out of the domain after a hop, this takes its hop frame and the frames
after the hop whose hydrogen-bridge distance
(:func:`fusionff.data.stilbene.hydrogen_bridge_distance`, Angstrom) comes nearest each of
``--targets`` (each frame once). Writes extended XYZ (Angstrom) with the run, trajectory, time
(fs), hop time (fs), the bridge distance (A) and the committee's S0 and S1 energies (eV) in each
frame's info, for ``fusionff label`` and a comparison of its labels with the models'.

A trajectory can also leave the domain this way on S1, without a hop (snapshot 18's and 21's
previews had one each). With ``--without-hop-fs W`` such trajectories count too: their frames
of the last W fs take the hop's place (no hop frame; the info has no hop time), and each
frame's info names its active state.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.io import read, write

from fusionff.analysis.run import read_positions, read_run
from fusionff.data.stilbene import hydrogen_bridge_distance


def sample(
    run_dir: str | Path, targets: list[float], without_hop_fs: float | None = None
) -> list[Atoms]:
    """Frames (see the module docstring), trajectory by trajectory, in time order."""
    run = read_run(run_dir, include_failed=True)
    numbers = read(run.topology).numbers
    every = list(range(len(numbers)))
    frames = []
    for t in sorted(run.excluded + run.trajectories, key=lambda t: t.index):
        if t.status != "out-of-domain" or (not t.hops and without_hop_fs is None):
            continue
        hop = t.hops[-1] if t.hops else None
        start = hop.time_fs if hop else t.time[-1] - without_hop_fs
        after = np.flatnonzero(t.time >= start - 1e-9)
        if after.size == 0:
            continue
        _, positions = read_positions(t.path, every, after.tolist())
        bridge = np.array([hydrogen_bridge_distance(x) for x in positions])
        chosen = {0} if hop else set()
        for target in targets:
            chosen.add(int(np.argmin(np.abs(bridge - target))))
        for j in sorted(chosen):
            k = int(after[j])
            atoms = Atoms(numbers=numbers, positions=positions[j])
            atoms.info.update(
                run=str(run_dir),
                trajectory=t.index,
                time_fs=float(t.time[k]),
                **({"hop_time_fs": float(hop.time_fs)} if hop else {}),
                state=int(t.active_state[k]),
                bridge_distance_a=round(float(bridge[j]), 3),
                model_e0_ev=float(t.energies[k, 0]),
                model_e1_ev=float(t.energies[k, 1]),
            )
            frames.append(atoms)
    return frames


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_dir")
    parser.add_argument("output", help="extended XYZ to write")
    parser.add_argument(
        "--targets",
        type=float,
        nargs="+",
        default=[2.0, 1.8, 1.65, 1.5],
        help="hydrogen-bridge distances (Angstrom) to take the nearest frame of",
    )
    parser.add_argument(
        "--without-hop-fs",
        type=float,
        help="also trajectories stopped without a hop: their frames of the last W fs",
    )
    args = parser.parse_args(argv)
    frames = sample(args.run_dir, args.targets, args.without_hop_fs)
    if not frames:
        what = "" if args.without_hop_fs is not None else " after a hop"
        raise SystemExit(f"{args.run_dir}: no trajectory stopped out of the domain{what}")
    write(args.output, frames, format="extxyz")
    print(f"{len(frames)} frames -> {Path(args.output)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
