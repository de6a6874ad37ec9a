"""The batch of surface-hopping trajectories: one dataclass of tensors, batch dimension first.

Every field is a per-trajectory tensor whose first dimension is the batch B (or None for
optional fields), so selecting, updating and concatenating trajectories is generic
(:meth:`SurfaceHoppingState.select`, :meth:`SurfaceHoppingState.assign`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from enum import IntEnum

import torch
from torch import Tensor

__all__ = ["FAILED", "Status", "SurfaceHoppingState"]


def abs2(z: Tensor) -> Tensor:
    """|z|^2 of a complex tensor, elementwise, as re^2 + im^2.

    torch's complex ``abs`` can differ in the last bit with the number of elements it is
    given (vectorised and scalar paths), which would make a trajectory depend on its batch.
    """
    return z.real * z.real + z.imag * z.imag


def take_state(values: Tensor, state: Tensor) -> Tensor:
    """Row b of ``values`` (B, S, ...) at state ``state[b]``: (B, ...).

    A ``gather``, which is several times faster than advanced indexing with an ``arange``
    on large batches.
    """
    shape = (values.shape[0], 1) + values.shape[2:]
    index = state.view((-1, 1) + (1,) * (values.dim() - 2)).expand(shape)
    return values.gather(1, index).squeeze(1)


class Status(IntEnum):
    """Per-trajectory status codes (``SurfaceHoppingState.status``)."""

    RUNNING = 0
    STOPPED = 1
    """The run's stop criterion was met (e.g. the particle left the interaction region)."""
    TIME_LIMIT = 2
    """The run ended before the stop criterion was met."""
    ENERGY_DRIFT = 3
    """|total energy - initial total energy| exceeded the configured threshold."""
    BLEW_UP = 4
    """A position, velocity, energy, force or coefficient became non-finite."""
    COMMITTEE_SPREAD = 5
    """The committee's spread exceeded the run's limits with ``action: stop``
    (:mod:`fusionff.dynamics.spread`)."""
    STATE_ORDER = 6
    """An adiabatic state's energy fell below the state under it by more than
    ``max_state_inversion`` (a defect of the potential, e.g. independent per-state readouts
    outside their data; adiabatic energies are ordered by definition)."""
    OUT_OF_DOMAIN = 7
    """The geometry left the reference's domain: an atom pair of ``dynamics.domain`` came
    closer than its ``min_distance``, or an atom got farther than its
    ``dissociation_distance`` from every other (:mod:`fusionff.dynamics.domain`)."""
    POTENTIAL_FAILED = 8
    """The potential gave no finite energies or forces at a finite geometry: a reference
    program's calculation failed there (e.g. OpenMolcas's active-space guard; the run's log
    has its message) or a model returned NaN. BLEW_UP is kept for non-finite positions,
    velocities or coefficients."""


FAILED = (
    Status.ENERGY_DRIFT,
    Status.BLEW_UP,
    Status.COMMITTEE_SPREAD,
    Status.STATE_ORDER,
    Status.OUT_OF_DOMAIN,
    Status.POTENTIAL_FAILED,
)
"""Statuses of trajectories stopped for a defect (of the integration, the potential or its
domain): counted as failed and kept out of statistics (the analysis's ``FAILED_STATUSES``)."""


