"""Closed-form adiabatic states of a real symmetric 2x2 diabatic Hamiltonian.

For H = [[h11, h12], [h12, h22]] with Delta = (h11 - h22) / 2, r = sqrt(Delta^2 + h12^2) and the
mixing angle theta = atan2(h12, Delta) / 2, the adiabatic states are
    lower: E0 = (h11 + h22)/2 - r,  phi0 = (-sin theta, cos theta)
    upper: E1 = (h11 + h22)/2 + r,  phi1 = ( cos theta, sin theta)
and the non-adiabatic coupling is d01 = <phi0|grad phi1> = grad theta
    = (Delta grad h12 - h12 grad Delta) / (2 r^2) = -d10.
The coupling is written from derivatives only, so it is smooth wherever the states do not
touch (r > 0), whatever the branch of atan2.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["two_state_adiabatic", "mixing_angle"]


def mixing_angle(h11: Tensor, h22: Tensor, h12: Tensor) -> Tensor:
    """Mixing angle theta (B,) such that the upper state is (cos theta, sin theta)."""
    return 0.5 * torch.atan2(h12, 0.5 * (h11 - h22))


def two_state_adiabatic(
    h11: Tensor, h22: Tensor, h12: Tensor, dh11: Tensor, dh22: Tensor, dh12: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """Adiabatic energies, gradients and NACs of a batch of 2x2 diabatic Hamiltonians.

    Args:
        h11, h22, h12: (B,) diabatic matrix elements (any energy unit E).
        dh11, dh22, dh12: (B, *coords) their gradients (E per length unit L).

    Returns:
        energies (B, 2) E, ordered; gradients (B, 2, *coords) E/L;
        nacs (B, 2, 2, *coords) 1/L, antisymmetric.
    """
    extra = (slice(None),) + (None,) * (dh11.dim() - 1)
    mean = 0.5 * (h11 + h22)
    delta = 0.5 * (h11 - h22)
    r = torch.sqrt(delta * delta + h12 * h12)
    dmean = 0.5 * (dh11 + dh22)
    ddelta = 0.5 * (dh11 - dh22)
    dr = (delta[extra] * ddelta + h12[extra] * dh12) / r[extra]
    energies = torch.stack([mean - r, mean + r], dim=1)
    gradients = torch.stack([dmean - dr, dmean + dr], dim=1)
    d01 = (delta[extra] * dh12 - h12[extra] * ddelta) / (2.0 * (r * r)[extra])
    zero = torch.zeros_like(d01)
    nacs = torch.stack([torch.stack([zero, d01], 1), torch.stack([-d01, zero], 1)], 1)
    return energies, gradients, nacs
