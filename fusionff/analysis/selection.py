"""Active learning: frames of a finished run to label next, where the committee disagrees and
where states come close.

A run on a committee potential (``potential: {model: [a.fff, b.fff]}``) records per frame
``observables/energy_std`` (F, S) eV and ``observables/force_std`` (F, S) eV/Angstrom
(:mod:`fusionff.dynamics.spread`). :func:`select_frames` reads every trajectory of the run
(flagged and failed ones included: where a model went wrong is where labels help most) and
picks frames in two passes, both keeping frames of one trajectory at least
``min_separation_fs`` apart (neighbouring frames carry nearly the same information):

0. **hops** (with ``hops=True``): for every accepted hop, the last written frame at or before
   its step (within ``write_every`` steps of the hop geometry): the labels there say whether
   the reference's states are as close where the trajectories hop as the model's are. These
   frames are taken first, regardless of separation, and count for the separation below;
1. **spread**: the ``n_spread`` frames of largest committee spread, taken in decreasing order
   of spread, each only if it is far enough from every frame already taken in its trajectory.
   The spread is ``"force"``: the force spread of the frame's active state, eV/Angstrom (what
   ``dynamics.committee.max_force_std`` limits), ``"force-max"``: the largest force spread
   over the states, eV/Angstrom (on stilbene's held-out labels it catches the worst S1
   energy and gap errors more often than the active state's: data/stilbene/r3/README.md), or
   ``"energy"``: the largest energy spread over the states, eV;
2. **gap**: frames whose smallest gap between adjacent states, min_j (E_j+1 - E_j) of the
   committee-mean energies (E_1 - E_0 with two states), eV, is below ``max_gap``, in
   increasing order of gap, with the same separation rule against everything taken (at most
   ``n_gap``; None: all that qualify). A frame that pass 1 took is marked as both.

Frames with non-finite energies, total energy or spread are never picked. With
``hot_ground_gap`` set, passes 1 and 2 also skip *hot ground-state frames*: the active state
is the lowest, the smallest adjacent-state gap exceeds ``hot_ground_gap`` eV and the frame
lies more than ``hot_ground_after_fs`` fs after the trajectory's latest hop (its first frame
when it has none). On stilbene these are vibrationally hot S0 geometries after a hop where the
reference's (2,2) active space loses its central pi character and the label fails: of the 70
S0 frames that rounds al10-al14 picked by spread, 17 failed; a gap above 6.25 eV marks 13, 11
of them failed, leaving 6 failures among the other 57 (5.5 eV: 30 marked, 16 failed, 1 left;
data/stilbene/r3/README.md). Hop frames are never skipped.

:func:`pick_separated` is the greedy rule itself, for scores computed elsewhere (e.g. a
committee evaluated after a run on one model). :meth:`Selection.write_xyz` writes the queue as
extended XYZ (positions in Angstrom, atomic numbers; why each frame was picked in its info
line), the input of ``fusionff label``.

Command line: ``python -m fusionff.analysis.selection RUN_DIR QUEUE.xyz --n-spread 100
--min-separation-fs 10 --max-gap 0.3 [--hops] [--skip-hot-ground 6.25]``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import h5py
import numpy as np

from fusionff.analysis.run import LENGTH_UNITS, _unit, read_run

__all__ = [
    "SelectedFrame",
    "Selection",
    "pick_separated",
    "select_frames",
    "time_since_hop",
    "SPREADS",
]

SPREADS = ("force", "force-max", "energy")
SPREAD_UNITS = {"force": "eV/Angstrom", "force-max": "eV/Angstrom", "energy": "eV"}
_FILE_UNITS = {"force": "eV Angstrom-1", "energy": "eV"}
_STORED = {"force": "force", "force-max": "force", "energy": "energy"}  # observables/<_>_std


@dataclass
class SelectedFrame:
    """One picked frame: trajectory ``trajectory`` (its run index), frame ``frame`` of its
    file (step ``step``, ``time_fs`` fs), the trajectory's ``status``, its ``spread`` (unit
    of :attr:`Selection.spread`; NaN without a committee) and smallest adjacent-state
    ``gap_ev`` (eV), and ``reasons``: "hop", "spread", "gap" (a hop frame may also be one of
    the others)."""

    trajectory: int
    frame: int
    step: int
    time_fs: float
    status: str
    spread: float
    gap_ev: float
    reasons: list[str] = field(default_factory=list)


@dataclass
class Selection:
    """Frames to label: ``numbers`` (N,) atomic numbers, ``positions`` (K, N, 3) Angstrom and
    ``frames`` (K) in pick order (spread first, then gap), with the settings that chose them
    (``spread``: "force" or "energy")."""

    run_dir: Path
    numbers: np.ndarray
    positions: np.ndarray
    frames: list[SelectedFrame]
    spread: str
    settings: dict

    def write_xyz(self, path: str | Path) -> Path:
        """Write the frames as extended XYZ (Angstrom) for ``fusionff label``; each frame's
        info line holds its run, trajectory, frame, step, time_fs, status, reasons,
        committee_spread (with its unit and kind), model_gap_ev."""
        from ase import Atoms
        from ase.io import write

        path = Path(path)
        images = []
        for f, positions in zip(self.frames, self.positions, strict=True):
            info = {
                "run": str(self.run_dir),
                "trajectory": f.trajectory,
                "frame": f.frame,
                "step": f.step,
                "time_fs": f.time_fs,
                "status": f.status,
                "reasons": "+".join(f.reasons),
                "committee_spread": f.spread,
                "spread_kind": self.spread,
                "spread_unit": SPREAD_UNITS[self.spread],
                "model_gap_ev": f.gap_ev,
            }
            images.append(Atoms(numbers=self.numbers, positions=positions, info=info))
        write(path, images, format="extxyz")
        return path

    def to_dict(self) -> dict:
        """Plain data without the positions: run, settings, frames."""
        return {
            "run_dir": str(self.run_dir),
            "spread": self.spread,
            "spread_unit": SPREAD_UNITS[self.spread],
            "settings": self.settings,
            "frames": [asdict(f) for f in self.frames],
        }


def pick_separated(
    groups: np.ndarray,
    times: np.ndarray,
    order: np.ndarray,
    min_separation: float,
    n: int | None = None,
    taken: dict | None = None,
) -> list[int]:
    """Greedy choice: candidates in the given ``order``, each taken when its time is at least
    ``min_separation`` from every time already taken in its group, until ``n`` are taken.

    Args:
        groups: (C,) group of each candidate (a trajectory; any hashable values).
        times: (C,) times (e.g. fs).
        order: candidate indices, best first (e.g. ``np.argsort(-score, kind="stable")``).
        min_separation: same unit as ``times``.
        n: how many to take at most (None: every candidate that fits).
        taken: {group: [times]} already taken (updated in place), e.g. frames forced in.

    Returns:
        the indices taken, in order.
    """
    taken = {} if taken is None else taken
    chosen: list[int] = []
    for i in order:
        if n is not None and len(chosen) >= n:
            break
        others = taken.setdefault(groups[i], [])
        if all(abs(times[i] - t) >= min_separation for t in others):
            others.append(times[i])
            chosen.append(int(i))
    return chosen


def _smallest_gap(energies: np.ndarray) -> np.ndarray:
    """(F,) min_j (E_j+1 - E_j), eV; NaN with one state."""
    if energies.shape[1] < 2:
        return np.full(len(energies), np.nan)
    return np.diff(energies, axis=1).min(axis=1)


def _spread_series(path: Path, kind: str, active: np.ndarray) -> np.ndarray | None:
    """(F,) the frame's spread of ``kind`` (module docstring), or None without spreads."""
    stored = _STORED[kind]
    name = f"observables/{stored}_std/value"
    with h5py.File(path, "r") as f:
        if name not in f:
            return None
        value = f[name]
        unit = value.attrs.get("unit")
        unit = unit.decode() if isinstance(unit, bytes) else unit
        if unit != _FILE_UNITS[stored]:
            raise ValueError(f"{path}: {name} unit {unit!r}, expected {_FILE_UNITS[stored]!r}")
        values = value[()]
    if kind in ("energy", "force-max"):
        return values.max(axis=1)
    return values[np.arange(len(values)), active]


