"""Active-learning selection on a synthetic committee run: frames of largest spread at least
the minimum separation apart within a trajectory, then frames of small gap, written as an
extended XYZ queue that ``fusionff label`` reads."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
from ase import Atoms
from ase.io import read, write

from fusionff.analysis.selection import pick_separated, select_frames
from fusionff.dynamics.h5md import TrajectoryFile

DT_FS = 1.0
N_FRAMES = 10


def _trajectory(
    path, index: int, status: str, force_std, active, gap, energy_std, nan_frames=()
) -> np.ndarray:
    """A water trajectory of N_FRAMES frames DT_FS apart: force_std (F, 2) eV/Angstrom,
    active (F,), gap (F,) eV = E_1 - E_0, energy_std (F, 2) eV; energies NaN at
    ``nan_frames``. Returns the positions (F, 3, 3) Angstrom."""
    atoms = Atoms("OH2", positions=[[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]])
    f = TrajectoryFile(path, atoms.numbers, atoms.get_masses(), n_states=2)
    f.create({"trajectory": index})
    positions = atoms.positions + 0.01 * np.arange(N_FRAMES)[:, None, None] + index
    for k in range(N_FRAMES):
        energies = np.array([0.0, gap[k]])
        if k in nan_frames:
            energies[:] = np.nan
        f.add_frame(
            k,
            k * DT_FS,
            position=positions[k],
            velocity=np.zeros((3, 3)),
            active_state=active[k],
            energies=energies,
            populations=np.array([0.0, 1.0]),
            kinetic_energy=0.1,
            total_energy=0.1 + energies[active[k]],
            energy_std=energy_std[k],
            force_std=force_std[k],
        )
    f.flush({"status": status})
    return positions


@pytest.fixture()
def run_dir(tmp_path):
    """Two trajectories. Force spread of the active state (eV/Angstrom): trajectory 0 peaks
    at frames 3 (0.9) and 4 (0.8) and has 0.7 at frame 8, where its inactive state has 1.5;
    trajectory 1 (stopped for its spread) has 0.85 at frame 5 and NaN energies at frame 9
    (spread 2.0 there). Gaps (eV): trajectory 1 has 0.05, 0.02, 0.3 and 0.08 at frames 5, 6,
    7 and 8; trajectory 0 has 0.09 at frame 0. Energy spread: largest at trajectory 1 frame
    2 (0.5, state 0) and trajectory 0 frame 6 (0.4, state 1)."""
    low = 0.1
    force0 = np.full((N_FRAMES, 2), low)
    force0[3, 1], force0[4, 1], force0[8, 1], force0[8, 0] = 0.9, 0.8, 1.5, 0.7
    active0 = np.ones(N_FRAMES, dtype=int)
    active0[8] = 0
    force1 = np.full((N_FRAMES, 2), low)
    force1[5] = 0.85
    force1[9] = 2.0
    gap0, gap1 = np.full(N_FRAMES, 3.0), np.full(N_FRAMES, 3.0)
    gap0[0] = 0.09
    gap1[5:9] = [0.05, 0.02, 0.3, 0.08]
    e_std0, e_std1 = np.full((N_FRAMES, 2), 0.01), np.full((N_FRAMES, 2), 0.01)
    e_std0[6, 1], e_std1[2, 0] = 0.4, 0.5
    positions = [
        _trajectory(tmp_path / "traj_00000.h5md", 0, "ok", force0, active0, gap0, e_std0),
        _trajectory(
            tmp_path / "traj_00001.h5md",
            1,
            "committee-spread",
            force1,
            np.ones(N_FRAMES, dtype=int),
            gap1,
            e_std1,
            nan_frames=(9,),
        ),
    ]
    entries = [
        {
            "index": i,
            "status": status,
            "hops": [],
            "initial_state": 1,
            "final_state": 1,
            "n_frustrated": 0,
            "final_time_fs": (N_FRAMES - 1) * DT_FS,
            "file": f"traj_{i:05d}.h5md",
        }
        for i, status in ((0, "ok"), (1, "committee-spread"))
    ]
    (tmp_path / "summary.json").write_text(json.dumps({"trajectories": entries, "config": {}}))
    write(tmp_path / "topology.pdb", Atoms("OH2", positions=positions[0][0]))
    return tmp_path, positions


def _picked(selection) -> list[tuple[int, int, str]]:
    return [(f.trajectory, f.frame, "+".join(f.reasons)) for f in selection.frames]


def test_top_spread_frames_respect_the_separation(run_dir):
    """By force spread of the active state: (0, 3) 0.9, (1, 5) 0.85, then (0, 4) 0.8 is 1 fs
    from (0, 3) and skipped with a 2 fs separation, (0, 8) 0.7 is taken (its 1.5 is on the
    inactive state), never the NaN frame; with no separation (0, 4) comes third."""
    path, positions = run_dir
    selection = select_frames(path, n_spread=3, min_separation_fs=2.0)
    assert _picked(selection) == [(0, 3, "spread"), (1, 5, "spread"), (0, 8, "spread")]
    assert [f.spread for f in selection.frames] == [0.9, 0.85, 0.7]
    assert selection.frames[1].status == "committee-spread"
    np.testing.assert_array_equal(selection.positions[0], positions[0][3])
    np.testing.assert_array_equal(selection.positions[1], positions[1][5])
    np.testing.assert_array_equal(selection.numbers, [8, 1, 1])
    close = select_frames(path, n_spread=3, min_separation_fs=0.0)
    assert _picked(close) == [(0, 3, "spread"), (1, 5, "spread"), (0, 4, "spread")]


def test_small_gap_frames_are_added_with_the_separation(run_dir):
    """Gap below 0.1 eV: (1, 6) 0.02 is 1 fs from (1, 5), which the spread pass took and
    which is marked spread+gap; (1, 8) 0.08 and (0, 0) 0.09 are added; (1, 7) 0.3 is above
    the threshold. n_gap=1 adds only the smallest eligible gap."""
    path, _ = run_dir
    selection = select_frames(path, n_spread=2, min_separation_fs=2.0, max_gap=0.1)
    assert _picked(selection) == [
        (0, 3, "spread"),
        (1, 5, "spread+gap"),
        (1, 8, "gap"),
        (0, 0, "gap"),
    ]
    assert selection.frames[2].gap_ev == pytest.approx(0.08)
    one = select_frames(path, n_spread=2, min_separation_fs=2.0, max_gap=0.1, n_gap=1)
    assert _picked(one)[-1] == (1, 8, "gap") and len(one.frames) == 3
    by_gap_only = select_frames(path, n_spread=0, min_separation_fs=0.0, max_gap=0.1)
    assert _picked(by_gap_only) == [(1, 6, "gap"), (1, 5, "gap"), (1, 8, "gap"), (0, 0, "gap")]


def test_energy_spread_is_the_largest_over_the_states(run_dir):
    """spread="energy": the largest energy std over the states, eV."""
    path, _ = run_dir
    selection = select_frames(path, n_spread=2, min_separation_fs=1.0, spread="energy")
    assert _picked(selection) == [(1, 2, "spread"), (0, 6, "spread")]
    assert [f.spread for f in selection.frames] == [0.5, 0.4]


def test_force_max_spread_is_the_largest_force_spread_over_the_states(run_dir):
    """spread="force-max": trajectory 0's frame 8 (inactive state 1.5 eV/Angstrom, active 0.7)
    comes first; by the active state's spread it would come after 0.9, 0.85 and 0.8."""
    path, _ = run_dir
    selection = select_frames(path, n_spread=2, min_separation_fs=1.0, spread="force-max")
    assert _picked(selection) == [(0, 8, "spread"), (0, 3, "spread")]
    assert [f.spread for f in selection.frames] == [1.5, 0.9]
    assert selection.to_dict()["spread_unit"] == "eV/Angstrom"
    active = select_frames(path, n_spread=4, min_separation_fs=1.0)
    assert _picked(active)[-1] == (0, 8, "spread")


