"""Products and quantum yields: isomer thresholds, classification of synthetic runs with known
products, bootstrap intervals that cover the true yield and shrink with more trajectories."""

from __future__ import annotations

import numpy as np
import pytest

from fusionff.analysis.analyze import AnalysisOptions, analyze_run
from fusionff.analysis.products import (
    Thresholds,
    bootstrap_yields,
    classify,
    isomer,
    product_statistics,
)
from fusionff.analysis.run import read_run
from tests.fixtures.analysis.synthetic_run import write_synthetic_run

FAST = dict(n_boot=500, n_boot_fit=10)


def test_isomer_thresholds_fold_the_dihedral():
    """|dihedral| < 90 is cis and > 90 trans whatever its sign or period; a gap between the
    thresholds is "twisted"; the thresholds are checked."""
    assert [isomer(d) for d in (0.0, -45.0, 89.9, 90.1, -179.0, 180.0, 350.0)] == [
        "cis", "cis", "cis", "trans", "trans", "trans", "cis"
    ]  # fmt: skip
    gap = Thresholds(cis_below=60.0, trans_above=120.0)
    assert [isomer(d, gap) for d in (59.0, 90.0, -121.0)] == ["cis", "twisted", "trans"]
    with pytest.raises(ValueError, match="cis_below <= trans_above"):
        Thresholds(cis_below=100.0, trans_above=80.0)
    with pytest.raises(ValueError, match="not finite"):
        isomer(float("nan"))


def test_trajectories_off_the_ground_state_are_s1():
    """A trajectory that ends on an excited state is "S1" whatever its geometry."""
    assert classify(1, 5.0) == "S1" and classify(2, 175.0) == "S1"
    assert classify(0, 5.0) == "cis" and classify(0, 175.0) == "trans"


@pytest.mark.parametrize("start", ["trans", "cis"])
def test_products_and_yields_of_a_synthetic_run(tmp_path, start):
    """Every trajectory gets the product the generator gave it; the quantum yield counts the
    trajectories that end as the other isomer, and its 95% interval holds the true yield 0.4."""
    truth = write_synthetic_run(
        tmp_path, n_traj=60, tau_fs=80.0, isomerisation_yield=0.4, t_max_fs=700.0,
        start=start, seed=11,
    )  # fmt: skip
    analysis = analyze_run(read_run(tmp_path), AnalysisOptions(**FAST))
    products = analysis.products
    assert products.product == truth["product"]
    assert products.start == [start] * 60
    qy = products.quantum_yield
    assert qy.value == pytest.approx(np.mean(truth["isomerised"]))
    assert qy.count == sum(truth["isomerised"])
    assert qy.low <= 0.4 <= qy.high
    other = "cis" if start == "trans" else "trans"
    assert products.yields[other].value == qy.value
    assert sum(y.value for y in products.yields.values()) == pytest.approx(1.0)


def test_interval_coverage_is_about_95_percent():
    """Over 200 replicate ensembles of 80 trajectories with true yield 0.35, the bootstrap 95%
    interval contains the truth in 88-99% of them (percentile intervals are a bit narrow)."""
    rng = np.random.default_rng(3)
    covered = 0
    for _ in range(200):
        outcomes = rng.random((80, 1)) < 0.35
        (y,) = bootstrap_yields(outcomes, n_boot=300, rng=rng)
        covered += y.low <= 0.35 <= y.high
    assert 0.88 <= covered / 200 <= 0.99


def test_interval_shrinks_with_more_trajectories():
    """16 times the trajectories make the interval about 4 times narrower."""
    rng = np.random.default_rng(4)

    def width(n: int) -> float:
        (y,) = bootstrap_yields(rng.random((n, 1)) < 0.5, n_boot=1000, rng=rng)
        return y.high - y.low

    ratio = width(50) / width(800)
    assert 3.0 < ratio < 5.5


def test_product_statistics_direct():
    """Mixed starts: only trajectories that end as the other isomer count as isomerised; an
    excited or twisted end does not."""
    stats = product_statistics(
        initial_dihedral=[180.0, 180.0, 0.0, 0.0, 180.0],
        final_dihedral=[5.0, 170.0, 175.0, 100.0, 90.0],
        final_state=[0, 0, 0, 1, 0],
        thresholds=Thresholds(60.0, 120.0),
        n_boot=100,
    )
    assert stats.start == ["trans", "trans", "cis", "cis", "trans"]
    assert stats.product == ["cis", "trans", "trans", "S1", "twisted"]
    assert stats.quantum_yield.value == pytest.approx(2 / 5)
    assert stats.counts == {"cis": 1, "trans": 2, "twisted": 1, "S1": 1}


def test_bootstrap_is_reproducible_and_empty_input_is_nan():
    """Same generator seed, same interval; no trajectories, NaN yields."""
    outcomes = np.random.default_rng(0).random((30, 2)) < 0.3
    a = bootstrap_yields(outcomes, 200, np.random.default_rng(9))
    b = bootstrap_yields(outcomes, 200, np.random.default_rng(9))
    assert a == b
    (empty,) = bootstrap_yields(np.zeros((0, 1), dtype=bool))
    assert np.isnan(empty.value) and empty.count == 0
