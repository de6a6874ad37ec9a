"""First passage to S0 as survival data (fusionff.analysis.survival): the Kaplan-Meier curve and
the constant-hazard lifetime against hand-computed values, the exact interval's coverage and
the estimate's consistency on simulated exponential decays with censoring, which trajectories
count as events and where failed ones are censored, the rate in ``fusionff analyze``
recovering a synthetic run's known hop times, and the test of one rate against a rate per
interval (by hand, its false-alarm rate on constant-hazard decays, its power on a decay in
waves), and the fraction that reached S0 by a given time (exact without censoring, the
Kaplan-Meier complement with it, by hand and by coverage on simulated decays; in the report
and the pooling command)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import chi2

from fusionff.analysis.analyze import AnalysisOptions, analysis_to_dict, analyze_run, format_report
from fusionff.analysis.run import Hop, Trajectory, read_run
from fusionff.analysis.survival import (
    FirstPassages,
    combine,
    constant_hazard,
    first_passages,
    hazard_homogeneity,
    kaplan_meier,
    piecewise_hazard,
    reached_by,
    window_edges,
)
from tests.fixtures.analysis.synthetic_run import write_synthetic_run


def passages(time, event, status=None) -> FirstPassages:
    n = len(time)
    return FirstPassages(
        source=1,
        target=0,
        index=np.arange(n),
        time=np.asarray(time, dtype=float),
        event=np.asarray(event, dtype=bool),
        status=status or ["time-limit"] * n,
    )


def trajectory(index, hops, final_time, status="time-limit", initial=1, flag_time=None):
    empty = np.zeros(0)
    return Trajectory(
        index=index,
        seed=index,
        initial_state=initial,
        final_state=hops[-1][2] if hops else initial,
        status=status,
        hops=[Hop(time_fs=t, step=int(2 * t), source=s, target=g) for t, s, g in hops],
        n_frustrated=0,
        frustrated_hops=None,
        final_time_fs=final_time,
        path=Path(f"traj_{index:05d}.h5md"),
        time=empty,
        step=empty,
        active_state=empty,
        energies=empty,
        populations=empty,
        kinetic_energy=empty,
        total_energy=empty,
        flag_time_fs=flag_time,
    )


def test_kaplan_meier_matches_the_product_limit_by_hand():
    """Times 1, 2, 2(censored), 3, 4(censored): S = 4/5, then 4/5 * 3/4 (the censoring at 2
    is at risk at the event at 2), then * 1/2; Greenwood's variance at the last step is
    S^2 (1/20 + 1/12 + 1/2); the log(-log) interval contains S and stays in [0, 1]."""
    km = kaplan_meier(passages([1, 2, 2, 3, 4], [1, 1, 0, 1, 0]))
    np.testing.assert_allclose(km.time, [1, 2, 3])
    np.testing.assert_allclose(km.survival, [0.8, 0.6, 0.3])
    assert km.at_risk.tolist() == [5, 4, 2] and km.events.tolist() == [1, 1, 1]
    assert km.at(0.5) == 1.0 and km.at(2.5) == pytest.approx(0.6) and km.at(9) == pytest.approx(0.3)
    variance = 0.3**2 * (1 / 20 + 1 / 12 + 1 / 2)
    half = 1.959964 * math.sqrt(variance / 0.3**2) / abs(math.log(0.3))
    assert km.low[-1] == pytest.approx(0.3 ** math.exp(half), rel=1e-5)
    assert km.high[-1] == pytest.approx(0.3 ** math.exp(-half), rel=1e-5)
    assert np.all((km.low < km.survival) & (km.survival < km.high))
    assert np.all((km.low >= 0) & (km.high <= 1))


def test_constant_hazard_is_exposure_over_events_with_garwood_limits():
    """After t0 = 1: the event at 1 is before t0 (counted apart), the others at risk are 2
    (event), 2 (censored), 3 (event), 4 (censored): E = 1 + 1 + 2 + 3 = 7 fs, k = 2, tau = 3.5
    fs, the 95% limits E / (chi2(0.975; 6) / 2) and E / (chi2(0.025; 4) / 2)."""
    h = constant_hazard(passages([1, 2, 2, 3, 4], [1, 1, 0, 1, 0]), t0_fs=1.0)
    assert (h.events, h.before_t0, h.at_risk) == (2, 1, 4)
    assert h.exposure_fs == pytest.approx(7.0) and h.window_fs == pytest.approx(3.0)
    assert h.tau_fs == pytest.approx(3.5)
    assert h.tau_low_fs == pytest.approx(7.0 / (chi2.ppf(0.975, 6) / 2))
    assert h.tau_high_fs == pytest.approx(7.0 / (chi2.ppf(0.025, 4) / 2))
    assert h.tau_low_fs < h.tau_fs < h.tau_high_fs


def test_no_passage_gives_a_lower_bound_only():
    """No event in E = 10 x 500 fs: tau is unbounded above, and its lower limit is
    E / -ln(0.025) (chi-square with 2 degrees of freedom); JSON gets null, not inf."""
    h = constant_hazard(passages([500] * 10, [0] * 10))
    assert h.events == 0 and math.isinf(h.tau_fs) and math.isinf(h.tau_high_fs)
    assert h.tau_low_fs == pytest.approx(5000.0 / -math.log(0.025))
    assert h.to_dict()["tau_fs"] is None and h.to_dict()["tau_high_fs"] is None
    assert "tau > 1.36 ps" in h.describe() and "no passage seen" in h.describe()


def test_refuses_a_t0_past_every_observation_and_bad_confidence():
    data = passages([100, 200], [0, 1])
    with pytest.raises(ValueError, match="no trajectory is watched past t0 = 200 fs"):
        constant_hazard(data, t0_fs=200)
    with pytest.raises(ValueError, match="confidence"):
        constant_hazard(data, confidence=1.0)
    with pytest.raises(ValueError, match="t0"):
        constant_hazard(data, t0_fs=-1)


def simulate(rng, n, tau, t0, window, p_fail):
    """n first passages at t0 + Exp(tau), watched until ``window`` or, with probability
    ``p_fail``, until a failure at a uniform time in [0, window]."""
    hop = t0 + rng.exponential(tau, n)
    end = np.where(rng.random(n) < p_fail, rng.uniform(0, window, n), window)
    return passages(np.minimum(hop, end), hop <= end)


def test_estimate_is_consistent_and_the_interval_covers_at_its_level():
    """Simulated barrier-limited decays (tau 2 ps, onset 100 fs, watched 600 fs, 10% of
    trajectories failing at random times): on 20,000 trajectories tau is within 5% of the
    truth; over 400 ensembles of 64 trajectories (about 13 passages each) the 95% interval
    holds the truth in 92-98.5% of them (a wrong exposure or count, or a one-sided limit,
    moves this far outside)."""
    rng = np.random.default_rng(11)
    big = constant_hazard(simulate(rng, 20_000, 2000.0, 100.0, 600.0, 0.1), t0_fs=100.0)
    assert big.tau_fs == pytest.approx(2000.0, rel=0.05)
    covered = []
    for _ in range(400):
        h = constant_hazard(simulate(rng, 64, 2000.0, 100.0, 600.0, 0.1), t0_fs=100.0)
        covered.append(h.tau_low_fs <= 2000.0 <= h.tau_high_fs)
    assert 0.92 <= np.mean(covered) <= 0.985


def test_first_passages_take_the_first_hop_into_the_target_and_censor_failures():
    """Trajectory 0 hops 1->0 at 300, back at 320 and down again at 400: its passage is 300.
    Trajectory 1 never hops: censored at its last time. Trajectory 2 left the domain at 150:
    censored there and counted as a failure. Trajectory 3 starts on S0: not a sample.
    Trajectory 4 was flagged at 250 (its hop at 260 is after that, so not counted).
    ``ends`` shortens trajectory 1's observation."""
    trajs = [
        trajectory(0, [(300.0, 1, 0), (320.0, 0, 1), (400.0, 1, 0)], 600.0, "stopped"),
        trajectory(1, [], 600.0),
        trajectory(2, [], 150.0, "out-of-domain"),
        trajectory(3, [(50.0, 0, 1)], 600.0, initial=0),
        trajectory(4, [(260.0, 1, 0)], 600.0, "committee-spread", flag_time=250.0),
    ]
    fp = first_passages(trajs)
    assert fp.index.tolist() == [0, 1, 2, 4]
    np.testing.assert_allclose(fp.time, [300.0, 600.0, 150.0, 250.0])
    assert fp.event.tolist() == [True, False, False, False]
    assert fp.censored_by_failure == {"committee-spread": 1, "out-of-domain": 1}
    assert first_passages(trajs, ends={1: 200.0}).time[1] == 200.0
    h = constant_hazard(fp)
    assert h.censored_by_failure == {"committee-spread": 1, "out-of-domain": 1}
    assert "censored as failed: 1 committee-spread, 1 out-of-domain" in h.describe()
    with pytest.raises(ValueError, match="no trajectory starts on state 2"):
        first_passages(trajs, source=2)


