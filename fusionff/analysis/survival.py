"""First passage to the ground state as survival data: a decay rate that an ensemble measures
even when its population falls by only a few percent.

A population curve's fit (:mod:`fusionff.analysis.lifetime`) needs the population to fall
clearly within the window; where S1 decays over a barrier, a picosecond lifetime seen in a
few hundred femtoseconds shows as a handful of hops, and the fit declines. Those hops still
measure the rate. Each trajectory that starts on the decaying state is one observation: the
time of its first hop to the target state (an *event*), or, when it has none, the time until
which it was watched (*censored*): the end of the run, or the moment the run stopped it as
failed (out of the domain, blown up, ...). Censoring keeps what a failed trajectory showed
(it stayed on the state that long) without guessing what it would have done next; this
assumes the failure says nothing about the decay that would have followed, which a
demanding reader should check against the number of failures reported beside the rate.

Three estimates and a test:

* :func:`kaplan_meier`: the survival curve S(t) (the fraction still not having reached the
  target), with 95% pointwise intervals (Greenwood's variance on the log(-log) scale).
* :func:`constant_hazard`: the rate k / E of a decay with constant hazard after ``t0``
  (k events after ``t0``, E the total time the trajectories spent at risk after ``t0``), its
  lifetime tau = E / k and an exact interval for tau from the Poisson count (Garwood's
  chi-square limits with the exposure held fixed). With no event, tau has a lower bound only.
  ``t0`` lets the induction period be left out (the time the molecule needs to reach the
  barrier's region); trajectories that decayed before it are left out of the rate, and counted.
* :func:`reached_by`: the fraction that reached the target by a given time (a target such
  as "a quarter within 500 fs"), exact where nothing was censored before it, else the
  Kaplan-Meier complement with the censored ones counted either way beside it.
* :func:`hazard_homogeneity`: whether one rate fits every interval of a partition of the
  window (:func:`piecewise_hazard`), a likelihood-ratio test with a Monte Carlo p-value. A
  decay that comes in waves (an ensemble that reaches the crossing region together, misses,
  and comes back a vibrational period later) fails it, and its "lifetime" is then only the
  mean rate of the window watched: a longer or shorter run gives another number.

Times are in fs. The estimates treat trajectories as independent samples, as surface-hopping
ensembles are (each has its own initial condition and random stream).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy.stats import chi2, norm

from fusionff.analysis.intervals import clopper_pearson
from fusionff.analysis.run import FAILED_STATUSES, TrajectoryRecord


@dataclass(frozen=True)
class FirstPassages:
    """Per trajectory starting on ``source``: ``time`` (fs) of its first hop to ``target``
    (``event`` true) or the end of its observation (``event`` false: censored);
    ``status`` the run's status of each; ``index`` its trajectory index."""

    source: int
    target: int
    index: np.ndarray
    time: np.ndarray
    event: np.ndarray
    status: list[str]

    def __len__(self) -> int:
        return len(self.time)

    @property
    def censored_by_failure(self) -> dict[str, int]:
        """How many trajectories were censored because the run stopped them as failed, by
        status (a run's "ok", "stopped" and "time-limit" are not failures)."""
        return _failures(self.status, ~self.event)


def _failures(status: list[str], censored: np.ndarray) -> dict[str, int]:
    """{failed status: count} over the trajectories marked in ``censored``, sorted by status."""
    chosen = Counter(s for s, c in zip(status, censored, strict=True) if c and s in FAILED_STATUSES)
    return dict(sorted(chosen.items()))


def observation_end(trajectory: TrajectoryRecord) -> float:
    """Until when ``trajectory`` was watched, fs: its last time, or the time the run flagged it
    (whichever is earlier). A trajectory flagged for its committee spread that ran on is thus
    censored at the flag too: after it, the models disagree beyond the run's limits, and
    what the trajectory did there is not counted."""
    end = float(trajectory.final_time_fs)
    if trajectory.flag_time_fs is not None and math.isfinite(trajectory.flag_time_fs):
        end = min(end, float(trajectory.flag_time_fs))
    return end


