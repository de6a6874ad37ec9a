"""The trajectory file writer: MDAnalysis reads the frame interval and times in ps without a
warning; the project's own reader reads the same file; a resumed file keeps its interval."""

from __future__ import annotations

import warnings

import h5py
import MDAnalysis as mda
import numpy as np
import pytest
from ase import Atoms
from ase.io import write

from fusionff.analysis.run import read_positions
from fusionff.dynamics.h5md import FRAME_INTERVAL, TrajectoryFile

DT_FS = 0.5
STRIDE = 4  # steps per frame: frames every 2 fs
N_FRAMES = 11


def write_trajectory(path, n_frames=N_FRAMES, last_step=None, flush_every=3) -> np.ndarray:
    """Water, frames every STRIDE steps of DT_FS fs (the last one at ``last_step`` if given),
    flushed every ``flush_every`` frames; returns the positions (F, 3, 3) Angstrom."""
    atoms = Atoms("OH2", positions=[[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]])
    f = TrajectoryFile(path, atoms.numbers, atoms.get_masses(), n_states=2)
    f.create({"trajectory": 0, "seed": 1})
    steps = [STRIDE * i for i in range(n_frames)]
    if last_step is not None:
        steps[-1] = last_step
    rng = np.random.default_rng(0)
    positions = atoms.positions + 0.01 * rng.standard_normal((n_frames, 3, 3))
    for i, step in enumerate(steps):
        f.add_frame(
            step,
            step * DT_FS,
            position=positions[i],
            velocity=np.zeros((3, 3)),
            active_state=1,
            energies=np.array([0.0, 3.0]),
            populations=np.array([0.0, 1.0]),
            kinetic_energy=0.1,
            total_energy=3.1,
        )
        if (i + 1) % flush_every == 0:
            f.flush()
    f.flush({"status": "ok"})
    return positions


@pytest.fixture()
def trajectory(tmp_path):
    path = tmp_path / "traj_00000.h5md"
    positions = write_trajectory(path)
    write(tmp_path / "topology.pdb", Atoms("OH2", positions=positions[0]))
    return tmp_path / "topology.pdb", path, positions


def test_mdanalysis_dt_is_the_written_frame_interval_in_ps_without_warning(trajectory):
    """u.trajectory.dt is STRIDE * DT_FS fs in ps, ts.time of the last frame its time in ps,
    and opening, iterating and asking for dt raise no warning at all (none becomes the
    "Reader has no dt information, set to 1.0 ps" of a file without the interval)."""
    topology, path, positions = trajectory
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        u = mda.Universe(str(topology), str(path))
        try:
            assert u.trajectory.dt == pytest.approx(STRIDE * DT_FS / 1000.0)
            times = [ts.time for ts in u.trajectory]
            u.trajectory[-1]
            assert u.trajectory.dt == pytest.approx(STRIDE * DT_FS / 1000.0)
            np.testing.assert_allclose(u.atoms.positions, positions[-1], rtol=1e-6)
        finally:
            u.trajectory.close()
    np.testing.assert_allclose(times, np.arange(N_FRAMES) * STRIDE * DT_FS / 1000.0)
    assert times[-1] == pytest.approx(0.02)  # 40 steps of 0.5 fs = 20 fs = 0.02 ps


def test_file_without_the_interval_gives_mdanalysis_warning(trajectory):
    """The check above can fail: deleting the interval observable brings back MDAnalysis's
    warning and its 1.0 ps default."""
    topology, path, _ = trajectory
    with h5py.File(path, "a") as f:
        del f[FRAME_INTERVAL]
    u = mda.Universe(str(topology), str(path))
    try:
        with pytest.warns(UserWarning, match="no dt information"):
            assert u.trajectory.dt == 1.0
    finally:
        u.trajectory.close()


def test_interval_is_that_of_the_first_two_frames_on_every_row(tmp_path):
    """A last frame off the stride (a trajectory that ended between frames) does not change
    the interval; a one-frame file has NaN (no interval to state)."""
    path = tmp_path / "ended.h5md"
    write_trajectory(path, last_step=STRIDE * (N_FRAMES - 2) + 1)
    with h5py.File(path, "r") as f:
        value = f[f"{FRAME_INTERVAL}/value"]
        assert value.attrs["unit"] == "ps"
        np.testing.assert_allclose(value[:], np.full(N_FRAMES, STRIDE * DT_FS / 1000.0))
        assert f[f"{FRAME_INTERVAL}/time"] == f["particles/molecule/position/time"]
    single = tmp_path / "single.h5md"
    write_trajectory(single, n_frames=1)
    with h5py.File(single, "r") as f:
        assert f[f"{FRAME_INTERVAL}/value"].shape == (1,)
        assert np.isnan(f[f"{FRAME_INTERVAL}/value"][0])


def test_resume_cuts_the_interval_rows_with_the_frames(tmp_path):
    """Resuming at a checkpoint of 5 frames leaves 5 interval rows, still the interval."""
    path = tmp_path / "traj.h5md"
    write_trajectory(path)
    atoms = Atoms("OH2")
    f = TrajectoryFile(path, atoms.numbers, atoms.get_masses(), n_states=2)
    f.resume(n_frames=5, n_hops=0)
    with h5py.File(path, "r") as h:
        np.testing.assert_allclose(h[f"{FRAME_INTERVAL}/value"][:], [STRIDE * DT_FS / 1000] * 5)


def test_own_reader_reads_the_same_positions_and_times_in_fs(trajectory):
    """fusionff.analysis.run reads the file written with the interval (times in fs)."""
    _, path, positions = trajectory
    time, read = read_positions(path, [0, 1, 2])
    np.testing.assert_allclose(time, np.arange(N_FRAMES) * STRIDE * DT_FS)
    np.testing.assert_allclose(read, positions)


def test_a_flush_with_nothing_new_leaves_the_file_alone(tmp_path):
    """A stopped trajectory has no new frames at later checkpoints: its file is not rewritten
    (same inode: no copy replaced it), while a flush with a final attribute still writes."""
    path = tmp_path / "traj_00000.h5md"
    write_trajectory(path)
    atoms_numbers = np.array([8, 1, 1])
    f = TrajectoryFile(path, atoms_numbers, np.array([16.0, 1.0, 1.0]), n_states=2)
    f.resume(N_FRAMES, 0)
    inode = path.stat().st_ino
    f.flush()
    assert path.stat().st_ino == inode
    f.flush({"status": "time-limit"})
    assert path.stat().st_ino != inode
    with h5py.File(path) as h:
        assert h["parameters"].attrs["status"] == "time-limit"
        assert h["particles/molecule/position/value"].shape[0] == N_FRAMES


def test_in_parallel_runs_every_call_and_raises_the_first_error():
    from fusionff.dynamics.h5md import in_parallel

    done = []

    def ok(i):
        return lambda: done.append(i)

    def bad(i):
        def call():
            done.append(i)
            raise ValueError(f"file {i} failed")

        return call

    in_parallel([ok(i) for i in range(20)], workers=4)
    assert sorted(done) == list(range(20))
    done.clear()
    with pytest.raises(ValueError, match="file 3 failed"):
        in_parallel([ok(0), ok(1), ok(2), bad(3), ok(4), bad(5)], workers=3)
    assert sorted(done) == [0, 1, 2, 3, 4, 5]  # the others still ran