def test_combine_pools_runs_and_refuses_other_states():
    a, b = passages([1, 2], [1, 0]), passages([3], [1])
    both = combine([a, b])
    assert both.time.tolist() == [1, 2, 3] and both.event.tolist() == [True, False, True]
    other = FirstPassages(2, 0, np.arange(1), np.ones(1), np.ones(1, bool), ["ok"])
    with pytest.raises(ValueError, match="different states"):
        combine([a, other])


def test_analyze_reports_the_rate_of_a_synthetic_run(tmp_path):
    """A synthetic run (hops at 100 fs + Exp(800 fs), watched 400 fs, 2 blown up at 120 fs):
    the analysis's first-passage rate after 100 fs counts exactly the truth's hops and
    exposure (the blown-up trajectories censored at their end), in analysis.json and in the
    report."""
    truth = write_synthetic_run(
        tmp_path, n_traj=60, tau_fs=800.0, t0_fs=100.0, t_max_fs=400.0, n_blown_up=2, seed=3
    )
    run = read_run(tmp_path)
    a = analyze_run(run, AnalysisOptions(hazard_after_fs=100.0, n_boot_fit=10))
    hop = np.asarray(truth["hop_time"])
    observed = hop[np.isfinite(hop)]
    blown = [t for t in run.excluded if t.status == "blew-up"]
    exposure = np.sum(np.minimum(hop, 400.0) - 100.0) + sum(
        max(0.0, min(t.final_time_fs, h.time_fs if (h := next(iter(t.hops), None)) else 1e9) - 100)
        for t in blown
    )
    events = len(observed) + sum(1 for t in blown if t.hops and t.hops[0].time_fs > 100.0)
    fp = analysis_to_dict(a)["decay"]["first_passage"]
    assert fp["events"] == events and fp["exposure_fs"] == pytest.approx(exposure)
    assert fp["censored_by_failure"] == {
        "blew-up": sum(1 for t in blown if not t.hops and t.final_time_fs > 100.0)
    }
    assert fp["tau_fs"] == pytest.approx(exposure / events)
    assert "S1 -> S0 first passage after 100 fs" in format_report(a)


