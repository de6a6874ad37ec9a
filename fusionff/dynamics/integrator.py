"""Nuclear motion: velocity Verlet on the active adiabatic state (eV, Angstrom, fs, amu)."""

from __future__ import annotations

from torch import Tensor

from fusionff.dynamics.state import take_state
from fusionff.units import AMU_A2_PER_FS2_EV, EV_PER_A_AMU_A_PER_FS2

__all__ = ["active_forces", "kinetic_energy", "half_kick", "drift"]


def active_forces(forces: Tensor, active: Tensor) -> Tensor:
    """Forces of the active state. forces: (B, S, N, 3) eV/A, active: (B,) -> (B, N, 3)."""
    return take_state(forces, active)


def kinetic_energy(velocities: Tensor, masses: Tensor) -> Tensor:
    """(B,) eV from velocities (B, N, 3) Angstrom/fs and masses (B, N) amu."""
    return 0.5 * AMU_A2_PER_FS2_EV * (masses * (velocities * velocities).sum(-1)).sum(-1)


def half_kick(velocities: Tensor, forces: Tensor, masses: Tensor, dt: float) -> Tensor:
    """v + (dt/2) F/m. velocities (B, N, 3) A/fs, forces (B, N, 3) eV/A, masses (B, N) amu."""
    return velocities + (0.5 * dt * EV_PER_A_AMU_A_PER_FS2) * forces / masses[..., None]


def drift(positions: Tensor, velocities: Tensor, dt: float) -> Tensor:
    """x + dt v. positions (B, N, 3) Angstrom, velocities (B, N, 3) Angstrom/fs, dt fs."""
    return positions + dt * velocities