def time_since_hop(trajectory) -> np.ndarray:
    """(F,) fs from the trajectory's latest hop at or before each frame (from its first frame
    where no hop came before)."""
    t = trajectory.time
    hops = np.sort([h.time_fs for h in trajectory.hops])
    if hops.size == 0:
        return t - t[0]
    k = np.searchsorted(hops, t, side="right")
    last = np.where(k > 0, hops[np.maximum(k - 1, 0)], t[0])
    return t - last


def _positions(path: Path, frames: list[int]) -> dict[int, np.ndarray]:
    """{frame: (N, 3) Angstrom} for ``frames`` of a trajectory file."""
    unique = sorted(set(frames))
    with h5py.File(path, "r") as f:
        value = f["particles/molecule/position/value"]
        block = value[unique] * _unit(value, LENGTH_UNITS, path)
    return dict(zip(unique, block, strict=True))


def select_frames(
    run_dir: str | Path,
    n_spread: int,
    min_separation_fs: float,
    max_gap: float | None = None,
    n_gap: int | None = None,
    spread: str = "force",
    hops: bool = False,
    hot_ground_gap: float | None = None,
    hot_ground_after_fs: float = 0.0,
) -> Selection:
    """Pick frames of the run in ``run_dir`` to label (see the module docstring).

    Args:
        run_dir: a finished run (``summary.json`` and its trajectory files).
        n_spread: frames to take by committee spread (0: none; the run needs no committee).
        min_separation_fs: fs between frames of one trajectory at least (0: any).
        max_gap: eV; also take frames whose smallest adjacent-state gap is below it (None:
            none by gap).
        n_gap: frames to take by gap at most (None: all that qualify).
        spread: "force" (eV/Angstrom, of the active state), "force-max" (eV/Angstrom,
            largest over the states) or "energy" (eV, largest over the states).
        hops: first take the frame of every accepted hop (pass 0 of the module docstring).
        hot_ground_gap: eV; skip hot ground-state frames whose smallest gap exceeds it in
            passes 1 and 2 (module docstring; None: skip none).
        hot_ground_after_fs: fs after the latest hop beyond which a ground-state frame can
            count as hot.

    Returns:
        the :class:`Selection` (positions in Angstrom).
    """
    if spread not in SPREADS:
        raise ValueError(f"spread must be one of {SPREADS}, got {spread!r}")
    if n_spread < 0 or min_separation_fs < 0:
        raise ValueError("n_spread and min_separation_fs must not be negative")
    if hot_ground_after_fs < 0:
        raise ValueError(f"hot_ground_after_fs must not be negative, got {hot_ground_after_fs}")
    run = read_run(run_dir, include_failed=True)
    trajectories = run.trajectories
    group, time, frame, step, spreads, gaps, finite, status, since = ([] for _ in range(9))
    for t in trajectories:
        values = _spread_series(t.path, spread, t.active_state)
        if values is None:
            if n_spread > 0:
                raise ValueError(
                    f"{t.path}: no observables/{_STORED[spread]}_std (not a committee run); "
                    "select with n_spread=0 (by gap only)"
                )
            values = np.full(len(t.time), np.nan)
        group.append(np.full(len(t.time), t.index))
        time.append(t.time)
        frame.append(np.arange(len(t.time)))
        step.append(t.step)
        spreads.append(values)
        gaps.append(_smallest_gap(t.energies))
        finite.append(np.isfinite(t.energies).all(axis=1) & np.isfinite(t.total_energy))
        status += [t.status] * len(t.time)
        since.append(time_since_hop(t))
    offsets = np.cumsum([0] + [len(t.time) for t in trajectories])
    group, time, frame, step, spreads, gaps, finite, since = (
        np.concatenate(a) for a in (group, time, frame, step, spreads, gaps, finite, since)
    )
    ground = np.concatenate([t.active_state == 0 for t in trajectories])
    hot = np.zeros(len(group), dtype=bool)
    if hot_ground_gap is not None:
        hot = ground & (gaps > hot_ground_gap) & (since > hot_ground_after_fs)
    taken: dict = {}
    chosen: dict[int, list[str]] = {}
    if hops:
        for t, first in zip(trajectories, offsets[:-1], strict=True):
            for hop in t.hops:
                before = np.flatnonzero(t.step <= hop.step)
                if before.size:
                    i = int(first + before[-1])
                    chosen.setdefault(i, ["hop"])
                    taken.setdefault(group[i], []).append(time[i])
    if n_spread > 0:
        ok = finite & np.isfinite(spreads) & ~hot
        candidates = np.flatnonzero(ok)
        order = candidates[np.argsort(-spreads[ok], kind="stable")]
        for i in pick_separated(group, time, order, min_separation_fs, n_spread, taken):
            chosen.setdefault(i, []).append("spread")
    if max_gap is not None:
        ok = finite & (gaps < max_gap) & ~hot
        candidates = np.flatnonzero(ok)
        order = candidates[np.argsort(gaps[ok], kind="stable")]
        for i in order:
            if i in chosen:
                chosen[i].append("gap")
        order = np.array([i for i in order if i not in chosen], dtype=np.int64)
        for i in pick_separated(group, time, order, min_separation_fs, n_gap, taken):
            chosen[i] = ["gap"]
    frames = [
        SelectedFrame(
            trajectory=int(group[i]),
            frame=int(frame[i]),
            step=int(step[i]),
            time_fs=float(time[i]),
            status=status[i],
            spread=float(spreads[i]),
            gap_ev=float(gaps[i]),
            reasons=reasons,
        )
        for i, reasons in chosen.items()
    ]
    numbers = _numbers(trajectories[0].path)
    per_file: dict[int, list[int]] = {}
    for f in frames:
        per_file.setdefault(f.trajectory, []).append(f.frame)
    paths = {t.index: t.path for t in trajectories}
    read = {k: _positions(paths[k], v) for k, v in per_file.items()}
    positions = np.array([read[f.trajectory][f.frame] for f in frames]).reshape(
        len(frames), len(numbers), 3
    )
    settings = {
        "n_spread": n_spread,
        "min_separation_fs": min_separation_fs,
        "max_gap_ev": max_gap,
        "n_gap": n_gap,
        "hops": hops,
        "hot_ground_gap_ev": hot_ground_gap,
        "hot_ground_after_fs": hot_ground_after_fs,
        "hot_ground_frames_skipped": int(hot.sum()),
    }
    return Selection(Path(run_dir), numbers, positions, frames, spread, settings)


