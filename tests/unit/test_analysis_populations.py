"""Population curves on a common time grid: sample and hold, trajectories that end early,
normalisation, binomial intervals and standard errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fusionff.analysis.intervals import clopper_pearson
from fusionff.analysis.populations import (
    default_grid,
    per_trajectory,
    population_curves,
    sample_frames,
)
from fusionff.analysis.run import Trajectory, read_run
from tests.fixtures.analysis.synthetic_run import write_synthetic_run


def trajectory(time, states, populations=None, n_states=2) -> Trajectory:
    """A hand-made trajectory with the given frame times (fs) and active states."""
    time = np.asarray(time, dtype=np.float64)
    states = np.asarray(states)
    if populations is None:
        populations = np.eye(n_states)[states]
    n = len(time)
    return Trajectory(
        index=0, seed=0, initial_state=int(states[0]), final_state=int(states[-1]),
        status="stopped", hops=[], n_frustrated=0, frustrated_hops=[],
        final_time_fs=float(time[-1]),
        path=Path("none.h5md"), time=time, step=np.arange(n), active_state=states,
        energies=np.zeros((n, n_states)), populations=np.asarray(populations, dtype=float),
        kinetic_energy=np.zeros(n), total_energy=np.zeros(n),
    )  # fmt: skip


def test_sample_and_hold_between_frames():
    """A grid time takes the last frame at or before it; none before the first frame; after
    the last frame only with hold_last."""
    time = np.array([0.0, 2.0, 4.0])
    grid = np.array([-1.0, 0.0, 1.0, 2.0, 3.9, 4.0, 6.0])
    np.testing.assert_array_equal(sample_frames(time, grid), [-1, 0, 0, 1, 1, 2, 2])
    np.testing.assert_array_equal(sample_frames(time, grid, False), [-1, 0, 0, 1, 1, 2, -1])


def test_stopped_trajectories_keep_their_last_state_or_leave():
    """A trajectory that stopped on S0 at 2 fs counts as S0 later on with hold_last; without
    it the fractions at later times are over the one still running."""
    stopped = trajectory([0, 1, 2], [1, 0, 0])
    running = trajectory([0, 1, 2, 3, 4], [1, 1, 1, 1, 1])
    grid = np.arange(5.0)
    held = population_curves([stopped, running], 2, grid)
    np.testing.assert_allclose(held.active[:, 0], [0, 0.5, 0.5, 0.5, 0.5])
    np.testing.assert_array_equal(held.n, [2, 2, 2, 2, 2])
    left = population_curves([stopped, running], 2, grid, hold_last=False)
    np.testing.assert_allclose(left.active[:, 0], [0, 0.5, 0.5, 0, 0])
    np.testing.assert_array_equal(left.n, [2, 2, 2, 1, 1])


def test_active_intervals_are_binomial_and_electronic_errors_of_the_mean():
    """Active fractions carry their Clopper-Pearson 95% interval; mean |c|^2 the standard error
    of the mean."""
    rng = np.random.default_rng(0)
    n = 7
    states = rng.integers(0, 2, size=(n, 3))
    pops = rng.uniform(size=(n, 3))
    trajs = [
        trajectory([0, 1, 2], s, np.stack([1 - p, p], axis=-1))
        for s, p in zip(states, pops, strict=True)
    ]
    curves = population_curves(trajs, 2, np.arange(3.0))
    p1 = (states == 1).mean(axis=0)
    np.testing.assert_allclose(curves.active[:, 1], p1)
    low, high = clopper_pearson((states == 1).sum(axis=0), n)
    np.testing.assert_allclose(curves.active_low[:, 1], low)
    np.testing.assert_allclose(curves.active_high[:, 1], high)
    np.testing.assert_allclose(curves.electronic[:, 1], pops.mean(axis=0))
    np.testing.assert_allclose(curves.electronic_se[:, 1], pops.std(axis=0, ddof=1) / np.sqrt(n))


def test_population_errors_do_not_vanish_at_zero_or_one():
    """Every trajectory on S1 (fraction 1, and 0 on S0): the 95% intervals are [0.794, 1] and
    [0, 0.206] for 16 trajectories, not the zero width of sqrt(p (1 - p) / n)."""
    trajs = [trajectory([0, 1], [1, 1], np.array([[0.0, 1.0], [0.0, 1.0]])) for _ in range(16)]
    curves = population_curves(trajs, 2, np.arange(2.0))
    np.testing.assert_allclose(curves.active[:, 1], 1.0)
    np.testing.assert_allclose(curves.active_high[:, 0], 0.2059, atol=5e-5)
    np.testing.assert_allclose(curves.active_low[:, 1], 1 - 0.2059, atol=5e-5)
    assert np.all(curves.active_high - curves.active_low > 0.2)


def test_default_grid_spans_the_longest_trajectory_at_the_finest_spacing():
    """Default grid: 0 to the longest trajectory, spaced by the smallest frame interval."""
    grid = default_grid([trajectory([0, 2, 4], [1, 1, 1]), trajectory([0, 1, 2, 3], [1] * 4)])
    np.testing.assert_allclose(grid, [0, 1, 2, 3, 4])
    np.testing.assert_allclose(default_grid([trajectory([0, 3], [1, 1])], 1.5), [0, 1.5, 3])
    with pytest.raises(ValueError, match="positive"):
        default_grid([trajectory([0, 3], [1, 1])], 0.0)


def test_fixture_populations_are_normalised_and_match_per_trajectory(tmp_path):
    """On a synthetic run: fractions and mean |c|^2 sum to one at every time, start all in
    S1, and the per-trajectory matrix averages to the same curve."""
    write_synthetic_run(tmp_path, n_traj=12, seed=3)
    run = read_run(tmp_path)
    curves = population_curves(run.trajectories, run.n_states)
    np.testing.assert_allclose(curves.active.sum(axis=1), 1.0)
    np.testing.assert_allclose(curves.electronic.sum(axis=1), 1.0)
    assert curves.active[0, 1] == 1.0 and curves.electronic[0, 1] == 1.0
    assert (np.diff(curves.active[:, 1]) <= 0).all()  # single S1 -> S0 hops, held S0
    matrix = per_trajectory(run.trajectories, 1, curves.time)
    np.testing.assert_allclose(matrix.mean(axis=0), curves.active[:, 1])
    electronic = per_trajectory(run.trajectories, 1, curves.time, electronic=True)
    np.testing.assert_allclose(electronic.mean(axis=0), curves.electronic[:, 1])


def test_active_state_outside_the_states_is_an_error():
    """An active state >= n_states in a file is reported, not silently dropped."""
    with pytest.raises(ValueError, match="active state outside"):
        population_curves([trajectory([0, 1], [0, 2], np.zeros((2, 2)))], 2, np.arange(2.0))
