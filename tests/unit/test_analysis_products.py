"""Products and quantum yields: isomer thresholds, classification of synthetic runs with known
products, binomial intervals that cover the true yield, and a yield no trajectory reached
reported as an upper bound (see test_analysis_intervals for the intervals themselves)."""

from __future__ import annotations

import numpy as np
import pytest

from fusionff.analysis.analyze import AnalysisOptions, analyze_run
from fusionff.analysis.products import (
    Thresholds,
    classify,
    isomer,
    product_statistics,
)
from fusionff.analysis.run import read_run
from tests.fixtures.analysis.synthetic_run import write_synthetic_run

FAST = dict(n_boot_fit=10)


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


def test_product_statistics_direct():
    """Mixed starts: only trajectories that end as the other isomer count as isomerised; an
    excited or twisted end does not."""
    stats = product_statistics(
        initial_dihedral=[180.0, 180.0, 0.0, 0.0, 180.0],
        final_dihedral=[5.0, 170.0, 175.0, 100.0, 90.0],
        final_state=[0, 0, 0, 1, 0],
        thresholds=Thresholds(60.0, 120.0),
    )
    assert stats.start == ["trans", "trans", "cis", "cis", "trans"]
    assert stats.product == ["cis", "trans", "trans", "S1", "twisted"]
    assert stats.quantum_yield.value == pytest.approx(2 / 5)
    assert stats.counts == {"cis": 1, "trans": 2, "twisted": 1, "S1": 1}


def test_no_isomerisation_gives_an_unmeasured_yield_with_upper_bound_not_zero():
    """16 trajectories that all stay on S1: the isomerisation yield is 0 of 16 with the 95%
    interval [0, 0.206] (not the degenerate [0, 0]), and S1 16 of 16 with [0.794, 1]."""
    stats = product_statistics(
        initial_dihedral=[5.0] * 16, final_dihedral=[95.0] * 16, final_state=[1] * 16
    )
    qy = stats.quantum_yield
    assert (qy.count, qy.n, qy.low) == (0, 16, 0.0) and not qy.measured
    assert qy.high == pytest.approx(0.2059, abs=5e-5)
    s1 = stats.yields["S1"]
    assert (s1.value, s1.high) == (1.0, 1.0) and s1.low == pytest.approx(1 - 0.2059, abs=5e-5)
    assert product_statistics([], [], []).quantum_yield.n == 0