def test_queue_file_is_extended_xyz_that_label_reads(run_dir, tmp_path):
    """write_xyz: ase.io.read (what fusionff label uses) gets the positions (Angstrom),
    numbers and why each frame was picked."""
    path, positions = run_dir
    selection = select_frames(path, n_spread=2, min_separation_fs=2.0, max_gap=0.1)
    queue = selection.write_xyz(tmp_path / "queue.xyz")
    images = read(queue, index=":")
    assert len(images) == len(selection.frames) == 4
    for atoms, frame, x in zip(images, selection.frames, selection.positions, strict=True):
        np.testing.assert_allclose(atoms.positions, x, atol=1e-8)
        assert list(atoms.numbers) == [8, 1, 1] and atoms.calc is None
        assert atoms.info["trajectory"] == frame.trajectory
        assert atoms.info["time_fs"] == pytest.approx(frame.time_fs)
        assert atoms.info["reasons"] == "+".join(frame.reasons)
        assert atoms.info["spread_unit"] == "eV/Angstrom"
    np.testing.assert_allclose(images[2].positions, positions[1][8], atol=1e-8)


def test_pick_separated_is_greedy_per_group():
    """Candidates in the given order, each at least the separation from those taken in its
    group; frames already taken count; n caps the number."""
    groups = np.array(["a", "a", "b", "a", "b"])
    times = np.array([0.0, 1.0, 0.0, 5.0, 1.5])
    assert pick_separated(groups, times, np.arange(5), 2.0) == [0, 2, 3]
    assert pick_separated(groups, times, np.arange(5), 2.0, n=2) == [0, 2]
    taken = {"a": [4.0]}
    assert pick_separated(groups, times, np.arange(5), 2.0, taken=taken) == [0, 2]
    assert taken == {"a": [4.0, 0.0], "b": [0.0]}


