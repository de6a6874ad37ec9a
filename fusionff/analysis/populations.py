"""State populations of an ensemble on a common time grid.

Two populations per state: the fraction of trajectories whose *active* state it is (standard
error binomial, sqrt(p (1 - p) / n)) and the mean electronic population |c|^2 (standard
error of the mean). A trajectory contributes at grid time t the value of its last frame at or
before t (sample and hold), so frames written with a stride and grids finer than the frames
are both well defined.

Trajectories shorter than the grid (stopped early, e.g. some time after reaching S0) keep
their last frame for later times when ``hold_last`` is true (the default): a trajectory
stopped after relaxing to S0 stays in S0, so populations are not biased towards the
trajectories that are still running. With ``hold_last=False`` they leave the ensemble and
``n`` at that time counts only the trajectories still running.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from fusionff.analysis.run import Trajectory


@dataclass
class PopulationCurves:
    """``time`` (T,) fs; ``active``/``active_se`` and ``electronic``/``electronic_se`` (T, S);
    ``n`` (T,) the number of trajectories contributing at each time."""

    time: np.ndarray
    active: np.ndarray
    active_se: np.ndarray
    electronic: np.ndarray
    electronic_se: np.ndarray
    n: np.ndarray


def default_grid(trajectories: Sequence[Trajectory], spacing: float | None = None) -> np.ndarray:
    """Grid from 0 to the longest trajectory, spaced by ``spacing`` fs (default: the smallest
    frame interval among the trajectories)."""
    if not trajectories:
        raise ValueError("no trajectories to put on a time grid")
    if spacing is None:
        steps = [np.diff(t.time).min() for t in trajectories if len(t.time) > 1]
        if not steps:
            return np.zeros(1)
        spacing = float(min(steps))
    if spacing <= 0:
        raise ValueError(f"time grid spacing must be positive, got {spacing}")
    t_end = max(float(t.time[-1]) for t in trajectories)
    n = int(np.floor(t_end / spacing + 1e-9)) + 1
    return np.arange(n) * spacing


def sample_frames(time: np.ndarray, grid: np.ndarray, hold_last: bool = True) -> np.ndarray:
    """Index of the frame each grid time takes its value from (last frame at or before it);
    -1 where there is none (before the first frame, or after the last without ``hold_last``).

    time: (n,) fs, increasing; grid: (T,) fs. Returns (T,) int.
    """
    tol = 1e-6 * max(1.0, float(np.abs(time).max()))
    index = np.searchsorted(time, grid + tol, side="right") - 1
    if not hold_last:
        index[grid > time[-1] + tol] = -1
    return index


def population_curves(
    trajectories: Sequence[Trajectory],
    n_states: int,
    grid: np.ndarray | None = None,
    hold_last: bool = True,
) -> PopulationCurves:
    """Active-state fractions and mean |c|^2 with standard errors on ``grid`` (default:
    :func:`default_grid`)."""
    if grid is None:
        grid = default_grid(trajectories)
    grid = np.asarray(grid, dtype=np.float64)
    T, S = len(grid), n_states
    active_sum = np.zeros((T, S))
    elec_sum = np.zeros((T, S))
    elec_sq = np.zeros((T, S))
    n = np.zeros(T, dtype=np.int64)
    for traj in trajectories:
        index = sample_frames(traj.time, grid, hold_last)
        ok = index >= 0
        states = traj.active_state[index[ok]]
        if states.min(initial=0) < 0 or states.max(initial=0) >= S:
            raise ValueError(f"{traj.path}: active state outside 0..{S - 1}")
        active_sum[np.flatnonzero(ok), states] += 1.0
        pops = traj.populations[index[ok]]
        elec_sum[ok] += pops
        elec_sq[ok] += pops**2
        n += ok
    with np.errstate(invalid="ignore", divide="ignore"):
        nn = n[:, None].astype(np.float64)
        active = active_sum / nn
        active_se = np.sqrt(active * (1.0 - active) / nn)
        electronic = elec_sum / nn
        variance = np.clip(elec_sq - nn * electronic**2, 0.0, None) / (nn - 1.0)
        electronic_se = np.where(nn > 1, np.sqrt(variance / nn), np.nan)
    return PopulationCurves(grid, active, active_se, electronic, electronic_se, n)


def per_trajectory(
    trajectories: Sequence[Trajectory],
    state: int,
    grid: np.ndarray,
    hold_last: bool = True,
    electronic: bool = False,
) -> np.ndarray:
    """(n_traj, T) array, for each trajectory on ``grid``: 1 where its active state is
    ``state`` and 0 where not (or its |c|^2 of ``state`` when ``electronic``); NaN where it
    does not contribute. Its column means are the population curve (used to bootstrap fits
    over trajectories)."""
    out = np.full((len(trajectories), len(grid)), np.nan)
    for row, traj in enumerate(trajectories):
        index = sample_frames(traj.time, grid, hold_last)
        ok = index >= 0
        if electronic:
            out[row, ok] = traj.populations[index[ok], state]
        else:
            out[row, ok] = traj.active_state[index[ok]] == state
    return out