def first_passages(
    trajectories: Sequence[TrajectoryRecord],
    source: int = 1,
    target: int = 0,
    ends: dict[int, float] | None = None,
) -> FirstPassages:
    """The first-passage data of the trajectories that start on state ``source``: time of the
    first accepted hop into ``target`` (fs), or censored at :func:`observation_end`.
    ``ends`` {trajectory index: fs} ends the observation of those trajectories earlier (a
    domain re-applied after the run: :attr:`~fusionff.analysis.domain.DomainRecheck.exit_time_fs`).
    A hop after the end of observation is ignored (the run's own files have none)."""
    if source == target:
        raise ValueError(f"source and target state are both {source}")
    index, time, event, status = [], [], [], []
    for t in trajectories:
        if t.initial_state != source:
            continue
        end = observation_end(t)
        if ends is not None and t.index in ends:
            end = min(end, float(ends[t.index]))
        hop = next((h for h in t.hops if h.target == target and h.time_fs <= end), None)
        index.append(t.index)
        time.append(end if hop is None else float(hop.time_fs))
        event.append(hop is not None)
        status.append(t.status)
    if not time:
        raise ValueError(f"no trajectory starts on state {source}")
    return FirstPassages(
        source=source,
        target=target,
        index=np.asarray(index, dtype=int),
        time=np.asarray(time, dtype=float),
        event=np.asarray(event, dtype=bool),
        status=status,
    )


@dataclass(frozen=True)
class SurvivalCurve:
    """Kaplan-Meier estimate: ``time`` (fs) of each distinct event, ``survival`` S just after
    it, ``low``/``high`` its pointwise 95% interval, ``at_risk`` the trajectories at risk just
    before it, ``events`` the events at it. S is 1 before the first event."""

    time: np.ndarray
    survival: np.ndarray
    low: np.ndarray
    high: np.ndarray
    at_risk: np.ndarray
    events: np.ndarray

    def at(self, t: float) -> float:
        """S(t), the step function (right-continuous)."""
        i = np.searchsorted(self.time, t, side="right")
        return 1.0 if i == 0 else float(self.survival[i - 1])


def combine(parts: Sequence[FirstPassages]) -> FirstPassages:
    """One sample of several runs' first passages (the same source and target; e.g. runs of
    the same potential and input with different seeds). Indices are kept as they are, so
    they repeat across runs."""
    if not parts:
        raise ValueError("no first-passage data to combine")
    pairs = {(p.source, p.target) for p in parts}
    if len(pairs) > 1:
        raise ValueError(f"first passages between different states: {sorted(pairs)}")
    return FirstPassages(
        source=parts[0].source,
        target=parts[0].target,
        index=np.concatenate([p.index for p in parts]),
        time=np.concatenate([p.time for p in parts]),
        event=np.concatenate([p.event for p in parts]),
        status=[s for p in parts for s in p.status],
    )


def kaplan_meier(data: FirstPassages, confidence: float = 0.95) -> SurvivalCurve:
    """Kaplan-Meier survival of ``data`` with Greenwood intervals on the log(-log) scale
    (they stay inside [0, 1]); a censoring time equal to an event time counts as at risk at
    that event, as usual."""
    z = float(norm.ppf(0.5 + confidence / 2))
    times = np.unique(data.time[data.event])
    surv, low, high, at_risk, events = [], [], [], [], []
    s, greenwood = 1.0, 0.0
    for t in times:
        n = int(np.sum(data.time >= t))
        d = int(np.sum((data.time == t) & data.event))
        s *= 1.0 - d / n
        if n > d:
            greenwood += d / (n * (n - d))
        surv.append(s)
        at_risk.append(n)
        events.append(d)
        if 0.0 < s < 1.0 and greenwood > 0.0:
            log_s = math.log(s)
            half = z * math.sqrt(greenwood) / abs(log_s)
            low.append(s ** math.exp(half))
            high.append(s ** math.exp(-half))
        else:
            low.append(0.0 if s == 0.0 else s)
            high.append(1.0 if s == 1.0 else s)
    return SurvivalCurve(
        time=times,
        survival=np.asarray(surv),
        low=np.asarray(low),
        high=np.asarray(high),
        at_risk=np.asarray(at_risk, dtype=int),
        events=np.asarray(events, dtype=int),
    )


