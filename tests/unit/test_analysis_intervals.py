"""Binomial 95% intervals of fractions of trajectories: exact values at the edges (0 of 16 and
16 of 16 do not collapse), symmetry, coverage, width, and the "not measured" wording."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binom

from fusionff.analysis.intervals import Proportion, clopper_pearson, wilson


def test_zero_of_sixteen_has_lower_bound_zero_and_positive_upper_bound():
    """0 of 16: [0, 1 - 0.025^(1/16)] = [0, 0.2059] (Clopper-Pearson), not the [0, 0] of a
    bootstrap of 16 identical outcomes."""
    low, high = clopper_pearson(0, 16)
    assert low == 0.0
    assert high == pytest.approx(1.0 - 0.025 ** (1 / 16), rel=1e-9)
    assert high == pytest.approx(0.2059, abs=5e-5)


def test_sixteen_of_sixteen_mirrors_zero_of_sixteen():
    """k of n and n - k of n are mirror images about 1/2, for every k."""
    k = np.arange(17)
    low, high = clopper_pearson(k, 16)
    np.testing.assert_allclose(low, 1.0 - high[::-1], atol=1e-12)
    assert high[16] == 1.0 and low[16] == pytest.approx(1.0 - 0.2059, abs=5e-5)
    wl, wh = wilson(k, 16)
    np.testing.assert_allclose(wl, 1.0 - wh[::-1], atol=1e-12)


def test_intervals_contain_the_estimate_and_are_nan_without_trajectories():
    """low <= k/n <= high, both in [0, 1], for every k of n = 1..30; n = 0 gives NaN."""
    for n in range(1, 31):
        k = np.arange(n + 1)
        for low, high in (clopper_pearson(k, n), wilson(k, n)):
            assert np.all((0 <= low) & (low <= k / n) & (k / n <= high) & (high <= 1))
            assert np.all(high - low > 0)
    assert np.isnan(clopper_pearson(0, 0)).all()


@pytest.mark.parametrize("n, p", [(16, 0.05), (16, 0.5), (40, 0.1), (200, 0.5), (200, 0.02)])
def test_clopper_pearson_coverage_is_at_least_95_percent(n, p):
    """Exact coverage (summed over the binomial distribution, no sampling): at least 0.95 for
    Clopper-Pearson, and Wilson's within a few percent of it."""
    k = np.arange(n + 1)
    weight = binom.pmf(k, n, p)
    low, high = clopper_pearson(k, n)
    assert weight[(low <= p) & (p <= high)].sum() >= 0.95
    wl, wh = wilson(k, n)
    assert weight[(wl <= p) & (p <= wh)].sum() >= 0.90


def test_interval_shrinks_as_one_over_root_n():
    """16 times the trajectories make the interval of a fraction 1/2 about 4 times narrower."""
    ratio = np.subtract(*clopper_pearson(25, 50)[::-1]) / np.subtract(
        *clopper_pearson(400, 800)[::-1]
    )
    assert 3.5 < ratio < 4.5


def test_zero_count_is_reported_as_not_measured_with_its_upper_bound():
    """A yield no trajectory reached reads "not measured (0 of 16; 95% upper bound 0.206)";
    a measured one gives value, interval and count; the dict says which it is."""
    none = Proportion.of(0, 16)
    assert not none.measured and none.value == 0.0
    assert none.text() == "not measured (0 of 16; 95% upper bound 0.206)"
    some = Proportion.of(4, 16)
    assert some.text() == "0.250 [0.073, 0.524] (4 of 16)"
    d = none.to_dict()
    assert d["measured"] is False and d["count"] == 0 and d["n"] == 16
    assert d["ci95"] == [0.0, pytest.approx(0.2059, abs=5e-5)]
    assert d["interval"] == "clopper-pearson"