def test_command_pools_runs(tmp_path, capsys):
    """``python -m fusionff.analysis.survival A B --t0 100``: one line per run, one for the
    pool (whose counts are the sums), then the Kaplan-Meier steps."""
    from fusionff.analysis.survival import main

    hops = []
    for name, seed in (("a", 1), ("b", 2)):
        truth = write_synthetic_run(
            tmp_path / name, n_traj=20, tau_fs=300.0, t0_fs=100.0, seed=seed
        )
        hops += [t for t in truth["hop_time"] if np.isfinite(t)]
    assert main([str(tmp_path / "a"), str(tmp_path / "b"), "--t0", "100"]) == 0
    out = capsys.readouterr().out.splitlines()
    events = [int(line.split(": ")[2].split()[0]) for line in out[:2]]
    assert out[2].startswith("pooled (40 trajectories): after 100 fs: ")
    assert int(out[2].split(": ")[2].split()[0]) == sum(events) == len(hops)
    steps = [float(line.split("after ")[1].split()[0]) for line in out[3:]]
    assert steps == sorted(set(hops))


def test_piecewise_rates_add_up_and_attribute_failures_to_their_interval():
    """Times 50 (event), 150 (event), 250 (failed: out of the domain), 350 (event), 400
    (watched to the end), intervals (0, 200] and (200, 400]: the first has 2 events in
    50 + 150 + 200 + 200 + 200 fs at risk and no failure (the failure at 250 lies in the next
    interval), the second 1 event in 50 + 150 + 200 fs and one failure; events and exposures
    add up to the rate over (0, 400]."""
    data = passages(
        [50, 150, 250, 350, 400],
        [1, 1, 0, 1, 0],
        ["stopped", "stopped", "out-of-domain", "stopped", "time-limit"],
    )
    first, second = piecewise_hazard(data, [0, 200, 400])
    assert (first.events, first.exposure_fs, first.censored_by_failure) == (2, 800.0, {})
    assert (second.events, second.exposure_fs) == (1, 400.0)
    assert second.censored_by_failure == {"out-of-domain": 1} and second.before_t0 == 2
    whole = constant_hazard(data, 0.0)
    assert first.events + second.events == whole.events
    assert first.exposure_fs + second.exposure_fs == pytest.approx(whole.exposure_fs)
    with pytest.raises(ValueError, match="increasing"):
        piecewise_hazard(data, [200, 100])