@dataclass(frozen=True)
class ReachedBy:
    """The fraction of trajectories that reached the target state by ``t_fs`` (fs): their first
    passage at or before it (see :func:`reached_by`). ``events``: passages by then; ``n``:
    trajectories; ``censored``: those whose observation ended before ``t_fs`` without a
    passage (outcome unknown). ``method`` "clopper-pearson" (no censoring: ``events`` of
    ``n``, exact interval) or "kaplan-meier" (1 - S(t), Greenwood's interval on the
    log(-log) scale); ``bounds``: the censored ones counted as not reached / as reached."""

    t_fs: float
    fraction: float
    low: float
    high: float
    events: int
    n: int
    censored: int
    method: str
    bounds: tuple[float, float]
    confidence: float

    def to_dict(self) -> dict:
        out = asdict(self)
        out["bounds"] = list(self.bounds)
        return out

    def describe(self) -> str:
        """One line, as a report prints it."""
        level = f"{100 * self.confidence:g}%"
        head = (
            f"by {self.t_fs:g} fs: {self.fraction:.3f} [{self.low:.3f}, {self.high:.3f}] ({level}"
        )
        if self.method == "clopper-pearson":
            return f"{head}, Clopper-Pearson; {self.events} of {self.n})"
        lo, hi = self.bounds
        return (
            f"{head}, Kaplan-Meier; {self.events} passages of {self.n}, {self.censored} "
            f"watched less than {self.t_fs:g} fs without one: counted as not reached / as "
            f"reached {lo:.3f} to {hi:.3f})"
        )


def reached_by(data: FirstPassages, t_fs: float, confidence: float = 0.95) -> ReachedBy:
    """The fraction of ``data``'s trajectories whose first passage came at or before ``t_fs``
    (fs): a target such as "a quarter of the trajectories reach S0 within 500 fs" read off
    directly. Where every trajectory was watched until ``t_fs`` (or passed before it) the
    fraction is a binomial proportion with its exact interval; where some were censored
    earlier (failed, or a shorter run pooled in) it is 1 - S(t) of :func:`kaplan_meier`, and
    ``bounds`` count the censored ones either way. Raises ValueError when no trajectory is
    watched until ``t_fs`` without a passage before it and some were censored (nothing
    measures the fraction then) or ``t_fs`` is negative."""
    if not t_fs >= 0.0:
        raise ValueError(f"reached-by time must be >= 0 fs, got {t_fs!r}")
    n = len(data)
    events = int(np.sum(data.event & (data.time <= t_fs)))
    censored = int(np.sum(~data.event & (data.time < t_fs)))
    if censored == 0:
        method, fraction = "clopper-pearson", events / n
        low, high = (float(x) for x in clopper_pearson(events, n, confidence))
    else:
        watched = int(np.sum(data.time >= t_fs))
        if watched == 0:
            raise ValueError(
                f"no trajectory is watched until {t_fs:g} fs (longest: {data.time.max():g} fs)"
            )
        method, curve = "kaplan-meier", kaplan_meier(data, confidence)
        i = int(np.searchsorted(curve.time, t_fs, side="right"))
        if i == 0:  # no passage yet: bounded as 0 of the trajectories watched that long
            fraction, low, high = 0.0, 0.0, float(clopper_pearson(0, watched, confidence)[1])
        else:
            fraction = 1.0 - float(curve.survival[i - 1])
            low, high = 1.0 - float(curve.high[i - 1]), 1.0 - float(curve.low[i - 1])
    return ReachedBy(
        t_fs=float(t_fs),
        fraction=fraction,
        low=low,
        high=high,
        events=events,
        n=n,
        censored=censored,
        method=method,
        bounds=(events / n, (events + censored) / n),
        confidence=confidence,
    )


