"""Committee spread along a trajectory: the limits a run sets on it, and the check.

A committee potential (several models; :class:`~fusionff.dynamics.ml.MLElectronicStructure`)
reports, besides the members' mean, two spreads per structure and state
(:class:`~fusionff.dynamics.protocol.StateOutputs`):

* ``energy_spread`` (B, S) eV: the standard deviation over the M members (ddof 0) of each
  state's energy;
* ``force_spread`` (B, S) eV/Angstrom: per state, the largest over atoms of the members' RMS
  deviation from the mean force, max_a sqrt(mean_m |F_m,a - <F_a>|^2) (the norm of the
  per-component standard deviations; DP-GEN's "max force deviation").

A run's ``dynamics.committee`` key (:class:`CommitteeLimits`, the ``committee`` field of
:class:`~fusionff.dynamics.sh_config.SurfaceHoppingConfig`) sets limits on them. A trajectory
exceeds them when the largest ``energy_spread`` over its states is above ``max_energy_std`` or the
``force_spread`` of its active state (the one whose forces move it) is above
``max_force_std``. It is then flagged once, at the first step where that happens (its time is
``SurfaceHoppingState.flag_time``), and with ``action: stop`` also stopped with status
:attr:`~fusionff.dynamics.state.Status.COMMITTEE_SPREAD` while the others go on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from fusionff.dynamics.state import take_state

__all__ = [
    "CommitteeLimits",
    "ACTIONS",
    "max_force_deviation",
    "spread_exceeded",
    "spread_reason",
]

ACTIONS = ("flag", "stop")


@dataclass
class CommitteeLimits:
    """Limits on the committee spread (the run input's ``dynamics.committee`` key).

    Attributes:
        max_energy_std: eV; flag where the spread of any state's energy exceeds it (None: no
            limit).
        max_force_std: eV/Angstrom; flag where the force spread of the active state exceeds
            it (None: no limit).
        action: "flag" (record it, the trajectory goes on) or "stop" (record it and stop the
            trajectory with status "committee-spread").
    """

    max_energy_std: float | None = None
    max_force_std: float | None = None
    action: str = "flag"

    def __post_init__(self) -> None:
        if self.max_energy_std is None and self.max_force_std is None:
            raise ValueError("give max_energy_std (eV), max_force_std (eV/Angstrom) or both")
        for name in ("max_energy_std", "max_force_std"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be positive, got {value}")
        if self.action not in ACTIONS:
            raise ValueError(f"action must be one of {ACTIONS}, got {self.action!r}")

    @property
    def stops(self) -> bool:
        return self.action == "stop"


def max_force_deviation(forces_std: Tensor) -> Tensor:
    """The force spread of each state from a committee's per-component force standard
    deviations: (..., S, N, 3) eV/Angstrom -> (..., S) eV/Angstrom, the largest over atoms of
    the norm of an atom's three deviations (see the module docstring)."""
    return forces_std.norm(dim=-1).amax(dim=-1)


def spread_exceeded(
    energy_spread: Tensor, force_spread: Tensor, active: Tensor, limits: CommitteeLimits
) -> Tensor:
    """(B,) bool: where the spreads exceed ``limits`` (see the module docstring).

    Args:
        energy_spread: (B, S) eV.
        force_spread: (B, S) eV/Angstrom.
        active: (B,) int64 active state.
    """
    exceeded = torch.zeros(active.shape, dtype=torch.bool, device=active.device)
    if limits.max_energy_std is not None:
        exceeded |= energy_spread.amax(dim=1) > limits.max_energy_std
    if limits.max_force_std is not None:
        exceeded |= take_state(force_spread, active) > limits.max_force_std
    return exceeded


def spread_reason(
    energy_spread: list[float], force_spread: float, active: int, time_fs: float
) -> str:
    """Why a trajectory was flagged: both spreads the limits apply to at that step, e.g.
    ``committee spread above the limits at 120 fs: energy std 0.231 eV (S1), force std
    0.84 eV/Angstrom (active S1)`` (the limits are in the run's config).

    Args:
        energy_spread: (S,) eV of the trajectory at that step.
        force_spread: eV/Angstrom, of its active state ``active``.
    """
    e_max = max(energy_spread)
    return (
        f"committee spread above the limits at {time_fs:g} fs: energy std {e_max:.4g} eV "
        f"(S{energy_spread.index(e_max)}), force std {force_spread:.4g} eV/Angstrom "
        f"(active S{active})"
    )
