"""A run's domain limit re-applied after the fact, at a stricter distance.

A run stops a trajectory where a pair of atoms of its ``dynamics.domain.pairs`` comes closer
than ``dynamics.domain.min_distance`` (status "out-of-domain"; :mod:`fusionff.dynamics.domain`).
How much a yield depends on where that limit was put shows when a stricter one is applied to
the finished run: a trajectory whose pair came closer than it would have been stopped there,
out of the domain, whatever happened to it later, so it is relabelled "out-of-domain" and
excluded like a run-time stop. Only the written frames are checked (the run checks every
step): a dip below the limit between two written frames is missed. A looser limit cannot be
applied: the run stopped those trajectories already.

Reads the config dict of summary.json, not :mod:`fusionff.dynamics.domain` (no PyTorch here).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from fusionff.analysis.run import Run, read_positions

OUT_OF_DOMAIN = "out-of-domain"


@dataclass(frozen=True)
class DomainRecheck:
    """The run's domain re-applied at ``min_distance`` Angstrom (the run's own limit:
    ``run_min_distance``) to the written frames: ``previous_status`` {index: status} of the
    trajectories found out of the domain (now "out-of-domain"), ``newly_excluded`` the indices
    among them that had been analysed."""

    pairs: tuple[tuple[int, int], ...]
    min_distance: float
    run_min_distance: float
    previous_status: dict[int, str]
    newly_excluded: list[int]
    exit_time_fs: dict[int, float] = field(default_factory=dict)
    """{index: time (fs) of the first written frame below the limit} of each trajectory
    found out of the domain: where its observation ends (:mod:`fusionff.analysis.survival`)."""

    def note(self) -> str:
        """One line for the report, e.g. "domain re-applied at 1.60 Angstrom (run: 1.45) to
        the written frames: 178 more trajectories excluded as out-of-domain (...)"."""
        n, k = len(self.previous_status), len(self.newly_excluded)
        text = (
            f"domain re-applied at {self.min_distance:.2f} Angstrom (run: "
            f"{self.run_min_distance:.2f}) to the written frames: {n} more trajectories "
            "excluded as out-of-domain"
        )
        if k < n:
            newly = set(self.newly_excluded)
            excluded = Counter(s for i, s in self.previous_status.items() if i not in newly)
            shown = ", ".join(f"{s} {c}" for s, c in sorted(excluded.items()))
            text += f" ({k} had been analysed; {n - k} excluded already as {shown})"
        return text + (
            f"; pairs {', '.join(f'{i}-{j}' for i, j in self.pairs)}; a dip below "
            f"{self.min_distance:.2f} between two written frames is missed"
        )

    def to_dict(self) -> dict:
        return {
            "pairs": [list(p) for p in self.pairs],
            "min_distance_angstrom": self.min_distance,
            "run_min_distance_angstrom": self.run_min_distance,
            "frames": "written",
            "out_of_domain": len(self.previous_status),
            "out_of_domain_indices": sorted(self.previous_status),
            "previous_status": dict(Counter(self.previous_status.values())),
            "newly_excluded": len(self.newly_excluded),
            "newly_excluded_indices": self.newly_excluded,
        }


def run_domain(config: dict, summary_path: Path) -> tuple[tuple[tuple[int, int], ...], float]:
    """(pairs, min_distance Angstrom) of a run's ``config.dynamics.domain`` in summary.json."""
    domain = (config.get("dynamics") or {}).get("domain")
    if not domain:
        raise ValueError(
            f"{summary_path}: the run has no domain pairs (no config.dynamics.domain); "
            "a domain limit can only be re-applied to a run that had one"
        )
    for key in ("pairs", "min_distance"):
        if key not in domain:
            raise ValueError(f"{summary_path}: config.dynamics.domain has no {key!r}")
    pairs = tuple((int(i), int(j)) for i, j in domain["pairs"])
    return pairs, float(domain["min_distance"])


def _pair_distances(
    path: Path, pairs: tuple[tuple[int, int], ...]
) -> tuple[np.ndarray, np.ndarray]:
    """Time (n,) fs and the distance of each of ``pairs`` (n, P) Angstrom in every written
    frame of a trajectory file."""
    time, positions = read_positions(path, [a for pair in pairs for a in pair])
    return time, np.linalg.norm(positions[:, 0::2] - positions[:, 1::2], axis=-1)


def closest_approach(path: Path, pairs: tuple[tuple[int, int], ...]) -> float:
    """The smallest distance of any of ``pairs`` over the written frames of a trajectory file,
    Angstrom (non-finite frames, e.g. of a trajectory that blew up, ignored; inf if none)."""
    _, distance = _pair_distances(path, pairs)
    finite = distance[np.isfinite(distance)]
    return float(finite.min()) if len(finite) else math.inf


def first_exit(path: Path, pairs: tuple[tuple[int, int], ...], min_distance: float) -> float | None:
    """Time (fs) of the first written frame where a pair of ``pairs`` is closer than
    ``min_distance`` Angstrom, or None if none is (non-finite frames ignored)."""
    time, distance = _pair_distances(path, pairs)
    below = np.flatnonzero(np.any(np.isfinite(distance) & (distance < min_distance), axis=1))
    return float(time[below[0]]) if len(below) else None


def reapply_domain(run: Run, min_distance: float) -> tuple[Run, DomainRecheck]:
    """``run`` (read with failed trajectories excluded) with its domain re-applied at
    ``min_distance`` Angstrom: every trajectory not yet out of the domain whose pair of
    ``config.dynamics.domain.pairs`` came closer than ``min_distance`` at a written frame gets
    status "out-of-domain" and is excluded. ``min_distance`` must not be below the run's own
    limit. Returns a new Run (the given one is unchanged) and what changed."""
    summary_path = run.directory / "summary.json"
    pairs, run_min = run_domain(run.config, summary_path)
    if not math.isfinite(min_distance):
        raise ValueError(f"domain min_distance must be finite (Angstrom), got {min_distance}")
    if min_distance < run_min:
        raise ValueError(
            f"domain min_distance {min_distance:g} Angstrom is below the run's own "
            f"{run_min:g} Angstrom ({summary_path}): a looser limit cannot be applied after "
            "the fact (the run stopped those trajectories already)"
        )
    previous: dict[int, str] = {}
    exits: dict[int, float] = {}

    def recheck(trajectory):
        if trajectory.status == OUT_OF_DOMAIN:
            return trajectory
        exit_time = first_exit(trajectory.path, pairs, min_distance)
        if exit_time is None:
            return trajectory
        previous[trajectory.index] = trajectory.status
        exits[trajectory.index] = exit_time
        return replace(trajectory, status=OUT_OF_DOMAIN)

    analysed = [recheck(t) for t in run.trajectories]
    excluded = [recheck(t) for t in run.excluded]
    moved = [t for t in analysed if t.index in previous]
    run = replace(
        run,
        trajectories=[t for t in analysed if t.index not in previous],
        excluded=sorted(excluded + moved, key=lambda t: t.index),
    )
    return run, DomainRecheck(
        pairs=pairs,
        min_distance=float(min_distance),
        run_min_distance=run_min,
        previous_status=previous,
        newly_excluded=[t.index for t in moved],
        exit_time_fs=exits,
    )