@dataclass
class SurfaceHoppingState:
    """B trajectories of N atoms on S adiabatic states (float64; coefficients complex128).

    Attributes:
        positions: (B, N, 3) Angstrom.
        velocities: (B, N, 3) Angstrom/fs.
        masses: (B, N) amu.
        coefficients: (B, S) complex adiabatic amplitudes.
        active: (B,) int64 active adiabatic state.
        status: (B,) int64 :class:`Status` code.
        step: (B,) int64 steps taken (also the counter of the random stream).
        time: (B,) fs.
        seeds: (B,) int64 seeds of the per-trajectory random streams.
        energies: (B, S) eV at ``positions``.
        forces: (B, S, N, 3) eV/Angstrom at ``positions``.
        nacs: (B, S, S, N, 3) 1/Angstrom (signs aligned along the trajectory if so
            configured), or None.
        previous_nacs: (B, S, S, N, 3) 1/Angstrom the NACs of the previous step, or None.
        couplings: (B, S, S) 1/fs time-derivative couplings sigma_jk used by the TDSE.
        gaps: (B, 3, S, S) eV |V_j - V_k| at the last three steps (oldest first).
        gap_rates: (B, 2, S, S) eV/fs d|V_j - V_k|/dt = -sign(V_j - V_k)(F_j - F_k).v at the
            last two steps (oldest first).
        reference_energy: (B,) eV total energy at the start.
        n_hops: (B,) int64 successful hops.
        n_frustrated: (B,) int64 frustrated hops.
        energy_spread: (B, S) eV committee spread of each state's energy at ``positions``, or
            None (not a committee; :mod:`fusionff.dynamics.spread`).
        force_spread: (B, S) eV/Angstrom committee force spread of each state, or None.
        flag_time: (B,) fs when the spread first exceeded the run's limits (NaN: never), or
            None (not a committee).
    """

    positions: Tensor
    velocities: Tensor
    masses: Tensor
    coefficients: Tensor
    active: Tensor
    status: Tensor
    step: Tensor
    time: Tensor
    seeds: Tensor
    energies: Tensor
    forces: Tensor
    nacs: Tensor | None
    previous_nacs: Tensor | None
    couplings: Tensor
    gaps: Tensor
    gap_rates: Tensor
    reference_energy: Tensor
    n_hops: Tensor
    n_frustrated: Tensor
    energy_spread: Tensor | None = None
    force_spread: Tensor | None = None
    flag_time: Tensor | None = None

    @property
    def batch_size(self) -> int:
        """Number of trajectories B."""
        return self.positions.shape[0]

    @property
    def n_states(self) -> int:
        """Number of adiabatic states S."""
        return self.energies.shape[1]

    @property
    def device(self) -> torch.device:
        """Device of all tensors."""
        return self.positions.device

    @property
    def running(self) -> Tensor:
        """(B,) bool: trajectories still being propagated."""
        return self.status == Status.RUNNING

    @property
    def populations(self) -> Tensor:
        """(B, S) electronic populations |c_j|^2."""
        return abs2(self.coefficients)

    def replace(self, **changes: Tensor | None) -> SurfaceHoppingState:
        """A copy with some fields replaced (tensors are shared, not copied)."""
        return dataclasses.replace(self, **changes)

    def select(self, index: Tensor) -> SurfaceHoppingState:
        """Trajectories ``index`` (int64 indices or bool mask over B) as a new state."""
        return SurfaceHoppingState(
            **{
                f.name: None if getattr(self, f.name) is None else getattr(self, f.name)[index]
                for f in dataclasses.fields(self)
            }
        )

    def assign(self, index: Tensor, other: SurfaceHoppingState) -> SurfaceHoppingState:
        """A copy of self whose trajectories ``index`` are replaced by those of ``other``."""
        values = {}
        for f in dataclasses.fields(self):
            mine, theirs = getattr(self, f.name), getattr(other, f.name)
            if mine is None or theirs is None:
                if (mine is None) != (theirs is None):
                    raise ValueError(f"field {f.name!r} is None in only one of the states")
                values[f.name] = None
                continue
            updated = mine.clone()
            updated[index] = theirs
            values[f.name] = updated
        return SurfaceHoppingState(**values)

    @staticmethod
    def concatenate(states: list[SurfaceHoppingState]) -> SurfaceHoppingState:
        """Join batches along B."""
        values = {}
        for f in dataclasses.fields(SurfaceHoppingState):
            parts = [getattr(s, f.name) for s in states]
            values[f.name] = None if parts[0] is None else torch.cat(parts, dim=0)
        return SurfaceHoppingState(**values)
