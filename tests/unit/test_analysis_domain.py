"""The run's domain limit re-applied after the fact (``fusionff analyze --domain-min-distance``):
which trajectories it excludes, what it leaves alone, the limits it refuses, and the report
and analysis.json that record it."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from fusionff.analysis.analyze import AnalysisOptions, analysis_to_dict, analyze_run, format_report
from fusionff.analysis.domain import closest_approach
from fusionff.analysis.run import read_run
from fusionff.cli import main
from tests.fixtures.analysis.synthetic_run import write_synthetic_run

FAST = {"n_boot_fit": 10}
PAIRS = [[1, 13], [14, 0]]
"""Each central carbon's hydrogen and the other central carbon (2.10 Angstrom in the
synthetic geometries), as in md/stilbene_cis_r2.yaml."""
DOMAIN = {"pairs": PAIRS, "min_distance": 1.45, "description": "a hydrogen bridges"}


def move_pair(path, pair: tuple[int, int], distance: float, frame: int) -> None:
    """Move, in one written frame of a trajectory file, the first atom of ``pair`` along the
    pair's axis to ``distance`` Angstrom from the second."""
    a, b = pair
    with h5py.File(path, "a") as f:
        value = f["particles/molecule/position/value"]
        p = value[frame]
        axis = (p[a] - p[b]) / np.linalg.norm(p[a] - p[b])
        p[a] = p[b] + distance * axis
        value[frame] = p


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """8 good trajectories and one that drifted in energy (index 8), with the domain above in
    the config: trajectory 0's first pair comes to 1.5 Angstrom at one middle frame,
    trajectory 1's to 2.0, and the drifted one's second pair to 1.5 Angstrom."""
    directory = tmp_path_factory.mktemp("domain")
    truth = write_synthetic_run(directory, n_traj=8, n_energy_drift=1, start="cis", seed=4)
    move_pair(directory / "traj_00000.h5md", (1, 13), 1.5, frame=3)
    move_pair(directory / "traj_00001.h5md", (1, 13), 2.0, frame=3)
    move_pair(directory / "traj_00008.h5md", (14, 0), 1.5, frame=2)
    summary = json.loads((directory / "summary.json").read_text())
    summary["config"]["dynamics"] = {"dt": 0.5, "domain": DOMAIN}
    (directory / "summary.json").write_text(json.dumps(summary))
    return directory, truth


def test_closest_approach_is_the_smallest_pair_distance_over_written_frames(run_dir):
    """1.5 Angstrom where a pair was moved there, 2.0 for the one moved to 2.0, the
    geometry's 2.10 elsewhere."""
    directory, _ = run_dir
    pairs = tuple(map(tuple, PAIRS))
    closest = [closest_approach(directory / f"traj_{i:05d}.h5md", pairs) for i in range(9)]
    assert closest[0] == pytest.approx(1.5) and closest[8] == pytest.approx(1.5)
    assert closest[1] == pytest.approx(2.0)
    np.testing.assert_allclose(closest[2:8], 2.0998, atol=1e-3)


def test_stricter_limit_excludes_the_trajectory_that_came_closer(run_dir):
    """At 1.6 Angstrom trajectory 0 (1.5) is excluded as out-of-domain and trajectory 1 (2.0)
    kept; the drifted trajectory (1.5, excluded already) becomes out-of-domain without being
    counted as newly excluded; the yields are over the 7 left, and the report says so. The
    Run given to the analysis is left unchanged."""
    directory, truth = run_dir
    run = read_run(directory)
    analysis = analyze_run(run, AnalysisOptions(domain_min_distance=1.6, **FAST))
    assert [t.status for t in run.excluded] == ["energy-drift"]  # the caller's Run as it was
    result = analysis_to_dict(analysis)
    counts = result["counts"]
    assert counts["analysed"] == 7 and counts["excluded"] == 2
    assert counts["excluded_indices"] == [0, 8]
    assert counts["by_status"]["out-of-domain"] == 2 and counts["by_status"]["energy-drift"] == 0
    assert result["domain"] == {
        "pairs": PAIRS,
        "min_distance_angstrom": 1.6,
        "run_min_distance_angstrom": 1.45,
        "frames": "written",
        "out_of_domain": 2,
        "out_of_domain_indices": [0, 8],
        "previous_status": {run.trajectories[0].status: 1, "energy-drift": 1},
        "newly_excluded": 1,
        "newly_excluded_indices": [0],
    }
    assert result["options"]["domain_min_distance"] == 1.6
    products = result["products"]
    assert [t["index"] for t in products["trajectories"]] == list(range(1, 8))
    assert [t["product"] for t in products["trajectories"]] == truth["product"][1:]
    qy = products["quantum_yield"]
    assert qy["n"] == 7 and qy["count"] == sum(truth["isomerised"][1:])
    report = format_report(analysis)
    assert (
        "note: domain re-applied at 1.60 Angstrom (run: 1.45) to the written frames: 2 more "
        "trajectories excluded as out-of-domain (1 had been analysed; 1 excluded already as "
        "energy-drift 1)" in report
    )
    assert "a dip below 1.60 between two written frames is missed" in report
    assert "9 trajectories, 7 analysed, 2 excluded" in report


