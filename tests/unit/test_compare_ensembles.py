"""``fusionff compare``: two analysed ensembles, the same within statistics or not.

Checks the statistics against independent computations and published values (Newcombe's
interval, Holm's correction, Fisher's exact test by direct hypergeometric sums), then the whole
command on synthetic runs drawn from one distribution (consistent) and from two very different
ones (not consistent, and it names what differs)."""

from __future__ import annotations

import json
from math import comb

import numpy as np
import pytest

from fusionff.analysis.compare import (
    compare_analyses,
    compare_proportions,
    compare_samples,
    holm,
    load_analysis,
    newcombe_interval,
)
from fusionff.cli import main
from tests.fixtures.analysis.synthetic_run import write_synthetic_run

FAST = ["--n-boot-fit", "20", "--no-plots"]


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        # Newcombe (Stat. Med. 17, 873, 1998), Table II, method 10 (hybrid score):
        ((48, 80), (56, 70), (0.0524, 0.3339)),  # example (a): 56/70 - 48/80
        ((3, 10), (9, 10), (0.1705, 0.8090)),  # example (b): 9/10 - 3/10
    ],
)
def test_newcombe_interval_reproduces_the_published_examples(a, b, expected):
    """The difference interval of p_b - p_a matches Newcombe's own table to 4 decimals."""
    low, high = newcombe_interval(a[0], a[1], b[0], b[1])
    assert low == pytest.approx(expected[0], abs=6e-5)
    assert high == pytest.approx(expected[1], abs=6e-5)


def test_newcombe_interval_at_the_edges_stays_in_range_and_covers_zero_for_equal_counts():
    low, high = newcombe_interval(0, 20, 0, 20)
    assert low < 0.0 < high and -1.0 <= low and high <= 1.0
    low, high = newcombe_interval(0, 30, 30, 30)
    assert 0.8 < low < high == 1.0


def test_holm_adjusts_step_down_and_keeps_the_input_order():
    """p = 0.01, 0.04, 0.03, 0.005 (m = 4): sorted 0.005*4, 0.01*3, 0.03*2, max(0.04*1, 0.06)."""
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])


def _fisher_two_sided(a: int, n_a: int, b: int, n_b: int) -> float:
    """Fisher's exact two-sided p by summing the hypergeometric probabilities no larger than
    the observed table's (written here independently of scipy)."""
    total, k = n_a + n_b, a + b

    def prob(x: int) -> float:
        return comb(n_a, x) * comb(n_b, k - x) / comb(total, k)

    observed = prob(a)
    support = range(max(0, k - n_b), min(k, n_a) + 1)
    return sum(prob(x) for x in support if prob(x) <= observed * (1 + 1e-7))


@pytest.mark.parametrize(
    ("a", "n_a", "b", "n_b"), [(66, 395, 49, 395), (3, 12, 9, 11), (0, 40, 5, 40)]
)
def test_proportion_p_value_is_fishers_exact_test(a, n_a, b, n_b):
    row = compare_proportions("x", a, n_a, b, n_b)
    assert row["p_value"] == pytest.approx(_fisher_two_sided(a, n_a, b, n_b), rel=1e-9)
    assert row["difference"] == pytest.approx(b / n_b - a / n_a)


def test_proportions_need_trajectories():
    with pytest.raises(ValueError, match="quantum yield: no trajectories"):
        compare_proportions("quantum yield", 0, 0, 3, 10)


def test_samples_from_one_distribution_pass_and_shifted_ones_fail_the_ks_test():
    rng = np.random.default_rng(3)
    same = compare_samples("t", rng.exponential(300, 200), rng.exponential(300, 200), "fs")
    shifted = compare_samples("t", rng.exponential(300, 200), 400 + rng.exponential(300, 200), "fs")
    assert same["p_value"] > 0.05 and shifted["p_value"] < 1e-6
    few = compare_samples("t", [1.0, 2.0], [1.0, 2.0, 3.0, 4.0, 5.0], "fs")
    assert few["p_value"] is None and "not tested" in few["note"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Three analysed synthetic cis-start runs: a and b drawn from one distribution
    (tau 150 fs, yield 0.5), c from another (tau 600 fs, yield 0.1)."""
    root = tmp_path_factory.mktemp("compare")
    spec = {"a": (150.0, 0.5, 1), "b": (150.0, 0.5, 2), "c": (600.0, 0.1, 3)}
    for name, (tau, quantum_yield, seed) in spec.items():
        write_synthetic_run(
            root / name,
            n_traj=80,
            tau_fs=tau,
            isomerisation_yield=quantum_yield,
            start="cis",
            n_energy_drift=1,
            seed=seed,
        )
        assert main(["analyze", str(root / name), *FAST]) == 0
    return root


def test_an_ensemble_compared_with_itself_has_no_difference(runs):
    analysis = load_analysis(runs / "a")
    result = compare_analyses(analysis, analysis)
    assert result["consistent"] and result["n_tests"] >= 5
    for row in result["rows"]:
        if row["kind"] == "proportion":
            assert row["difference"] == 0.0 and row["p_value"] == pytest.approx(1.0)
        elif row["p_value"] is not None:
            assert row["statistic"] == 0.0
    assert result["populations"]["difference"] == 0.0


def test_two_samples_of_one_ensemble_are_consistent(runs, tmp_path, capsys):
    out = tmp_path / "cmp.json"
    assert main(["compare", str(runs / "a"), str(runs / "b"), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "consistent: no difference significant" in text
    result = json.loads(out.read_text())
    names = [row["quantity"] for row in result["rows"]]
    assert "product trans" in names and "first hop time to S0" in names
    assert "first reach S0 within 250 fs" in names  # half of the 500 fs runs
    assert result["consistent"] and not result["significant"]


def test_different_ensembles_are_told_apart_and_named(runs, capsys):
    assert main(["compare", str(runs / "a"), str(runs / "c")]) == 3
    text = capsys.readouterr().out
    assert "NOT consistent" in text
    result = compare_analyses(load_analysis(runs / "a"), load_analysis(runs / "c"))
    assert "product trans" in result["significant"]
    assert "first reach S0 within 250 fs" in result["significant"]
    trans = next(r for r in result["rows"] if r["quantity"] == "product trans")
    assert trans["difference_ci95"][1] < 0.0  # c isomerises less: the interval excludes 0


def test_a_run_without_analysis_is_refused_with_the_path(tmp_path, capsys):
    assert main(["compare", str(tmp_path / "nowhere"), str(tmp_path / "x.json")]) == 1
    err = capsys.readouterr().err
    assert "nowhere/analysis/analysis.json" in err and "fusionff analyze" in err
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    with pytest.raises(ValueError, match="bad.json: not an analysis.json"):
        load_analysis(bad)


def test_alpha_is_checked(runs):
    analysis = load_analysis(runs / "a")
    with pytest.raises(ValueError, match="alpha"):
        compare_analyses(analysis, analysis, alpha=1.5)


def test_scattering_runs_that_start_on_the_ground_state_get_no_time_to_reach_it(runs):
    """Tully-like runs start on S0: 'first reach S0 within' would count nothing, so by default
    it is left out (it stays available with an explicit time)."""
    analysis = load_analysis(runs / "a")
    ground_start = json.loads(json.dumps(analysis))
    ground_start["populations"]["active_fraction"][0] = [1.0, 0.0]
    names = [r["quantity"] for r in compare_analyses(ground_start, ground_start)["rows"]]
    assert not any("within" in name for name in names)
    names = [r["quantity"] for r in compare_analyses(ground_start, analysis, within_fs=100)["rows"]]
    assert "first reach S0 within 100 fs" in names
