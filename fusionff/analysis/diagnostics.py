"""What explains an ensemble's outcome: how close each trajectory came to the S1-S0 seam, how
well it conserved energy, and which trajectories were flagged.

A trajectory that never comes near a crossing cannot hop, whatever its hopping algorithm; one
whose total energy drifts is not to be trusted. Per trajectory (from its written frames):

* smallest S1-S0 gap: min over frames of E_1 - E_0 (eV), and the time it is reached (fs);
* energy drift: max over frames of |E_tot(t) - E_tot(0)| (eV).

Frames with non-finite values are skipped. Both are computed for every trajectory, analysed
and excluded; the ensemble summaries (:meth:`Diagnostics.summary`) are over the analysed ones.
Flagged are the trajectories with a failed status and those a committee run flagged for their
spread (``action: flag`` lets them run on; their reason is kept in ``flag``, its time in
``flag_time_fs``).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from fusionff.analysis.run import FAILED_STATUSES, Run, Trajectory

SPREAD_FLAG = "committee-spread"
"""The key of trajectories flagged for their committee spread (stopped or not)."""


def smallest_gap(trajectory: Trajectory) -> tuple[float, float]:
    """(smallest E_1 - E_0 over the frames, eV; its time, fs); NaN for one state or none
    finite."""
    if trajectory.energies.shape[1] < 2:
        return float("nan"), float("nan")
    gap = trajectory.energies[:, 1] - trajectory.energies[:, 0]
    finite = np.flatnonzero(np.isfinite(gap))
    if not len(finite):
        return float("nan"), float("nan")
    frame = finite[np.argmin(gap[finite])]
    return float(gap[frame]), float(trajectory.time[frame])


def energy_drift(trajectory: Trajectory) -> float:
    """max |E_tot(t) - E_tot(0)| over the finite frames, eV (NaN when none is finite)."""
    total = trajectory.total_energy[np.isfinite(trajectory.total_energy)]
    return float(np.abs(total - total[0]).max()) if len(total) else float("nan")


@dataclass
class Diagnostics:
    """Per trajectory (analysed first, then excluded, in run order): ``index``, ``status``,
    ``analysed`` (bool), ``min_gap_ev`` and ``min_gap_time_fs``, ``drift_ev`` (arrays of
    equal length), ``flag`` (why a committee run flagged it, or None) and ``flag_time_fs``
    (when, fs; NaN where not flagged)."""

    index: np.ndarray
    status: list[str]
    analysed: np.ndarray
    min_gap_ev: np.ndarray
    min_gap_time_fs: np.ndarray
    drift_ev: np.ndarray
    flag: list[str | None]
    flag_time_fs: np.ndarray

    @property
    def ran_on_flagged(self) -> np.ndarray:
        """(n,) bool: flagged for their committee spread but not stopped (``action: flag``)."""
        pairs = zip(self.status, self.flag, strict=True)
        return np.array([f is not None and s not in FAILED_STATUSES for s, f in pairs], dtype=bool)

    def flagged(self) -> dict[str, list[int]]:
        """Indices of the flagged trajectories: those with a failed status, by status, and
        under "committee-spread" also those flagged for their spread that ran on."""
        out: dict[str, list[int]] = {}
        for i, s, f in zip(self.index.tolist(), self.status, self.flag, strict=True):
            if s in FAILED_STATUSES:
                out.setdefault(s, []).append(i)
            elif f is not None:
                out.setdefault(SPREAD_FLAG, []).append(i)
        return out

    def reasons(self) -> dict[int, str]:
        """{index: reason} of the trajectories flagged for their committee spread."""
        return {i: f for i, f in zip(self.index.tolist(), self.flag, strict=True) if f}

    def summary(self) -> dict:
        """Ensemble numbers over the analysed trajectories: the smallest gap (min, median, the
        trajectory of the min, and ``inverted``: how many of the ``n`` trajectories with a
        finite gap have a frame with S1 below S0, which adiabatic states cannot do, so a
        defect of the potential), the largest drift (and its trajectory), the median drift;
        None where there is nothing finite."""
        index, gap, drift = (a[self.analysed] for a in (self.index, self.min_gap_ev, self.drift_ev))

        def extreme(values: np.ndarray, pick) -> tuple[float | None, int | None]:
            ok = np.isfinite(values)
            if not ok.any():
                return None, None
            k = np.flatnonzero(ok)[pick(values[ok])]
            return float(values[k]), int(index[k])

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN
            gap_median, drift_median = float(np.nanmedian(gap)), float(np.nanmedian(drift))
        gap_min, gap_at = extreme(gap, np.argmin)
        drift_max, drift_at = extreme(drift, np.argmax)
        return {
            "min_gap_ev": {
                "min": gap_min,
                "trajectory": gap_at,
                "median": gap_median,
                "inverted": int((gap[np.isfinite(gap)] < 0).sum()),
                "n": int(np.isfinite(gap).sum()),
            },
            "drift_ev": {"max": drift_max, "trajectory": drift_at, "median": drift_median},
        }

    def to_dict(self) -> dict:
        return {
            "summary": self.summary(),
            "flagged": self.flagged(),
            "trajectories": [
                {
                    "index": int(i),
                    "status": s,
                    "analysed": bool(a),
                    "min_gap_ev": g,
                    "min_gap_time_fs": t,
                    "drift_ev": d,
                    "flag": f,
                    "flag_time_fs": ft,
                }
                for i, s, a, g, t, d, f, ft in zip(
                    self.index,
                    self.status,
                    self.analysed,
                    self.min_gap_ev,
                    self.min_gap_time_fs,
                    self.drift_ev,
                    self.flag,
                    self.flag_time_fs,
                    strict=True,
                )
            ],
        }


def diagnostics(run: Run) -> Diagnostics:
    """Smallest gaps and energy drifts of every trajectory of ``run``."""
    trajectories = run.trajectories + run.excluded
    gaps = np.array([smallest_gap(t) for t in trajectories], dtype=np.float64).reshape(-1, 2)
    return Diagnostics(
        index=np.array([t.index for t in trajectories], dtype=np.int64),
        status=[t.status for t in trajectories],
        analysed=np.arange(len(trajectories)) < len(run.trajectories),
        min_gap_ev=gaps[:, 0],
        min_gap_time_fs=gaps[:, 1],
        drift_ev=np.array([energy_drift(t) for t in trajectories], dtype=np.float64),
        flag=[t.flag for t in trajectories],
        flag_time_fs=np.array(
            [np.nan if t.flag_time_fs is None else t.flag_time_fs for t in trajectories],
            dtype=np.float64,
        ),
    )
