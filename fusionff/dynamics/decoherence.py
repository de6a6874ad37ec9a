"""Energy-based decoherence correction (Granucci & Persico 2007).

After each step, for every inactive state j (active k):
    c_j <- c_j exp(-dt / tau_jk),   tau_jk = hbar / |V_j - V_k| (1 + C / E_kin),
then c_k is rescaled so that the norm is 1. C = 0.1 hartree by default.
"""

from __future__ import annotations

import torch
from torch import Tensor

from fusionff.dynamics.state import abs2
from fusionff.units import HARTREE_EV, HBAR_EV_FS

__all__ = ["DEFAULT_DECOHERENCE_CONSTANT", "energy_based_decoherence"]

DEFAULT_DECOHERENCE_CONSTANT = 0.1 * HARTREE_EV
"""Granucci-Persico constant C in eV (0.1 hartree)."""


def energy_based_decoherence(
    coefficients: Tensor,
    energies: Tensor,
    active: Tensor,
    kinetic: Tensor,
    dt: float,
    constant: float = DEFAULT_DECOHERENCE_CONSTANT,
) -> Tensor:
    """Damped amplitudes (B, S) complex.

    coefficients: (B, S) complex; energies: (B, S) eV; active: (B,) int64; kinetic: (B,) eV;
    dt: fs; constant: C in eV.
    """
    rows = torch.arange(active.shape[0], device=active.device)
    gap = (energies - energies[rows, active][:, None]).abs()
    rate = gap / (HBAR_EV_FS * (1.0 + constant / kinetic.clamp_min(1e-12)[:, None]))
    damping = torch.exp(-dt * rate)
    damping[rows, active] = 1.0
    c = coefficients * damping
    inactive = abs2(c).sum(dim=1) - abs2(c[rows, active])
    ck = c[rows, active]
    ck_norm = abs2(ck).sqrt()
    target = torch.sqrt((1.0 - inactive).clamp_min(0.0))
    phase = torch.where(ck_norm > 0, ck / ck_norm.clamp_min(1e-300), torch.ones_like(ck))
    c[rows, active] = phase * target
    return c
