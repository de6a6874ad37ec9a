"""Hop statistics: hops per trajectory, hop times, the geometry and gap at each hop, frustrated
hops.

Hops come from the run summary (time, step, from, to). The dihedral, the pyramidalisation of
its two central carbons (angle sums, :func:`fusionff.analysis.dihedral.angle_sum`) and the
energy gap |E_to - E_from| (eV) at a hop are taken from the written frame nearest in time to
it: exact when every step is written, within half the frame stride otherwise.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from fusionff.analysis.run import Trajectory


@dataclass(frozen=True)
class HopEvent:
    """One hop of trajectory ``trajectory``: time fs, states, dihedral degrees, gap eV, and
    the angle sums at the dihedral's two central carbons (b, c) degrees (None: not measured)."""

    trajectory: int
    time_fs: float
    source: int
    target: int
    dihedral: float
    gap: float
    pyramidalisation: tuple[float, float] | None = None

    @property
    def most_pyramidal(self) -> float:
        """The smaller of the two angle sums, degrees (NaN when not measured)."""
        return math.nan if self.pyramidalisation is None else min(self.pyramidalisation)


def nearest_frame(time: np.ndarray, t: float) -> int:
    """Index of the frame of ``time`` (n,) fs nearest to ``t`` fs."""
    return int(np.argmin(np.abs(np.asarray(time) - t)))


def hop_events(
    trajectory: Trajectory,
    dihedral_time: np.ndarray,
    dihedral: np.ndarray,
    angle_sums: np.ndarray | None = None,
) -> list[HopEvent]:
    """The hops of one trajectory with the dihedral (degrees; sampled at ``dihedral_time`` fs)
    and the gap between the two states at the nearest frames; ``angle_sums`` (n_hops, 2)
    degrees are those of the central carbons at each hop, in the order of ``trajectory.hops``
    (None: not measured)."""
    events = []
    for k, hop in enumerate(trajectory.hops):
        frame = nearest_frame(trajectory.time, hop.time_fs)
        energies = trajectory.energies[frame]
        events.append(
            HopEvent(
                trajectory=trajectory.index,
                time_fs=hop.time_fs,
                source=hop.source,
                target=hop.target,
                dihedral=float(dihedral[nearest_frame(dihedral_time, hop.time_fs)]),
                gap=float(abs(energies[hop.target] - energies[hop.source])),
                pyramidalisation=None
                if angle_sums is None
                else (float(angle_sums[k][0]), float(angle_sums[k][1])),
            )
        )
    return events


@dataclass
class HopStatistics:
    """All hop events and, per analysed trajectory, its number of hops and frustrated hops."""

    events: list[HopEvent]
    hops_per_trajectory: np.ndarray
    frustrated_per_trajectory: np.ndarray
    frustrated_times_fs: np.ndarray | None = None
    """Times of the frustrated attempts, when the summary lists them."""

    def to_dict(self, n_bins: int = 20) -> dict:
        times = np.array([e.time_fs for e in self.events])
        n_hops = self.hops_per_trajectory
        histogram: dict = {"counts": [], "edges_fs": []}
        if len(times):
            counts, edges = np.histogram(times, bins=n_bins)
            histogram = {"counts": counts.tolist(), "edges_fs": edges.tolist()}
        return {
            "n_hops": int(n_hops.sum()),
            "mean_hops_per_trajectory": float(n_hops.mean()) if len(n_hops) else None,
            "trajectories_by_number_of_hops": {
                str(k): int(v) for k, v in sorted(Counter(n_hops.tolist()).items())
            },
            "by_type": {
                f"{a}->{b}": int(v)
                for (a, b), v in sorted(Counter((e.source, e.target) for e in self.events).items())
            },
            "n_frustrated": int(self.frustrated_per_trajectory.sum()),
            "mean_frustrated_per_trajectory": (
                float(self.frustrated_per_trajectory.mean()) if len(n_hops) else None
            ),
            "hop_time_histogram": histogram,
            "frustrated_times_fs": self.frustrated_times_fs,
            "events": [
                {
                    "trajectory": e.trajectory,
                    "time_fs": e.time_fs,
                    "from": e.source,
                    "to": e.target,
                    "dihedral_deg": e.dihedral,
                    "gap_eV": e.gap,
                    "pyramidalisation_deg": e.pyramidalisation,
                }
                for e in self.events
            ],
        }


def hop_statistics(
    trajectories: Sequence[Trajectory],
    dihedrals: Sequence[tuple[np.ndarray, np.ndarray]],
    angle_sums: Sequence[np.ndarray] | None = None,
) -> HopStatistics:
    """Hop statistics of ``trajectories``; ``dihedrals[i]`` is (time fs, degrees) of the i-th
    and ``angle_sums[i]`` (n_hops, 2) degrees the central carbons' angle sums at its hops
    (None: not measured)."""
    sums = [None] * len(trajectories) if angle_sums is None else angle_sums
    events = [
        e
        for traj, (t, d), a in zip(trajectories, dihedrals, sums, strict=True)
        for e in hop_events(traj, t, d, a)
    ]
    listed = [t.frustrated_hops for t in trajectories]
    frustrated_times = None
    if all(hops is not None for hops in listed):
        frustrated_times = np.array([h.time_fs for hops in listed for h in hops])
    return HopStatistics(
        events=events,
        hops_per_trajectory=np.array([len(t.hops) for t in trajectories], dtype=np.int64),
        frustrated_per_trajectory=np.array([t.n_frustrated for t in trajectories], dtype=np.int64),
        frustrated_times_fs=frustrated_times,
    )
