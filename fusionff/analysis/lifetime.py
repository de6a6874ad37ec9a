"""Decay time of the initially excited state from its population curve.

Two models, fitted with :func:`scipy.optimize.curve_fit` to P(t) on the time grid:

* ``"delayed"``: P(t) = 1 for t <= t0 and exp(-(t - t0) / tau) after (fits t0 and tau);
* ``"exponential"``: P(t) = exp(-t / tau) (fits tau).

The standard errors from the fit covariance treat the grid points as independent, which
they are not (a population curve is a cumulative quantity, its residuals are correlated over
about tau), so they understate the uncertainty, often by an order of magnitude. The
reported ``tau_se`` / ``t0_se`` are therefore bootstrap standard errors over trajectories
(resample trajectories with replacement, rebuild the curve, refit) when per-trajectory values
are given; the covariance errors are kept as ``tau_se_fit`` / ``t0_se_fit``.

A fit is reported only where it describes the data: the population must fall by at least
:data:`MIN_DROP` within the window (otherwise "no decay observed within T fs": a population
that stays near 1 constrains tau only from below), the fit must converge, follow the curve
within :data:`MAX_RMSD` and give tau within :data:`MAX_TAU_WINDOWS` windows (longer is an
extrapolation, not a measurement). Otherwise ``success`` is false and ``message`` says why.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass

import numpy as np
from scipy.optimize import OptimizeWarning, curve_fit

MODELS = ("delayed", "exponential")
MIN_DROP = 0.2
"""Least fall of the population (from its first value to its lowest) that a fit needs."""
MAX_RMSD = 0.1
"""Largest root-mean-square deviation of a fit from the curve that still describes it."""
MAX_TAU_WINDOWS = 10.0
"""Largest tau reported, in units of the time window of the curve."""


def delayed_exponential(t: np.ndarray, t0: float, tau: float) -> np.ndarray:
    """exp(-(t - t0) / tau) for t > t0, 1 before; t, t0, tau in fs."""
    return np.exp(-np.clip(t - t0, 0.0, None) / tau)


def exponential(t: np.ndarray, tau: float) -> np.ndarray:
    """exp(-t / tau); t, tau in fs."""
    return np.exp(-t / tau)


@dataclass
class DecayFit:
    """Result of a decay fit (times in fs). ``t0`` is 0 for the pure exponential.
    ``success`` is false (and the numbers NaN) when the curve shows no decay to fit or the fit
    does not describe it; ``message`` says why. ``drop``: how far the curve falls in the
    window (first value minus lowest); ``window_fs``: the window's length."""

    model: str
    tau: float
    tau_se: float
    t0: float
    t0_se: float
    tau_se_fit: float
    t0_se_fit: float
    rmsd: float
    n_boot: int
    success: bool
    message: str = ""
    drop: float = float("nan")
    window_fs: float = float("nan")

    def curve(self, t: np.ndarray) -> np.ndarray:
        """The fitted P(t) at times ``t`` (fs)."""
        return delayed_exponential(np.asarray(t, dtype=np.float64), self.t0, self.tau)

    def to_dict(self) -> dict:
        return asdict(self)


def _failed(model: str, message: str, drop: float = np.nan, window: float = np.nan) -> DecayFit:
    nan = float("nan")
    return DecayFit(model, nan, nan, nan, nan, nan, nan, nan, 0, False, message, drop, window)


def _fit(t: np.ndarray, p: np.ndarray, model: str) -> tuple[np.ndarray, np.ndarray]:
    """Parameters ((t0, tau) or (tau,)) and their covariance; raises RuntimeError."""
    ok = np.isfinite(p)
    t, p = t[ok], p[ok]
    if len(t) < 3 or np.all(p >= 1.0 - 1e-12):
        raise RuntimeError("no decay in the population curve")
    t_span = max(float(t[-1] - t[0]), 1e-6)
    plateau = t[p >= 1.0 - 1e-9]
    t0_guess = float(plateau.max()) if len(plateau) and model == "delayed" else 0.0
    below = t[p <= np.exp(-1.0)]
    if len(below):
        tau_guess = max(float(below[0]) - t0_guess, 1e-3 * t_span)
    else:
        tau_guess = (float(t[-1]) - t0_guess) / max(-np.log(max(float(p[-1]), 1e-6)), 1e-3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OptimizeWarning)
        if model == "delayed":
            return curve_fit(
                delayed_exponential,
                t,
                p,
                p0=(t0_guess, tau_guess),
                bounds=([0.0, 1e-6], [float(t[-1]), np.inf]),
            )
        return curve_fit(exponential, t, p, p0=(tau_guess,), bounds=([1e-6], [np.inf]))


