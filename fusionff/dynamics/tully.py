"""Tully's one-dimensional two-state models (Tully 1990) as electronic structures.

The models are defined in atomic units (hartree, bohr, mass 2000 electron masses); the
:class:`TullyModel` interface converts to the engine's units: one atom (N = 1) whose x
coordinate (Angstrom) is the model coordinate; y and z feel no force and carry no coupling.
Parameters are those of PHYSICS.md section 4.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from fusionff.dynamics.diabatic import two_state_adiabatic
from fusionff.dynamics.protocol import StateOutputs
from fusionff.units import BOHR_ANGSTROM, ELECTRON_MASS_AMU, HARTREE_EV

__all__ = ["TullyModel", "TULLY_MODELS", "TULLY_MASS_AU"]

TULLY_MASS_AU = 2000.0
"""Nuclear mass of Tully's models in electron masses."""

Diabatic = tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]


def simple_avoided_crossing(x: Tensor) -> Diabatic:
    """Model 1. x: (B,) bohr -> h11, h22, h12 (hartree) and d/dx of each (hartree/bohr)."""
    a, b, c, d = 0.01, 1.6, 0.005, 1.0
    decay = torch.exp(-b * x.abs())
    h11 = torch.sign(x) * a * (1.0 - decay)
    dh11 = a * b * decay
    h12 = c * torch.exp(-d * x * x)
    return h11, -h11, h12, dh11, -dh11, -2.0 * d * x * h12


def dual_avoided_crossing(x: Tensor) -> Diabatic:
    """Model 2. x: (B,) bohr -> h11, h22, h12 (hartree) and d/dx of each (hartree/bohr)."""
    a, b, c, d, e0 = 0.10, 0.28, 0.015, 0.06, 0.05
    well = a * torch.exp(-b * x * x)
    h12 = c * torch.exp(-d * x * x)
    zero = torch.zeros_like(x)
    return zero, e0 - well, h12, zero, 2.0 * b * x * well, -2.0 * d * x * h12


def extended_coupling(x: Tensor) -> Diabatic:
    """Model 3. x: (B,) bohr -> h11, h22, h12 (hartree) and d/dx of each (hartree/bohr)."""
    a, b, c = 6e-4, 0.10, 0.90
    decay = torch.exp(-c * x.abs())
    h12 = torch.where(x < 0, b * decay, b * (2.0 - decay))
    const = torch.full_like(x, a)
    zero = torch.zeros_like(x)
    return const, -const, h12, zero, zero, b * c * decay


TULLY_MODELS: dict[str, Callable[[Tensor], Diabatic]] = {
    "simple": simple_avoided_crossing,
    "dual": dual_avoided_crossing,
    "extended": extended_coupling,
}
"""Diabatic matrix elements of Tully's models by name (atomic units)."""


class TullyModel:
    """One of Tully's models as an :class:`~fusionff.dynamics.protocol.ElectronicStructure`.

    Positions are (B, 1, 3) Angstrom; only x matters (x_bohr = x / BOHR_ANGSTROM).
    Outputs are in eV and eV/Angstrom; NACs in 1/Angstrom, smooth in x (the coupling is
    grad theta of the mixing angle, see :mod:`fusionff.dynamics.diabatic`).

    Args:
        model: "simple" (1), "dual" (2) or "extended" (3), or any function mapping x (B,) bohr
            to diabatic (h11, h22, h12) hartree and their x derivatives, hartree/bohr.
    """

    n_states = 2
    provides_nacs = True
    mass_amu = TULLY_MASS_AU * ELECTRON_MASS_AMU
    """Mass of the single particle in amu."""

    def __init__(self, model: str | Callable[[Tensor], Diabatic] = "simple") -> None:
        if callable(model):
            self._diabatic = model
        elif model in TULLY_MODELS:
            self._diabatic = TULLY_MODELS[model]
        else:
            raise ValueError(f"unknown Tully model {model!r}; choose from {sorted(TULLY_MODELS)}")
        self.model = model

    def diabatic(self, x_bohr: Tensor) -> Diabatic:
        """Diabatic h11, h22, h12 (hartree) and their x derivatives (hartree/bohr), x: (B,)."""
        return self._diabatic(x_bohr)

    def adiabatic_au(self, x_bohr: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Energies (B, 2) hartree, gradients (B, 2) hartree/bohr, NACs (B, 2, 2) 1/bohr."""
        return two_state_adiabatic(*self._diabatic(x_bohr))

    def evaluate(self, positions: Tensor) -> StateOutputs:
        """positions: (B, 1, 3) Angstrom -> energies eV, forces eV/A, NACs 1/A."""
        if positions.dim() != 3 or positions.shape[1:] != (1, 3):
            raise ValueError(f"Tully models take positions (B, 1, 3), got {tuple(positions.shape)}")
        x = positions[:, 0, 0] / BOHR_ANGSTROM
        energies, gradients, nacs = self.adiabatic_au(x)
        b = x.shape[0]
        forces = positions.new_zeros(b, 2, 1, 3)
        forces[:, :, 0, 0] = -gradients * (HARTREE_EV / BOHR_ANGSTROM)
        couplings = positions.new_zeros(b, 2, 2, 1, 3)
        couplings[:, :, :, 0, 0] = nacs / BOHR_ANGSTROM
        return StateOutputs(energies=energies * HARTREE_EV, forces=forces, nacs=couplings)