def test_piecewise_rates_agree_under_a_constant_hazard_and_show_an_onset():
    """20,000 simulated passages at 100 fs + Exp(2 ps), watched 1 ps: the rates on (100, 400]
    and (400, 1000] both lie within 6% of 2 ps; on (0, 100], before the onset, there is no
    passage at all."""
    rng = np.random.default_rng(5)
    data = simulate(rng, 20_000, 2000.0, 100.0, 1000.0, 0.0)
    onset, early, late = piecewise_hazard(data, [0, 100, 400, 1000])
    assert onset.events == 0
    assert early.tau_fs == pytest.approx(2000.0, rel=0.06)
    assert late.tau_fs == pytest.approx(2000.0, rel=0.06)


def test_first_passages_from_the_summary_alone_equal_those_from_the_files(tmp_path, capsys):
    """A run kept as its summary.json only (trajectory files deleted, as in an archived
    analysis folder): read_records gives every trajectory's hops, status, times and flag as
    read_run does, so the survival command's numbers do not change."""
    from fusionff.analysis.run import read_records
    from fusionff.analysis.survival import main

    write_synthetic_run(tmp_path / "run", n_traj=24, tau_fs=300.0, t0_fs=100.0, seed=4)
    run = read_run(tmp_path / "run", include_failed=True)
    assert main([str(tmp_path / "run"), "--t0", "100"]) == 0
    with_files = capsys.readouterr().out
    for path in (tmp_path / "run").glob("*.h5md"):
        path.unlink()
    records = read_records(tmp_path / "run")
    assert len(records) == len(run.trajectories) == 24
    for record, t in zip(records, run.trajectories, strict=True):
        assert all(getattr(record, f) == getattr(t, f) for f in record.__dataclass_fields__)
    assert main([str(tmp_path / "run"), "--t0", "100"]) == 0
    assert capsys.readouterr().out == with_files
    with pytest.raises(FileNotFoundError, match="trajectory file"):
        read_run(tmp_path / "run")


def test_a_legacy_flag_without_its_time_in_the_summary_needs_the_file(tmp_path):
    """Summaries written before 2026-12-05 have a flag but no flag_time_fs: the time comes
    from the trajectory file, and without that file the record is refused with the file's
    name (a flagged trajectory's observation ends at its flag: guessing would bias the rate)."""
    import json

    import h5py

    from fusionff.analysis.run import read_records

    write_synthetic_run(tmp_path / "run", n_traj=3, tau_fs=300.0, t0_fs=100.0, seed=1)
    summary_path = tmp_path / "run" / "summary.json"
    summary = json.loads(summary_path.read_text())
    entry = summary["trajectories"][1]
    entry["flag"] = "committee force spread 2.1 eV/A"
    entry.pop("flag_time_fs", None)
    summary_path.write_text(json.dumps(summary))
    name = entry.get("file", "traj_00001.h5md")
    with h5py.File(tmp_path / "run" / name, "a") as f:
        f.require_group("parameters").attrs["flag_time"] = 123.5
    records = read_records(tmp_path / "run")
    assert (records[1].flag, records[1].flag_time_fs) == (entry["flag"], 123.5)
    assert records[0].flag is None and records[0].flag_time_fs is None
    (tmp_path / "run" / name).unlink()
    with pytest.raises(ValueError, match=f"trajectory 1: flagged .*{name}, which has the time"):
        read_records(tmp_path / "run")