def fit_decay(
    time: np.ndarray,
    values: np.ndarray,
    model: str = "delayed",
    n_boot: int = 200,
    rng: np.random.Generator | None = None,
    min_drop: float = MIN_DROP,
) -> DecayFit:
    """Fit the decay of a population and bootstrap its errors over trajectories.

    time: (T,) fs. values: (n_traj, T), each trajectory's 1/0 occupation of the state or its
    |c|^2 (NaN where it does not contribute), whose column means are the curve; or a (T,)
    curve itself (then only covariance errors). n_boot: bootstrap resamples (0: covariance
    errors only); rng: the generator drawing them (default: seed 0).
    """
    if model not in MODELS:
        raise ValueError(f"unknown decay model {model!r} (known: {', '.join(MODELS)})")
    time = np.asarray(time, dtype=np.float64)
    values = np.atleast_2d(np.asarray(values, dtype=np.float64))
    if values.shape[1] != len(time):
        raise ValueError(f"values has {values.shape[1]} times, grid has {len(time)}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns
        curve = np.nanmean(values, axis=0)
    ok = np.isfinite(curve)
    if ok.sum() < 3:
        return _failed(model, "fewer than 3 times with a population")
    window = float(time[ok][-1] - time[ok][0])
    drop = float(curve[ok][0] - curve[ok].min())
    if drop <= 1e-12:
        return _failed(model, f"no decay observed within {window:.0f} fs", drop, window)
    if drop < min_drop:
        return _failed(
            model,
            f"no decay to fit within {window:.0f} fs (the population falls by {drop:.2f}; "
            f"a fit needs {min_drop:.2f})",
            drop,
            window,
        )
    try:
        params, cov = _fit(time, curve, model)
    except (RuntimeError, ValueError) as err:
        return _failed(model, f"fit did not converge ({err})", drop, window)
    errors = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    t0, t0_se_fit = (params[0], errors[0]) if model == "delayed" else (0.0, 0.0)
    tau, tau_se_fit = params[-1], errors[-1]
    rmsd = float(np.sqrt(np.mean((delayed_exponential(time[ok], t0, tau) - curve[ok]) ** 2)))
    if not np.all(np.isfinite(errors)):
        return _failed(model, "fit did not converge (no finite covariance)", drop, window)
    if rmsd > MAX_RMSD:
        return _failed(
            model, f"the fit does not describe the curve (rms deviation {rmsd:.2f})", drop, window
        )
    if tau > MAX_TAU_WINDOWS * window:
        return _failed(
            model, f"decay too slow to measure within {window:.0f} fs (tau {tau:.0f} fs)",
            drop, window,
        )  # fmt: skip

    tau_se, t0_se, done = float(tau_se_fit), float(t0_se_fit), 0
    if n_boot > 0 and len(values) > 1:
        rng = np.random.default_rng(0) if rng is None else rng
        samples = []
        for _ in range(n_boot):
            rows = values[rng.integers(0, len(values), len(values))]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                resampled = np.nanmean(rows, axis=0)
            try:
                samples.append(_fit(time, resampled, model)[0])
            except (RuntimeError, ValueError):
                continue  # a resample without decay: it does not constrain tau
        done = len(samples)
        if done > 1:
            spread = np.std(np.array(samples), axis=0, ddof=1)
            tau_se = float(spread[-1])
            t0_se = float(spread[0]) if model == "delayed" else 0.0
    return DecayFit(
        model=model,
        tau=float(tau),
        tau_se=tau_se,
        t0=float(t0),
        t0_se=t0_se,
        tau_se_fit=float(tau_se_fit),
        t0_se_fit=float(t0_se_fit),
        rmsd=rmsd,
        n_boot=done,
        success=True,
        message="bootstrap errors" if done > 1 else "covariance errors",
        drop=drop,
        window_fs=window,
    )
