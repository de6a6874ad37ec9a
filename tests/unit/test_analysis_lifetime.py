"""Decay fits: the decay time of synthetic ensembles with exponentially distributed hop times
is recovered within its (bootstrap) standard error; the delayed model finds the delay."""

from __future__ import annotations

import numpy as np
import pytest

from fusionff.analysis.lifetime import delayed_exponential, fit_decay

GRID = np.arange(0.0, 1000.0, 4.0)


def occupation(rng: np.random.Generator, n: int, tau: float, t0: float = 0.0) -> np.ndarray:
    """(n, T) 1/0 occupation of the initial state for hop times t0 + Exp(tau)."""
    hops = t0 + rng.exponential(tau, n)
    return (GRID[None] < hops[:, None]).astype(np.float64)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_exponential_tau_recovered_within_three_standard_errors(seed):
    """200 trajectories, tau = 150 fs: the fitted tau lies within 3 standard errors, and the
    bootstrap standard error is that of the maximum-likelihood estimate, tau/sqrt(n), within a
    factor of 2."""
    rng = np.random.default_rng(seed)
    fit = fit_decay(GRID, occupation(rng, 200, 150.0), "exponential", n_boot=60, rng=rng)
    assert fit.success and fit.n_boot == 60
    assert abs(fit.tau - 150.0) < 3 * fit.tau_se
    assert 0.5 < fit.tau_se / (150.0 / np.sqrt(200)) < 2.0
    assert fit.t0 == 0.0


def test_delayed_model_recovers_delay_and_decay_time():
    """Hop times 80 fs + Exp(120 fs): the delayed model finds t0 and tau within 3 standard
    errors; the pure exponential, which has no delay, overestimates tau and fits worse."""
    rng = np.random.default_rng(5)
    values = occupation(rng, 300, 120.0, t0=80.0)
    delayed = fit_decay(GRID, values, "delayed", n_boot=60, rng=rng)
    plain = fit_decay(GRID, values, "exponential", n_boot=0)
    assert abs(delayed.tau - 120.0) < 3 * delayed.tau_se
    assert abs(delayed.t0 - 80.0) < 3 * delayed.t0_se
    assert plain.tau > delayed.tau and plain.rmsd > 2 * delayed.rmsd
    np.testing.assert_allclose(delayed.curve(np.array([0.0, delayed.t0])), [1.0, 1.0])


def test_covariance_errors_understate_the_uncertainty():
    """The fit covariance treats correlated grid points as independent: its error is far
    below the bootstrap one (which is why the bootstrap error is the one reported)."""
    rng = np.random.default_rng(1)
    fit = fit_decay(GRID, occupation(rng, 200, 150.0), "exponential", n_boot=40, rng=rng)
    assert fit.tau_se_fit < 0.2 * fit.tau_se


def test_exact_curve_is_fitted_exactly():
    """A noise-free delayed exponential curve gives back its parameters."""
    curve = delayed_exponential(GRID, 30.0, 200.0)
    fit = fit_decay(GRID, curve, "delayed")
    assert fit.tau == pytest.approx(200.0, rel=1e-4) and fit.t0 == pytest.approx(30.0, abs=0.1)
    assert fit.message == "covariance errors"


def test_curve_without_decay_gives_no_fit():
    """A population that never leaves the state is reported as no fit, not as a number."""
    fit = fit_decay(GRID, np.ones((5, len(GRID))), "delayed")
    assert not fit.success and np.isnan(fit.tau) and "no decay" in fit.message
    with pytest.raises(ValueError, match="unknown decay model"):
        fit_decay(GRID, np.ones(len(GRID)), "biexponential")


def test_bootstrap_is_reproducible():
    """The same generator seed gives the same errors."""
    values = occupation(np.random.default_rng(2), 50, 100.0)
    a = fit_decay(GRID, values, n_boot=20, rng=np.random.default_rng(7))
    b = fit_decay(GRID, values, n_boot=20, rng=np.random.default_rng(7))
    assert a == b


def test_small_decay_is_reported_as_no_fit_with_the_observed_drop():
    """1 of 16 trajectories leaves the state: the population falls by 1/16 < MIN_DROP, too
    little to measure a lifetime; the fit says so and keeps the drop and the window."""
    values = np.ones((16, len(GRID)))
    values[0, GRID > 300.0] = 0.0
    fit = fit_decay(GRID, values, "exponential")
    assert not fit.success and np.isnan(fit.tau)
    assert fit.message.startswith("no decay to fit within 996 fs")
    assert fit.drop == pytest.approx(1 / 16) and fit.window_fs == pytest.approx(996.0)


def test_fit_that_does_not_describe_the_curve_is_not_reported():
    """A population that dips to 0.2 and comes back to 1 is no exponential decay: both models
    fail with the rms deviation in the message instead of a tau."""
    curve = 1.0 - 0.8 * np.sin(np.pi * GRID / 1000.0) ** 2
    for model in ("delayed", "exponential"):
        fit = fit_decay(GRID, curve, model)
        assert not fit.success and np.isnan(fit.tau)
        assert "does not describe the curve" in fit.message