def test_homogeneity_test_by_hand():
    """Intervals (0, 200] and (200, 400] with 800 and 400 fs at risk. Passages 2 and 1 are
    proportional to the exposures: G = 0 and p = 1. With the third passage moved to 180 fs
    (exposures 780 and 250, share s = 780 / 1030 in the first): passages 3 and 0, G = 6
    ln(1 / s) = 1.668; of the four ways 3 passages can fall (binomial in s), 3:0, 1:2 (G =
    2.40) and 0:3 (G = 8.50) reach it, 2:1 (G = 0.12) does not, so the exact p is s^3 +
    3 s (1 - s)^2 + (1 - s)^3 = 0.582, which the 20,000 seeded draws reproduce to 0.015
    (about four of their standard errors)."""
    data = passages(
        [50, 150, 250, 350, 400],
        [1, 1, 0, 1, 0],
        ["stopped", "stopped", "out-of-domain", "stopped", "time-limit"],
    )
    even = hazard_homogeneity(data, [0, 200, 400])
    assert even.events == (2, 1) and even.exposure_fs == (800.0, 400.0)
    assert even.statistic == pytest.approx(0.0, abs=1e-12) and even.p_value == 1.0
    assert even.dof == 1 and "consistent with one rate" in even.describe()
    # the third passage moved from 350 into the first interval (at 180), the rest unchanged
    skew = passages(
        [50, 150, 180, 250, 400],
        [1, 1, 1, 0, 0],
        ["stopped", "stopped", "stopped", "out-of-domain", "time-limit"],
    )
    h = hazard_homogeneity(skew, [0, 200, 400])
    assert h.events == (3, 0)
    # exposures: (0, 200]: 50 + 150 + 180 + 200 + 200; (200, 400]: 50 + 200
    assert h.exposure_fs == (780.0, 250.0)
    share = 780.0 / 1030.0
    assert h.statistic == pytest.approx(2 * 3 * math.log(1 / share))
    exact = share**3 + 3 * share * (1 - share) ** 2 + (1 - share) ** 3  # all but 2:1
    assert exact == pytest.approx(0.582, abs=5e-4)
    assert h.p_value == pytest.approx(exact, abs=0.015)
    assert h.p_chi2 == pytest.approx(chi2.sf(h.statistic, 1))
    with pytest.raises(ValueError, match="at least one passage"):
        hazard_homogeneity(passages([100, 200], [0, 0]), [0, 100, 200])


def test_homogeneity_test_false_alarms_at_its_level_and_finds_waves():
    """On 300 simulated ensembles of 64 trajectories with one rate (tau 2 ps after 100 fs,
    watched to 1000 fs, 10% failing at random; about 20 passages each) and four equal
    intervals, p < 0.05 (2,000 draws each) in 2-9% of them (the test's level; a wrong
    expectation or a p taken from the wrong tail moves this far off). An ensemble whose
    passages all fall within (300, 450] fs, the waves of a coherent twist, is rejected with
    p < 0.001, and window_edges splits (100, longest] into equal parts."""
    rng = np.random.default_rng(5)
    rejected = []
    for _ in range(300):
        data = simulate(rng, 64, 2000.0, 100.0, 1000.0, 0.1)
        test = hazard_homogeneity(data, [100, 325, 550, 775, 1000], n_draws=2000, seed=1)
        rejected.append(test.p_value < 0.05)
    assert 0.02 <= np.mean(rejected) <= 0.09
    hop = rng.uniform(300.0, 450.0, 12)
    waves = passages(np.concatenate([hop, np.full(52, 1000.0)]), [1] * 12 + [0] * 52)
    edges = window_edges(waves, 100.0)
    assert edges == [100.0, 325.0, 550.0, 775.0, 1000.0]
    h = hazard_homogeneity(waves, edges)
    assert h.p_value < 0.001 and "not constant" in h.describe()