@dataclass(frozen=True)
class HazardEstimate:
    """A constant-hazard decay after ``t0_fs`` (see :func:`constant_hazard`). ``tau_fs`` is inf
    with no event; ``tau_high_fs`` is inf then too. ``before_t0``: events at or before t0 (not
    in the rate); ``at_risk``: trajectories still watched and undecayed at t0; ``window_fs``:
    the longest observation after t0."""

    t0_fs: float
    at_risk: int
    events: int
    before_t0: int
    exposure_fs: float
    window_fs: float
    tau_fs: float
    tau_low_fs: float
    tau_high_fs: float
    confidence: float
    censored_by_failure: dict[str, int]

    def to_dict(self) -> dict:
        out = asdict(self)
        for key in ("tau_fs", "tau_low_fs", "tau_high_fs"):
            if not math.isfinite(out[key]):
                out[key] = None  # JSON has no inf; None reads as "unbounded"
        return out

    def describe(self) -> str:
        """One line: the rate's numbers, as a report prints them."""
        head = (
            f"after {self.t0_fs:g} fs: {self.events} first passages among {self.at_risk} "
            f"trajectories at risk, {self.exposure_fs / 1000:.2f} ps watched"
        )
        level = f"{100 * self.confidence:g}%"
        if self.events == 0:
            low = self.tau_low_fs / 1000
            body = f"tau > {low:.2f} ps (lower end of the {level} interval; no passage seen)"
        else:
            body = (
                f"tau = {self.tau_fs / 1000:.2f} ps [{self.tau_low_fs / 1000:.2f}, "
                f"{self.tau_high_fs / 1000:.2f}] ({level}, constant hazard)"
            )
        failed = ", ".join(f"{n} {s}" for s, n in sorted(self.censored_by_failure.items()))
        tail = f"; censored as failed: {failed}" if failed else ""
        before = f"; {self.before_t0} passed before t0" if self.before_t0 else ""
        return f"{head}: {body}{before}{tail}"


