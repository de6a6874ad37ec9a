"""Reading run directories (fusionff.analysis.run) on synthetic runs in the runner's layout,
MDAnalysis on the same files, and the errors for broken directories."""

from __future__ import annotations

import json
import shutil

import h5py
import MDAnalysis as mda
import numpy as np
import pytest

from fusionff.analysis.dihedral import (
    dihedral_series,
    ortho_distance_series,
    universe_dihedral_series,
)
from fusionff.analysis.run import find_topology, read_positions, read_run
from tests.fixtures.analysis.synthetic_run import CENTRAL, write_synthetic_run


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("run")
    write_synthetic_run(directory, n_traj=8, n_blown_up=1, n_energy_drift=1, seed=1)
    return directory


def copy_run(run_dir, tmp_path):
    target = tmp_path / "copy"
    shutil.copytree(run_dir, target)
    return target


def test_mdanalysis_opens_the_fixture_trajectories(run_dir):
    """mda.Universe(topology.pdb, traj.h5md) reads every frame: 26 atoms, positions equal to
    the file's (Angstrom), time in MDAnalysis' ps, observables in ts.data."""
    path = run_dir / "traj_00000.h5md"
    u = mda.Universe(str(run_dir / "topology.pdb"), str(path))
    with h5py.File(path, "r") as f:
        value = f["particles/molecule/position/value"][()]
        time_fs = f["particles/molecule/position/time"][()]
        active = f["observables/active_state/value"][()]
    assert u.atoms.n_atoms == 26 and u.trajectory.n_frames == len(value)
    assert list(u.atoms.elements[:3]) == ["C", "H", "C"]
    for ts in u.trajectory[[0, -1]]:
        np.testing.assert_allclose(ts.positions, value[ts.frame], atol=1e-4)
        assert ts.time == pytest.approx(time_fs[ts.frame] / 1000.0)
        assert ts.data["active_state"] == active[ts.frame]
    u.trajectory.close()


def test_sliced_dihedrals_equal_mdanalysis_universe_dihedrals(run_dir):
    """The one-slice dihedral reader gives MDAnalysis' numbers, frame by frame."""
    for name in ("traj_00000.h5md", "traj_00003.h5md"):
        t1, d1 = dihedral_series(run_dir / name, CENTRAL)
        t2, d2 = universe_dihedral_series(run_dir / "topology.pdb", run_dir / name, CENTRAL)
        np.testing.assert_allclose(t1, t2, atol=1e-9)
        np.testing.assert_allclose(d1, d2, atol=1e-3)
    assert d1[0] == pytest.approx(180.0)


def test_ortho_distance_series_is_the_smallest_ring_to_ring_distance(run_dir):
    """The one-slice ortho series equals MDAnalysis' distance_array on the file's full
    positions, minimised over the four ring-to-ring pairs, on every frame including the last
    (5.05 Angstrom in the trans start); the blown-up trajectory's last frame is NaN."""
    from MDAnalysis.lib.distances import distance_array

    ortho = ((3, 11), (16, 24))  # of ipso 2 and ipso 15 in trans_stilbene()
    path = run_dir / "traj_00002.h5md"
    time, distance = ortho_distance_series(path, ortho)
    with h5py.File(path, "r") as f:
        value = f["particles/molecule/position/value"][()]
        np.testing.assert_array_equal(time, f["particles/molecule/position/time"][()])
    expected = [distance_array(v[list(ortho[0])], v[list(ortho[1])]).min() for v in value]
    np.testing.assert_allclose(distance, expected, atol=1e-4)  # MDAnalysis works in float32
    assert len(distance) == len(value) and distance[0] == pytest.approx(5.047, abs=1e-3)
    _, blown_up = ortho_distance_series(run_dir / "traj_00008.h5md", ortho)
    assert np.isnan(blown_up[-1]) and np.isfinite(blown_up[:-1]).all()


def test_read_positions_keeps_the_requested_order_and_converts_nm(run_dir, tmp_path):
    """Atoms come back in the order asked (unsorted, repeated); nm positions become Angstrom."""
    path = run_dir / "traj_00001.h5md"
    _, ordered = read_positions(path, [0, 2, 13, 15])
    _, shuffled = read_positions(path, [15, 0, 13, 2, 0])
    np.testing.assert_array_equal(shuffled, ordered[:, [3, 0, 2, 1, 0]])
    copy = tmp_path / "nm.h5md"
    shutil.copy(path, copy)
    with h5py.File(copy, "a") as f:
        value = f["particles/molecule/position/value"]
        value[...] = value[()] / 10.0
        value.attrs["unit"] = "nm"
    np.testing.assert_allclose(read_positions(copy, [0, 2, 13, 15])[1], ordered)