def test_analyze_and_the_command_test_one_rate(tmp_path, capsys):
    """``fusionff analyze`` reports the test on four equal intervals from --hazard-after to
    the longest trajectory (or on the edges given) in its report and analysis.json, with
    passages that add up to the rate's; ``python -m fusionff.analysis.survival ... --edges``
    prints it after the intervals' rates."""
    from fusionff.analysis.survival import main

    write_synthetic_run(tmp_path, n_traj=24, tau_fs=800.0, t0_fs=100.0, t_max_fs=400.0, seed=3)
    a = analyze_run(read_run(tmp_path), AnalysisOptions(hazard_after_fs=100.0, n_boot_fit=10))
    decay = analysis_to_dict(a)["decay"]
    test = decay["first_passage_test"]
    assert test["edges_fs"] == pytest.approx([100.0, 175.0, 250.0, 325.0, 400.0])
    assert sum(test["events"]) == decay["first_passage"]["events"]
    assert sum(test["exposure_fs"]) == pytest.approx(decay["first_passage"]["exposure_fs"])
    assert "constant hazard? passages" in format_report(a)
    given = analyze_run(
        read_run(tmp_path),
        AnalysisOptions(
            hazard_after_fs=100.0, hazard_edges_fs=(100.0, 250.0, 400.0), n_boot_fit=10
        ),
    )
    assert given.first_passage_test.edges_fs == (100.0, 250.0, 400.0)
    assert main([str(tmp_path), "--t0", "100", "--edges", "100", "250", "400"]) == 0
    out = capsys.readouterr().out
    assert f"G = {given.first_passage_test.statistic:.2f}" in out


def test_homogeneity_test_refuses_what_it_cannot_test():
    """One interval is no test; an interval past every observation names the time; a decay
    no draw of the null reaches says p < 2 / (n + 1) rather than a p of its floor."""
    data = passages([50, 150, 180, 250, 400], [1, 1, 1, 0, 0])
    with pytest.raises(ValueError, match="two intervals or more"):
        hazard_homogeneity(data, [0, 400])
    with pytest.raises(ValueError, match="watched past t0 = 400"):
        hazard_homogeneity(data, [0, 200, 400, 600])
    waves = passages([310, 320, 330, 340] * 5 + [1000] * 40, [1] * 20 + [0] * 40)
    h = hazard_homogeneity(waves, [100, 300, 500, 700, 900], n_draws=1000)
    assert h.p_value == pytest.approx(1 / 1001)
    assert "p < 0.002 (no draw of 1000 reached it" in h.describe()


def test_reached_by_without_censoring_is_a_binomial_proportion():
    """Every trajectory watched to 300 fs or past it: 3 passages at or before 300 fs of 8 is
    3/8 with the exact (Clopper-Pearson) interval; a passage exactly at t counts; one after t
    does not."""
    from fusionff.analysis.intervals import clopper_pearson

    data = passages(
        [50.0, 120.0, 300.0, 310.0, 400.0, 400.0, 400.0, 400.0], [1, 1, 1, 1, 0, 0, 0, 0]
    )
    r = reached_by(data, 300.0)
    low, high = clopper_pearson(3, 8)
    assert (r.events, r.n, r.censored, r.method) == (3, 8, 0, "clopper-pearson")
    assert r.fraction == 3 / 8 and (r.low, r.high) == pytest.approx((float(low), float(high)))
    assert r.bounds == (3 / 8, 3 / 8)
    assert "0.375" in r.describe() and "3 of 8" in r.describe()


def test_reached_by_with_censoring_is_one_minus_kaplan_meier():
    """Passages at 100 and 300 fs, censored at 200, 400 and 500 fs: by 350 fs the product
    limit gives S = (4/5)(2/3), so the fraction is 1 - 8/15 = 7/15 with the complement of
    the curve's interval; the one censored before 350 fs counted either way brackets it
    between 2/5 and 3/5."""
    data = passages([100.0, 200.0, 300.0, 400.0, 500.0], [1, 0, 1, 0, 0])
    r = reached_by(data, 350.0)
    curve = kaplan_meier(data)
    assert r.method == "kaplan-meier" and (r.events, r.n, r.censored) == (2, 5, 1)
    assert r.fraction == pytest.approx(7 / 15)
    assert (r.low, r.high) == pytest.approx((1 - curve.high[1], 1 - curve.low[1]))
    assert r.low < r.fraction < r.high
    assert r.bounds == pytest.approx((2 / 5, 3 / 5))
    assert "counted as not reached / as reached 0.400 to 0.600" in r.describe()