def test_the_runs_own_limit_changes_nothing(run_dir):
    """Re-applied at the run's own 1.45 Angstrom, counts, products and yields are those of the
    analysis without the option, and nothing is out of the domain."""
    directory, _ = run_dir
    plain = analysis_to_dict(analyze_run(read_run(directory), AnalysisOptions(**FAST)))
    same = analysis_to_dict(
        analyze_run(read_run(directory), AnalysisOptions(domain_min_distance=1.45, **FAST))
    )
    assert plain["domain"] is None and plain["options"]["domain_min_distance"] is None
    assert same["domain"]["out_of_domain"] == 0 and same["domain"]["newly_excluded_indices"] == []
    for key in ("counts", "final_state", "products", "populations", "hops"):
        assert same[key] == plain[key], key


def test_limit_below_the_runs_own_is_refused_naming_both(run_dir):
    """1.4 Angstrom is looser than the run's 1.45: the run stopped those trajectories already."""
    directory, _ = run_dir
    with pytest.raises(ValueError, match=r"1\.4 Angstrom is below the run's own 1\.45 Angstrom"):
        analyze_run(read_run(directory), AnalysisOptions(domain_min_distance=1.4, **FAST))


def test_run_without_a_domain_is_refused(tmp_path):
    """A run whose config has no dynamics.domain: the error names summary.json and says the
    run has no domain pairs."""
    write_synthetic_run(tmp_path, n_traj=2, seed=1)
    with pytest.raises(ValueError, match=r"summary\.json: the run has no domain pairs"):
        analyze_run(read_run(tmp_path), AnalysisOptions(domain_min_distance=1.6, **FAST))


def test_cli_domain_min_distance_end_to_end(run_dir, tmp_path, capsys):
    """``fusionff analyze RUN --domain-min-distance 1.6`` writes the option, the domain section
    and the new counts to analysis.json and prints the note; below the run's limit, or with
    --include-failed, it exits with status 1 and a message."""
    directory, _ = run_dir
    out = tmp_path / "dom16"
    args = ["analyze", str(directory), "--output", str(out), "--no-plots", "--n-boot-fit", "10"]
    assert main([*args, "--domain-min-distance", "1.6"]) == 0
    result = json.loads((out / "analysis.json").read_text())
    assert result["options"]["domain_min_distance"] == 1.6
    assert result["domain"]["newly_excluded_indices"] == [0]
    assert result["counts"]["excluded_indices"] == [0, 8]
    assert "domain re-applied at 1.60 Angstrom (run: 1.45)" in capsys.readouterr().out
    assert main([*args, "--domain-min-distance", "1.4"]) == 1
    assert "below the run's own 1.45" in capsys.readouterr().err
    assert main([*args, "--domain-min-distance", "1.6", "--include-failed"]) == 1
    assert "--include-failed" in capsys.readouterr().err


def test_a_stricter_limit_ends_the_observation_where_the_pair_came_closer(run_dir):
    """At 1.6 Angstrom trajectory 0 leaves the domain at its written frame 3 and the drifted
    trajectory 8 at frame 2: their exit times are those frames' times, and the first-passage
    rate censors them there (a hop after it is not counted; their time at risk ends there)."""
    directory, _ = run_dir
    run = read_run(directory)
    plain = analyze_run(run, AnalysisOptions(**FAST)).first_passage
    analysis = analyze_run(run, AnalysisOptions(domain_min_distance=1.6, **FAST))
    frame_time = {i: t.time for i, t in ((t.index, t) for t in run.trajectories + run.excluded)}
    assert analysis.domain.exit_time_fs == {0: frame_time[0][3], 8: frame_time[8][2]}
    by_index = {t.index: t for t in run.trajectories + run.excluded}
    lost = 0.0
    for i, frame in ((0, 3), (8, 2)):
        t = by_index[i]
        end = t.hops[0].time_fs if t.hops else t.final_time_fs
        lost += end - max(frame_time[i][frame], 0.0) if end > frame_time[i][frame] else 0.0
    rate = analysis.first_passage
    assert rate.exposure_fs == pytest.approx(plain.exposure_fs - lost)
    hops_lost = sum(
        1
        for i, f in ((0, 3), (8, 2))
        if by_index[i].hops and by_index[i].hops[0].time_fs > frame_time[i][f]
    )
    assert rate.events == plain.events - hops_lost
    assert rate.censored_by_failure.get("out-of-domain", 0) == 2 - sum(
        1
        for i, f in ((0, 3), (8, 2))
        if by_index[i].hops and by_index[i].hops[0].time_fs <= frame_time[i][f]
    )