def constant_hazard(
    data: FirstPassages, t0_fs: float = 0.0, confidence: float = 0.95
) -> HazardEstimate:
    """Maximum-likelihood lifetime of a decay with constant hazard after ``t0_fs``:
    tau = E / k, E the time at risk after t0 summed over trajectories (fs), k the first
    passages after t0. The interval is exact for the Poisson count k given E:
    rate in [chi2(a/2; 2k) / 2E, chi2(1 - a/2; 2k + 2) / 2E], a = 1 - confidence.
    Raises ValueError when no trajectory is watched past t0."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    if not math.isfinite(t0_fs) or t0_fs < 0:
        raise ValueError(f"t0 must be a finite time >= 0 fs, got {t0_fs}")
    before = data.event & (data.time <= t0_fs)
    risk = data.time > t0_fs
    k = int(np.sum(data.event & risk))
    exposure = float(np.sum(data.time[risk] - t0_fs))
    if not np.any(risk):
        raise ValueError(
            f"no trajectory is watched past t0 = {t0_fs:g} fs (longest: {data.time.max():g} fs)"
        )
    a = 1.0 - confidence
    rate_high = float(chi2.ppf(1 - a / 2, 2 * k + 2)) / (2 * exposure)
    rate_low = float(chi2.ppf(a / 2, 2 * k)) / (2 * exposure) if k else 0.0
    return HazardEstimate(
        t0_fs=float(t0_fs),
        at_risk=int(np.sum(risk)),
        events=k,
        before_t0=int(np.sum(before)),
        exposure_fs=exposure,
        window_fs=float(data.time[risk].max() - t0_fs),
        tau_fs=exposure / k if k else math.inf,
        tau_low_fs=1.0 / rate_high,
        tau_high_fs=1.0 / rate_low if rate_low > 0 else math.inf,
        confidence=float(confidence),
        censored_by_failure=_failures(data.status, risk & ~data.event),
    )


def censored_at(data: FirstPassages, t_end_fs: float) -> FirstPassages:
    """``data`` as if every trajectory had been watched until ``t_end_fs`` at most; one
    watched beyond it gets status "time-limit" (what ended it, a failure included, came later)."""
    later = data.time > t_end_fs
    return FirstPassages(
        source=data.source,
        target=data.target,
        index=data.index,
        time=np.minimum(data.time, t_end_fs),
        event=data.event & ~later,
        status=["time-limit" if x else s for s, x in zip(data.status, later, strict=True)],
    )


def piecewise_hazard(
    data: FirstPassages, edges_fs: Sequence[float], confidence: float = 0.95
) -> list[HazardEstimate]:
    """The constant-hazard estimate on each interval (edges[i], edges[i + 1]] (fs): passages
    and time at risk within it only. Equal rates in every interval are what a constant hazard
    means; a rate that grows from one to the next says the decay has not reached its
    exponential regime (the molecule still feeds the barrier's region). Their events and
    exposures add up to those of :func:`constant_hazard` from the first edge to the last."""
    edges = [float(e) for e in edges_fs]
    if len(edges) < 2 or any(b <= a for a, b in zip(edges, edges[1:], strict=False)):
        raise ValueError(f"edges must be at least two increasing times (fs), got {edges}")
    return [
        constant_hazard(censored_at(data, b), a, confidence)
        for a, b in zip(edges, edges[1:], strict=False)
    ]


@dataclass(frozen=True)
class HazardHomogeneity:
    """Whether one rate describes the passages on every interval of :func:`piecewise_hazard`
    (see :func:`hazard_homogeneity`). ``edges_fs``: the interval bounds (fs); ``events`` and
    ``exposure_fs``: passages and time at risk per interval; ``statistic``: the likelihood
    ratio G of a rate per interval against one rate; ``dof``: intervals minus one;
    ``p_value``: the chance of a G at least this large under one rate (Monte Carlo with
    ``n_draws`` draws; the exposures held fixed); ``p_chi2``: the same from the chi-square
    limit (too small where few passages are seen)."""

    edges_fs: tuple[float, ...]
    events: tuple[int, ...]
    exposure_fs: tuple[float, ...]
    statistic: float
    dof: int
    p_value: float
    p_chi2: float
    n_draws: int

    def to_dict(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        """One line: the passages per interval, G and its p-value, and what it means."""
        per = ", ".join(
            f"{k} in ({a:g}, {b:g}]"
            for k, a, b in zip(self.events, self.edges_fs, self.edges_fs[1:], strict=False)
        )
        verdict = (
            "the hazard is not constant: a lifetime from one rate is the window's mean rate, "
            "not a decay constant"
            if self.p_value < 0.05
            else "consistent with one rate"
        )
        if self.p_value * (self.n_draws + 1) < 1.5:  # no draw reached the observed G
            p = f"p < {2 / (self.n_draws + 1):.1g} (no draw of {self.n_draws} reached it"
        else:
            p = f"p = {self.p_value:.3g} ({self.n_draws} draws"
        return (
            f"constant hazard? passages {per}: G = {self.statistic:.2f} on {self.dof} "
            f"degrees of freedom, {p}; chi-square {self.p_chi2:.3g}): {verdict}"
        )


def _likelihood_ratio(events: np.ndarray, expected: np.ndarray) -> np.ndarray:
    """G = 2 sum k ln(k / m) over the last axis (0 where k = 0); ``events`` (..., n) counts,
    ``expected`` (n,) their means under one rate (same total)."""
    k = np.asarray(events, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(k > 0, k * np.log(k / expected), 0.0)
    return 2.0 * terms.sum(axis=-1)


def hazard_homogeneity(
    data: FirstPassages, edges_fs: Sequence[float], n_draws: int = 20000, seed: int = 0
) -> HazardHomogeneity:
    """Test of one constant hazard over the intervals (edges[i], edges[i + 1]] (fs) against a
    rate of its own on each (a piecewise-constant hazard). With exposures E_i and passages k_i
    (K and E in all), the likelihood ratio is G = 2 sum k_i ln(k_i E / (K E_i)). Its p-value
    is taken from the passages' distribution given K under one rate, multinomial with
    probabilities E_i / E (the exposures held fixed, as :func:`constant_hazard`'s interval
    holds them), by ``n_draws`` seeded draws: exact enough where the chi-square limit is not
    (a handful of passages). Raises ValueError for fewer than two intervals, an interval that
    no trajectory is watched in (:func:`piecewise_hazard`) or no passage at all."""
    if len(edges_fs) < 3:
        raise ValueError(f"a constant-hazard test needs two intervals or more; edges {edges_fs}")
    pieces = piecewise_hazard(data, edges_fs)
    events = np.array([p.events for p in pieces])
    exposure = np.array([p.exposure_fs for p in pieces])
    total = int(events.sum())
    if total == 0:
        raise ValueError("a constant-hazard test needs at least one passage; none is seen")
    share = exposure / exposure.sum()
    expected = total * share
    statistic = float(_likelihood_ratio(events, expected))
    draws = np.random.default_rng(seed).multinomial(total, share, size=n_draws)
    simulated = _likelihood_ratio(draws, expected)
    # the observed G counts as one draw, so that p is never 0 (a conservative estimate)
    p_value = float((1 + np.sum(simulated >= statistic - 1e-9)) / (n_draws + 1))
    dof = len(pieces) - 1
    return HazardHomogeneity(
        edges_fs=tuple(float(e) for e in edges_fs),
        events=tuple(int(k) for k in events),
        exposure_fs=tuple(float(e) for e in exposure),
        statistic=statistic,
        dof=dof,
        p_value=p_value,
        p_chi2=float(chi2.sf(statistic, dof)),
        n_draws=int(n_draws),
    )


def window_edges(data: FirstPassages, t0_fs: float, n_intervals: int = 4) -> list[float]:
    """``n_intervals`` equal intervals from ``t0_fs`` to the longest observation (fs)."""
    end = float(data.time.max())
    if not end > t0_fs:
        raise ValueError(f"no trajectory is watched past t0 = {t0_fs:g} fs (longest: {end:g} fs)")
    return [float(x) for x in np.linspace(t0_fs, end, n_intervals + 1)]


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m fusionff.analysis.survival RUN_DIR [RUN_DIR ...] [--t0 FS]``: the
    first-passage rate of one or several runs pooled (e.g. the same input with other seeds)."""
    import argparse

    from fusionff.analysis.run import read_records

    parser = argparse.ArgumentParser(
        prog="python -m fusionff.analysis.survival",
        description="First passage from one state to another over one or several finished "
        "runs pooled: the Kaplan-Meier survival and a constant-hazard lifetime after t0 "
        "(every started trajectory counted; failed ones censored where the run stopped them).",
    )
    parser.add_argument(
        "runs",
        nargs="+",
        help="run directories; only their summary.json is read, so a run kept as its "
        "summary alone (a copy of the analysis folder) pools too",
    )
    parser.add_argument("--t0", type=float, default=0.0, help="onset, fs (default 0)")
    parser.add_argument("--source", type=int, default=1, help="starting state (default 1)")
    parser.add_argument("--target", type=int, default=0, help="target state (default 0)")
    parser.add_argument(
        "--edges",
        type=float,
        nargs="+",
        metavar="FS",
        help="also the rate on each interval between these times, fs (pooled runs): "
        "whether the hazard is constant",
    )
    parser.add_argument(
        "--reached-by",
        type=float,
        nargs="+",
        metavar="FS",
        help="also the fraction (pooled runs) that reached the target by each of these times, "
        "fs, with its 95%% interval",
    )
    args = parser.parse_args(argv)
    parts = []
    for directory in args.runs:
        part = first_passages(read_records(directory), args.source, args.target)
        print(f"{directory}: {constant_hazard(part, args.t0).describe()}")
        parts.append(part)
    data = combine(parts)
    if len(parts) > 1:
        print(f"pooled ({len(data)} trajectories): {constant_hazard(data, args.t0).describe()}")
    for piece in piecewise_hazard(data, args.edges) if args.edges else []:
        end = piece.t0_fs + piece.window_fs
        print(f"  interval ending by {end:g} fs: {piece.describe()}")
    if args.edges:
        try:
            print(f"  {hazard_homogeneity(data, args.edges).describe()}")
        except ValueError as err:
            print(f"  no constant-hazard test: {err}")
    for t in args.reached_by or []:
        try:
            print(f"  reached S{args.target} {reached_by(data, t).describe()}")
        except ValueError as err:
            print(f"  no fraction reached by {t:g} fs: {err}")
    km = kaplan_meier(data)
    for t, s, lo, hi, n in zip(km.time, km.survival, km.low, km.high, km.at_risk, strict=True):
        print(
            f"  S{args.source} survival {s:.3f} [{lo:.3f}, {hi:.3f}] after {t:g} fs ({n} at risk)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