def _numbers(path: Path) -> np.ndarray:
    with h5py.File(path, "r") as f:
        return f["particles/molecule/species"][()].astype(np.int64)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m fusionff.analysis.selection RUN_DIR QUEUE.xyz [options]``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_dir")
    parser.add_argument("output", help="extended XYZ queue for fusionff label")
    parser.add_argument("--n-spread", type=int, default=100, help="frames by spread")
    parser.add_argument("--min-separation-fs", type=float, default=10.0)
    parser.add_argument("--max-gap", type=float, help="eV: also frames with a gap below it")
    parser.add_argument("--n-gap", type=int, help="frames by gap at most (default: all)")
    parser.add_argument("--spread", choices=SPREADS, default="force")
    parser.add_argument("--hops", action="store_true", help="first the frame of every accepted hop")
    parser.add_argument(
        "--skip-hot-ground",
        type=float,
        metavar="GAP_EV",
        help="skip ground-state frames after a hop whose gap is above GAP_EV eV",
    )
    parser.add_argument(
        "--hot-after-fs", type=float, default=0.0, help="fs after a hop where 'late' begins"
    )
    args = parser.parse_args(argv)
    selection = select_frames(
        args.run_dir,
        args.n_spread,
        args.min_separation_fs,
        args.max_gap,
        args.n_gap,
        args.spread,
        args.hops,
        args.skip_hot_ground,
        args.hot_after_fs,
    )
    selection.write_xyz(args.output)
    by = {r: sum(r in f.reasons for f in selection.frames) for r in ("hop", "spread", "gap")}
    print(
        f"{args.output}: {len(selection.frames)} frames ({by['hop']} at hops, {by['spread']} "
        f"by spread, {by['gap']} by gap)"
    )
    if args.skip_hot_ground is not None:
        n = selection.settings["hot_ground_frames_skipped"]
        print(f"{n} hot ground-state frames left out (gap > {args.skip_hot_ground} eV)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
