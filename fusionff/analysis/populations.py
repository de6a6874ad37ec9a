"""State populations of an ensemble on a common time grid.

Two populations per state: the fraction of trajectories whose *active* state it is, with its
exact binomial (Clopper-Pearson) 95% interval, which does not collapse where every trajectory
or none is in the state (the standard error sqrt(p (1 - p) / n) would be 0 there); and the
mean electronic population |c|^2 with the standard error of the mean (0 only where every
trajectory has the same |c|^2, e.g. at time 0). A trajectory contributes at grid time t the
value of its last frame at or before t (sample and hold), so frames written with a stride and
grids finer than the frames are both well defined.

Trajectories shorter than the grid (stopped early, e.g. some time after reaching S0) keep
their last frame for later times when ``hold_last`` is true (the default): a trajectory
stopped after relaxing to S0 stays in S0, so populations are not biased towards the
trajectories that are still running. With ``hold_last=False`` they leave the ensemble and
``n`` at that time counts only the trajectories still running.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from fusionff.analysis.intervals import clopper_pearson
from fusionff.analysis.run import Trajectory


@dataclass
class PopulationCurves:
    """``time`` (T,) fs; ``active`` (T, S) fractions with their 95% interval ``active_low`` /
    ``active_high`` (T, S); ``electronic``/``electronic_se`` (T, S) mean |c|^2 and its standard
    error; ``n`` (T,) the number of trajectories contributing at each time."""

    time: np.ndarray
    active: np.ndarray
    active_low: np.ndarray
    active_high: np.ndarray
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
    """Active-state fractions with 95% intervals and mean |c|^2 with standard errors on
    ``grid`` fs (default: :func:`default_grid`): column statistics of :func:`per_trajectory`."""
    if grid is None:
        grid = default_grid(trajectories)
    grid = np.asarray(grid, dtype=np.float64)
    for traj in trajectories:
        if traj.active_state.min() < 0 or traj.active_state.max() >= n_states:
            raise ValueError(f"{traj.path}: active state outside 0..{n_states - 1}")
    states = range(n_states)
    active = np.stack([per_trajectory(trajectories, s, grid, hold_last) for s in states], -1)
    electronic = np.stack(
        [per_trajectory(trajectories, s, grid, hold_last, electronic=True) for s in states], -1
    )
    n = np.isfinite(active[..., 0]).sum(axis=0)
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)  # times with fewer than 2 trajectories
        fraction = np.nanmean(active, axis=0)
        mean = np.nanmean(electronic, axis=0)
        sem = np.nanstd(electronic, axis=0, ddof=1) / np.sqrt(n)[:, None]
    low, high = clopper_pearson(np.nansum(active, axis=0), n[:, None])
    return PopulationCurves(grid, fraction, low, high, mean, sem, n)


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
