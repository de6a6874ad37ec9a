"""Time-derivative couplings sigma_jk (1/fs) for the TDSE and hopping.

* From NACs: sigma_jk = v . d_jk. A potential whose NAC signs are arbitrary (each state's
  phase is free) can have each d_jk aligned with its linear extrapolation from the last two
  steps; extrapolating, rather than comparing with the last step, keeps the genuine sign
  changes of a coupling that passes smoothly through zero (Tully's model 2 has two).
* Curvature-driven (kappa-TSH; Baeck & An 2017): from the adiabatic gaps only,
  sigma_jk = 1/2 sqrt((d2 Delta/dt2) / Delta) where the ratio is positive, else 0. The second
  derivative is the once-differenced gap rate dDelta/dt = -sign(V_j - V_k)(F_j - F_k) . v,
  smoother than twice-differenced energies, and couplings are switched off where Delta exceeds
  a threshold (fast vibrations also modulate large gaps; see PHYSICS.md section 2). The sign
  is a convention: sigma_jk > 0 for j < k.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = [
    "align_nac_signs",
    "nac_couplings",
    "state_gaps",
    "gap_rates",
    "curvature_couplings",
]


def align_nac_signs(nacs: Tensor, last: Tensor, before_last: Tensor) -> Tensor:
    """Flip each d_jk (B, S, S, N, 3) that points against 2 last - before_last."""
    reference = 2.0 * last - before_last
    overlap = (nacs * reference).sum(dim=(-1, -2))
    sign = torch.where(overlap < 0, -1.0, 1.0).to(nacs.dtype)
    return nacs * sign[..., None, None]


def nac_couplings(velocities: Tensor, nacs: Tensor) -> Tensor:
    """sigma_jk = v . d_jk. velocities (B, N, 3) A/fs, nacs (B, S, S, N, 3) 1/A -> (B, S, S)."""
    return torch.einsum("bna,bjkna->bjk", velocities, nacs)


def state_gaps(energies: Tensor) -> Tensor:
    """|V_j - V_k|, (B, S, S) eV from energies (B, S) eV."""
    return (energies[:, :, None] - energies[:, None, :]).abs()


def gap_rates(energies: Tensor, forces: Tensor, velocities: Tensor) -> Tensor:
    """d|V_j - V_k|/dt, (B, S, S) eV/fs from energies (B, S), forces (B, S, N, 3), v (B, N, 3)."""
    dv_dt = -torch.einsum("bsna,bna->bs", forces, velocities)
    sign = torch.sign(energies[:, :, None] - energies[:, None, :])
    return sign * (dv_dt[:, :, None] - dv_dt[:, None, :])


def curvature_couplings(
    gaps: Tensor, rate_previous: Tensor, rate_now: Tensor, dt: float, gap_threshold: float
) -> Tensor:
    """kappa-TSH couplings (B, S, S) 1/fs, antisymmetric.

    Args:
        gaps: (B, S, S) eV at the current step.
        rate_previous, rate_now: (B, S, S) eV/fs gap rates one step apart.
        dt: the step, fs. gap_threshold: eV; no coupling where the gap is at or above it.
    """
    curvature = (rate_now - rate_previous) / dt
    ratio = curvature / gaps.clamp_min(1e-12)
    use = (ratio > 0) & (gaps < gap_threshold) & (gaps > 0)
    magnitude = torch.where(use, 0.5 * torch.sqrt(ratio.clamp_min(0.0)), 0.0)
    upper = torch.triu(torch.ones_like(gaps[0]), diagonal=1)
    return magnitude * (upper - upper.T)
