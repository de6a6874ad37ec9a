"""Hop statistics on a synthetic run: counts per trajectory, hop times, the dihedral and gap at
each hop, frustrated hops."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fusionff.analysis.dihedral import dihedral_series
from fusionff.analysis.hops import hop_statistics, nearest_frame
from fusionff.analysis.run import read_run
from tests.fixtures.analysis.synthetic_run import CENTRAL, write_synthetic_run


def test_hop_statistics_of_a_synthetic_run(tmp_path):
    """Each trajectory has the summary's hops; a hop's dihedral and gap are those of the frame
    nearest to it; hop times are the generator's; frustrated hops add up."""
    truth = write_synthetic_run(tmp_path, n_traj=15, tau_fs=120.0, seed=2)
    run = read_run(tmp_path)
    dihedrals = [dihedral_series(t.path, CENTRAL) for t in run.trajectories]
    stats = hop_statistics(run.trajectories, dihedrals)
    hopped = np.isfinite(truth["hop_time"])
    np.testing.assert_array_equal(stats.hops_per_trajectory, hopped.astype(int))
    times = [e.time_fs for e in stats.events]
    np.testing.assert_allclose(times, np.array(truth["hop_time"])[hopped])
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert stats.frustrated_per_trajectory.sum() == sum(
        e["n_frustrated"] for e in summary["trajectories"]
    )
    assert len(stats.frustrated_times_fs) == stats.frustrated_per_trajectory.sum() > 0
    by_index = {t.index: (t, d) for t, d in zip(run.trajectories, dihedrals, strict=True)}
    for event in stats.events:
        traj, (t, d) = by_index[event.trajectory]
        frame = nearest_frame(traj.time, event.time_fs)
        assert abs(traj.time[frame] - event.time_fs) <= 1.0  # frames every 2 fs
        assert event.gap == pytest.approx(traj.energies[frame, 1] - traj.energies[frame, 0])
        assert event.dihedral == d[frame]
        assert (event.source, event.target) == (1, 0)
    record = stats.to_dict(n_bins=5)
    assert record["n_hops"] == hopped.sum() and record["by_type"] == {"1->0": int(hopped.sum())}
    assert sum(record["hop_time_histogram"]["counts"]) == hopped.sum()
    n_hopped = int(hopped.sum())
    expected = {"0": len(hopped) - n_hopped, "1": n_hopped}
    assert record["trajectories_by_number_of_hops"] == {k: v for k, v in expected.items() if v}
