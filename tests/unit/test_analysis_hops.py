"""Hop statistics on a synthetic run: counts per trajectory, hop times, the dihedral, gap and
central carbons' pyramidalisation at each hop, frustrated hops."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
from matplotlib.image import imread

from fusionff.analysis.analyze import AnalysisOptions, analysis_to_dict, analyze_run, format_report
from fusionff.analysis.dihedral import dihedral_series
from fusionff.analysis.hops import hop_statistics, nearest_frame
from fusionff.analysis.plots import plot_hops
from fusionff.analysis.run import read_run
from fusionff.data import stilbene
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


def test_pyramidalisation_at_a_hop_is_that_of_the_nearest_written_frame(tmp_path):
    """Both central carbons of a synthetic run are bent out of plane by a different amount in
    every frame; each hop's pyramidalisation_deg (analysis and analysis.json) is [angle sum
    at C1, at C2] computed here with fusionff.data.stilbene.pyramidalisation from the file's
    positions at the frame nearest the hop (not those of the frames beside it); the report
    summarises the smaller of the two and hops.png gets a fourth panel."""
    write_synthetic_run(tmp_path, n_traj=5, tau_fs=40.0, after_hop_fs=30.0, seed=7)
    expected = {}
    for path in sorted(tmp_path.glob("traj_*.h5md")):
        with h5py.File(path, "a") as f:
            value = f["particles/molecule/position/value"]
            bent = [
                stilbene.bend_substituents(
                    stilbene.bend_substituents(x, 0, 2.0 + 1.5 * (k % 9)), 13, 9.0 - (k % 5)
                )
                for k, x in enumerate(value[()])
            ]
            value[...] = np.array(bent)
            time = f["particles/molecule/position/time"][()]
        expected[int(path.stem.split("_")[1])] = (time, np.array(bent))
    analysis = analyze_run(read_run(tmp_path), AnalysisOptions(n_boot_fit=0))
    events = analysis.hops.events
    assert len(events) == 5 and analysis.central_neighbours == ((1, 2, 13), (0, 14, 15))
    records = analysis_to_dict(analysis)["hops"]["events"]
    for event, record in zip(events, records, strict=True):
        time, positions = expected[event.trajectory]
        frame = int(np.argmin(np.abs(time - event.time_fs)))
        sums = [stilbene.pyramidalisation(positions[frame], c) for c in (0, 13)]
        assert event.pyramidalisation == pytest.approx(sums, abs=1e-9)
        assert record["pyramidalisation_deg"] == pytest.approx(sums, abs=1e-9)
        beside = [stilbene.pyramidalisation(positions[frame + 1], c) for c in (0, 13)]
        assert min(abs(a - b) for a, b in zip(sums, beside, strict=True)) > 0.1
        assert max(sums) < 359.0
    smaller = [min(e.pyramidalisation) for e in events]
    assert (
        f"more pyramidal central carbon at the hops: angle sum median {np.median(smaller):.1f} "
        f"degrees (range {min(smaller):.1f}-{max(smaller):.1f}; 360 = planar)"
    ) in format_report(analysis)
    plot_hops(analysis, tmp_path / "hops.png")
    assert imread(tmp_path / "hops.png").shape[1] == round(4 * 4.4 * 120)