def test_a_run_without_spreads_selects_by_gap_only(run_dir):
    """Without committee spreads in the files, n_spread > 0 is an error that says so."""
    path, _ = run_dir
    for name in ("traj_00000.h5md", "traj_00001.h5md"):
        with h5py.File(path / name, "a") as f:
            del f["observables/force_std"]
    with pytest.raises(ValueError, match="not a committee run"):
        select_frames(path, n_spread=1, min_separation_fs=1.0)
    assert len(select_frames(path, n_spread=0, min_separation_fs=0.0, max_gap=0.1).frames) == 4


def test_hop_frames_come_first_and_count_for_the_separation(run_dir):
    """hops=True: the frame of each accepted hop (trajectory 0 hops 1 -> 0 at step 8,
    trajectory 1 1 -> 0 at step 4) is taken first, marked "hop"; the spread pass then skips
    (1, 5) (1 fs from the hop frame (1, 4)) and takes (0, 3). Without hops=True the summary's
    hops change nothing."""
    path, _ = run_dir
    summary = json.loads((path / "summary.json").read_text())
    for entry, step in zip(summary["trajectories"], (8, 4), strict=True):
        entry["hops"] = [{"time_fs": step * DT_FS, "step": step, "from": 1, "to": 0}]
    (path / "summary.json").write_text(json.dumps(summary))
    selection = select_frames(path, n_spread=1, min_separation_fs=2.0, hops=True)
    assert _picked(selection) == [(0, 8, "hop"), (1, 4, "hop"), (0, 3, "spread")]
    assert selection.settings["hops"] is True
    plain = select_frames(path, n_spread=2, min_separation_fs=2.0)
    assert _picked(plain) == [(0, 3, "spread"), (1, 5, "spread")]


def _set_hops(path, steps) -> None:
    """Give trajectory i of the run one hop 1 -> 0 at steps[i] (None: no hop)."""
    summary = json.loads((path / "summary.json").read_text())
    for entry, step in zip(summary["trajectories"], steps, strict=True):
        hops = [] if step is None else [{"time_fs": step * DT_FS, "step": step}]
        entry["hops"] = [dict(h, **{"from": 1, "to": 0}) for h in hops]
    (path / "summary.json").write_text(json.dumps(summary))


def test_hot_ground_state_frames_are_skipped_by_gap_and_time_after_the_hop(run_dir):
    """Trajectory 0's frame 8 is on the ground state at a 3.0 eV gap with force spread 0.7
    (third by spread; the next is a 0.1 frame, (0, 0)). Its hop at step 4 puts it 4 fs after
    the hop: with hot_ground_gap 2.0 eV it is skipped when hot_ground_after_fs is 3 fs and kept
    at 5 fs; a gap threshold above 3.0 eV keeps it. It is the only frame skipped: the excited
    state frames at the same gap (all of trajectory 1's but four) are not."""
    path, _ = run_dir
    _set_hops(path, (4, None))
    plain = select_frames(path, n_spread=3, min_separation_fs=2.0)
    assert (0, 8, "spread") in _picked(plain)
    assert plain.settings["hot_ground_frames_skipped"] == 0
    hot = select_frames(
        path, n_spread=3, min_separation_fs=2.0, hot_ground_gap=2.0, hot_ground_after_fs=3.0
    )
    assert _picked(hot) == [(0, 3, "spread"), (1, 5, "spread"), (0, 0, "spread")]
    assert hot.settings["hot_ground_frames_skipped"] == 1
    assert hot.settings["hot_ground_gap_ev"] == 2.0
    early = select_frames(
        path, n_spread=3, min_separation_fs=2.0, hot_ground_gap=2.0, hot_ground_after_fs=5.0
    )
    assert _picked(early) == _picked(plain)
    assert _picked(select_frames(path, 3, 2.0, hot_ground_gap=3.5)) == _picked(plain)


def test_hop_frames_are_never_skipped_as_hot(run_dir):
    """A hop frame on the ground state at a large gap is still taken first with hops=True;
    without a hop the time counts from the trajectory's first frame (frame 8 is 8 fs in)."""
    path, _ = run_dir
    _set_hops(path, (8, None))
    selection = select_frames(path, 1, 2.0, hops=True, hot_ground_gap=2.0)
    assert _picked(selection)[0] == (0, 8, "hop")
    _set_hops(path, (None, None))
    late = select_frames(path, 3, 2.0, hot_ground_gap=2.0, hot_ground_after_fs=7.0)
    assert (0, 8, "spread") not in _picked(late)
    assert late.settings["hot_ground_frames_skipped"] == 1
    assert (0, 8, "spread") in _picked(
        select_frames(path, 3, 2.0, hot_ground_gap=2.0, hot_ground_after_fs=9.0)
    )


def test_negative_hot_after_is_an_error(run_dir):
    path, _ = run_dir
    with pytest.raises(ValueError, match="hot_ground_after_fs"):
        select_frames(path, 1, 2.0, hot_ground_gap=2.0, hot_ground_after_fs=-1.0)