def test_failed_trajectories_are_excluded_and_counted(run_dir):
    """Blown-up and energy-drift trajectories are left out of the analysed set by default,
    kept with include_failed, and counted by status either way."""
    run = read_run(run_dir)
    assert len(run.trajectories) == 8
    assert sorted(t.status for t in run.excluded) == ["blew-up", "energy-drift"]
    assert [t.index for t in run.excluded] == [8, 9]
    counts = run.status_counts
    assert counts["blew-up"] == 1 and counts["energy-drift"] == 1 and sum(counts.values()) == 10
    everything = read_run(run_dir, include_failed=True)
    assert len(everything.trajectories) == 10 and not everything.excluded
    assert everything.status_counts == counts


def test_trajectory_contents_match_the_summary(run_dir):
    """Observables have the documented shapes and the summary's hops and final states."""
    run = read_run(run_dir)
    assert run.n_states == 2 and run.dt_fs == 0.5 and run.topology.name == "topology.pdb"
    for t in run.trajectories:
        n = len(t.time)
        assert t.energies.shape == (n, 2) and t.populations.shape == (n, 2)
        assert t.active_state[0] == t.initial_state == 1
        assert t.active_state[-1] == t.final_state
        assert t.final_time_fs == pytest.approx(t.time[-1])
        assert len(t.hops) == (1 if t.final_state == 0 else 0)


def test_runner_summary_without_top_level_n_states_or_dt(run_dir, tmp_path):
    """The runner's summary has neither n_states nor dt_fs: the states come from the files,
    dt from config.dynamics.dt; an entry's 'file' names its trajectory; status 'ok' is known;
    frustrated_hops is optional."""
    target = copy_run(run_dir, tmp_path)
    summary = json.loads((target / "summary.json").read_text())
    del summary["n_states"], summary["dt_fs"]
    summary["config"]["dynamics"] = {"dt": 0.25}
    (target / "traj_00002.h5md").rename(target / "renamed.h5md")
    summary["trajectories"][2]["file"] = "renamed.h5md"
    summary["trajectories"][3]["status"] = "ok"
    summary["trajectories"][4].pop("frustrated_hops")
    (target / "summary.json").write_text(json.dumps(summary))
    run = read_run(target)
    assert run.n_states == 2 and run.dt_fs == 0.25
    assert run.trajectories[2].path.name == "renamed.h5md"
    assert run.status_counts["ok"] == 1
    assert run.trajectories[4].frustrated_hops is None
    assert run.trajectories[5].frustrated_hops is not None


def test_xyz_topology_is_found(tmp_path):
    """A run with topology.xyz instead of topology.pdb."""
    write_synthetic_run(tmp_path, n_traj=1, topology="xyz", t_max_fs=20.0)
    assert find_topology(tmp_path).name == "topology.xyz"


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda s, d: s["trajectories"][0].update(status="exploded"), "unknown status"),
        (lambda s, d: (d / "traj_00001.h5md").unlink(), "traj_00001.h5md not found"),
        (lambda s, d: s["trajectories"][0].pop("final_state"), "missing key 'final_state'"),
        (lambda s, d: (d / "topology.pdb").unlink(), "no topology file"),
        (lambda s, d: s.update(trajectories=[]), "no trajectories"),
    ],
)
def test_broken_run_directories_name_the_problem(run_dir, tmp_path, change, message):
    """Unknown statuses, missing files and keys are errors that say what is wrong."""
    target = copy_run(run_dir, tmp_path)
    summary = json.loads((target / "summary.json").read_text())
    change(summary, target)
    (target / "summary.json").write_text(json.dumps(summary))
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        read_run(target)


def test_missing_observable_is_an_error(run_dir, tmp_path):
    """A trajectory file without one of the five observables is rejected by name."""
    target = copy_run(run_dir, tmp_path)
    with h5py.File(target / "traj_00000.h5md", "a") as f:
        del f["observables/populations"]
    with pytest.raises(ValueError, match="observables/populations/value"):
        read_run(target)