def test_reached_by_before_any_passage_and_what_it_refuses():
    """Before the first passage with censoring, the fraction is 0 and its upper end is that of
    0 of the trajectories watched that long; a time nobody is watched until, or a negative
    one, is refused with a message that names it."""
    from fusionff.analysis.intervals import clopper_pearson

    data = passages([100.0, 250.0, 300.0, 300.0], [0, 1, 0, 0])
    r = reached_by(data, 200.0)
    assert r.fraction == 0.0 and r.low == 0.0
    assert r.high == pytest.approx(float(clopper_pearson(0, 3)[1]))
    with pytest.raises(ValueError, match="no trajectory is watched until 400 fs"):
        reached_by(data, 400.0)
    with pytest.raises(ValueError, match="must be >= 0 fs"):
        reached_by(data, -1.0)


def test_analyze_and_the_command_report_the_fraction_reached(tmp_path, capsys):
    """``fusionff analyze`` reports the fraction on S0 by each reached-by time in its report
    and analysis.json (it equals the synthetic run's hops by then over all started, none
    censored) and notes a time past the run; the pooling command prints the pooled one."""
    from fusionff.analysis.survival import main

    truth = write_synthetic_run(
        tmp_path, n_traj=24, tau_fs=300.0, t0_fs=100.0, t_max_fs=400.0, seed=5
    )
    a = analyze_run(
        read_run(tmp_path), AnalysisOptions(reached_by_fs=(250.0, 900.0), n_boot_fit=10)
    )
    hop = np.asarray(truth["hop_time"])
    reached = analysis_to_dict(a)["decay"]["reached"]
    assert len(reached) == 1 and reached[0]["t_fs"] == 250.0
    assert reached[0]["events"] == int(np.sum(hop <= 250.0)) and reached[0]["n"] == 24
    assert reached[0]["method"] == "clopper-pearson"
    assert "S1 -> S0 first passage by 250 fs" in format_report(a)
    assert any("no fraction reached by 900 fs" in note for note in a.notes)
    assert main([str(tmp_path), str(tmp_path), "--reached-by", "250"]) == 0
    out = capsys.readouterr().out
    assert f"reached S0 by 250 fs: {np.sum(hop <= 250.0) / 24:.3f}" in out
    assert f"{2 * np.sum(hop <= 250.0)} of 48" in out


def test_reached_by_is_consistent_and_covers_at_its_level():
    """Simulated decays (tau 2 ps after a 100 fs onset, watched 600 fs): the true fraction on
    S0 by 500 fs is 1 - exp(-0.2) = 0.181. With 10% of trajectories failing at random times
    (the Kaplan-Meier path) the estimate on 20,000 trajectories is within 3% of it and the
    95% interval of 400 ensembles of 96 holds it in 92-98.5% of them; with none failing (the
    exact path) in 95-99.5% (Clopper-Pearson is conservative, never below its level)."""
    rng = np.random.default_rng(12)
    truth = 1.0 - math.exp(-400.0 / 2000.0)
    big = reached_by(simulate(rng, 20_000, 2000.0, 100.0, 600.0, 0.1), 500.0)
    assert big.method == "kaplan-meier" and big.fraction == pytest.approx(truth, rel=0.03)
    for p_fail, method, low, high in (
        (0.1, "kaplan-meier", 0.92, 0.985),
        (0.0, "clopper-pearson", 0.95, 0.995),
    ):
        covered = []
        for _ in range(400):
            r = reached_by(simulate(rng, 96, 2000.0, 100.0, 600.0, p_fail), 500.0)
            assert r.method == method
            covered.append(r.low <= truth <= r.high)
        assert low <= np.mean(covered) <= high, (method, np.mean(covered))
