"""Settings of a surface-hopping run: one dataclass, every default in one place.

Read by the engine (:mod:`fusionff.dynamics.engine`, which re-exports it) and by run
configurations. It checks its algorithm against the registry of
:mod:`fusionff.dynamics.algorithms`; the algorithms in turn only read the few fields named by
:class:`~fusionff.dynamics.algorithms.StepSettings`, so neither module imports the engine.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from fusionff.config_schema import build_dataclass
from fusionff.dynamics.algorithms import get_algorithm
from fusionff.dynamics.decoherence import DEFAULT_DECOHERENCE_CONSTANT
from fusionff.dynamics.domain import DomainLimits
from fusionff.dynamics.hopping import RESCALE_DIRECTIONS
from fusionff.dynamics.spread import CommitteeLimits

__all__ = ["SurfaceHoppingConfig"]


@dataclass
class SurfaceHoppingConfig:
    """Settings of a surface-hopping run (every default lives here).

    Attributes:
        dt: nuclear time step, fs.
        n_substeps: electronic sub-steps per nuclear step.
        algorithm: "fssh", "kappa-tsh" or "lz" (see :data:`fusionff.dynamics.ALGORITHMS`).
        decoherence: apply the energy-based decoherence correction.
        decoherence_constant: its constant C, eV (0.1 hartree).
        rescale: momentum-adjustment direction at a hop: "auto" (NAC if known, else the
            gradient difference), "nac", "gradient" or "velocity".
        reverse_frustrated: Jasper-Truhlar reversal of the momentum component at a
            frustrated hop.
        align_nac_signs: flip NACs that point against their extrapolation from the last two
            steps; for electronic structures whose NAC signs are arbitrary (free state phases).
        kappa_gap_threshold: eV; kappa-TSH couplings are zero at gaps at or above it.
        max_energy_drift: eV; a trajectory whose total energy moves further from its start is
            flagged ENERGY_DRIFT and stopped.
        max_state_inversion: eV or None (no check); a trajectory where some E_{k+1} falls
            below E_k by more than this (states out of order: a defect of the potential) is
            flagged STATE_ORDER and stopped.
        domain: where trajectories leave the reference's domain (atom pairs closer than a
            distance, or optionally an atom far from all others): such a trajectory is
            flagged OUT_OF_DOMAIN and stopped
            (:class:`~fusionff.dynamics.domain.DomainLimits`); None: no check.
        committee: limits on the spread of a committee potential (several models): a
            trajectory above them is flagged, and with ``action: stop`` stopped
            (:class:`~fusionff.dynamics.spread.CommitteeLimits`); None: no limits.
    """

    dt: float = 0.5
    n_substeps: int = 10
    algorithm: str = "fssh"
    decoherence: bool = False
    decoherence_constant: float = DEFAULT_DECOHERENCE_CONSTANT
    rescale: str = "auto"
    reverse_frustrated: bool = False
    align_nac_signs: bool = False
    kappa_gap_threshold: float = 1.0
    max_energy_drift: float = 0.5
    max_state_inversion: float | None = None
    committee: CommitteeLimits | None = None
    domain: DomainLimits | None = None

    def __post_init__(self) -> None:
        if get_algorithm(self.algorithm).amplitudes_follow_active and self.decoherence:
            raise ValueError(f"algorithm {self.algorithm!r} has no amplitudes to decohere")
        if self.rescale not in RESCALE_DIRECTIONS:
            raise ValueError(f"rescale must be one of {RESCALE_DIRECTIONS}, got {self.rescale!r}")
        if self.dt <= 0 or self.n_substeps < 1:
            raise ValueError(f"need dt > 0 and n_substeps >= 1, got {self.dt}, {self.n_substeps}")
        if self.kappa_gap_threshold <= 0 or self.max_energy_drift <= 0:
            raise ValueError("kappa_gap_threshold and max_energy_drift must be positive")
        if self.max_state_inversion is not None and not self.max_state_inversion > 0:
            raise ValueError(
                f"max_state_inversion must be positive (eV) or null, got {self.max_state_inversion}"
            )

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> SurfaceHoppingConfig:
        """Build from a mapping (e.g. YAML); unknown keys and wrong types are errors.

        ``committee`` is a :class:`CommitteeLimits`, None, or a mapping of its fields
        (``{"max_force_std": 1.0, "action": "stop"}``; errors name ``committee.<key>``)."""
        fields = {f.name: f for f in dataclasses.fields(cls)}
        values = dict(values)
        for key, value in values.items():
            if key not in fields:
                raise ValueError(f"unknown surface-hopping option {key!r}; known: {sorted(fields)}")
            if key == "committee":
                values[key] = _committee_limits(value)
                continue
            expected = type(getattr(cls, key))
            ok = isinstance(value, expected) or (expected is float and isinstance(value, int))
            if not ok or (expected is not bool and isinstance(value, bool)):
                raise TypeError(f"option {key!r} must be {expected.__name__}, got {value!r}")
        return cls(**values)

    def as_dict(self) -> dict[str, Any]:
        """The settings as a plain dict (for run summaries)."""
        return dataclasses.asdict(self)


def _committee_limits(value: Any) -> CommitteeLimits | None:
    """The ``committee`` option as :class:`CommitteeLimits` (from a mapping of its fields)."""
    if value is None or isinstance(value, CommitteeLimits):
        return value
    if not isinstance(value, dict):
        raise TypeError(
            f"option 'committee' must be a mapping of CommitteeLimits fields or a "
            f"CommitteeLimits, got {value!r}"
        )
    return build_dataclass(CommitteeLimits, value, "committee.")
