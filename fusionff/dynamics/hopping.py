"""Hop decisions and the momentum adjustment that conserves total energy at a hop.

At a hop k -> j the momentum changes along a direction u (the NAC d_kj, the gradient
difference F_j - F_k, or the momentum itself): p' = p + gamma u, i.e. v' = v + gamma u / m,
with gamma the smaller root of
    a gamma^2 + b gamma + (V_j - V_k) = 0,  a = K sum_n |u_n|^2 / (2 m_n),  b = K sum_n v_n . u_n
(K = 1 amu A^2/fs^2 in eV). No real root: the hop is frustrated; the trajectory stays on k and,
with the Jasper-Truhlar "grad V" rule, reverses its momentum component along u when the force
of the target state along u opposes the velocity along it ((F_j . u)(v . u) < 0); the reversal
keeps the kinetic energy (gamma = -b / a).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from fusionff.dynamics.state import take_state
from fusionff.units import AMU_A2_PER_FS2_EV, HBAR_EV_FS

__all__ = [
    "RESCALE_DIRECTIONS",
    "choose_targets",
    "rescale_direction",
    "adjust_momentum",
    "landau_zener_probabilities",
]

RESCALE_DIRECTIONS = ("auto", "nac", "gradient", "velocity")
"""Momentum-adjustment directions; "auto" is the NAC when known, else the gradient difference."""


def choose_targets(probabilities: Tensor, active: Tensor, random: Tensor) -> Tensor:
    """Target state of each trajectory, (B,) int64; equal to ``active`` when there is no hop.

    probabilities: (B, S) of hopping to each state (entries at the active state are ignored);
    random: (B,) uniform in [0, 1). The states are stacked in order on [0, 1) and the random
    number picks the interval it falls in; above the total, no hop.
    """
    rows = torch.arange(active.shape[0], device=active.device)
    p = probabilities.clamp_min(0.0)
    p[rows, active] = 0.0
    total = p.sum(dim=1)
    p = p / torch.where(total > 1.0, total, 1.0)[:, None]
    cumulative = torch.cumsum(p, dim=1)
    hop = random < cumulative[:, -1]
    target = (cumulative <= random[:, None]).sum(dim=1).clamp_max(p.shape[1] - 1)
    return torch.where(hop, target, active)


def rescale_direction(
    method: str,
    velocities: Tensor,
    masses: Tensor,
    forces: Tensor,
    nacs: Tensor | None,
    active: Tensor,
    target: Tensor,
) -> Tensor:
    """Direction u (B, N, 3) along which the momentum is adjusted for the hop active -> target.

    forces: (B, S, N, 3) eV/A; nacs (B, S, S, N, 3) 1/A or None; masses (B, N) amu.
    """
    if method == "auto":
        method = "gradient" if nacs is None else "nac"
    if method == "nac":
        if nacs is None:
            raise ValueError("rescaling along the NAC needs an electronic structure with NACs")
        return take_state(take_state(nacs, active), target)
    if method == "gradient":
        return take_state(forces, target) - take_state(forces, active)
    if method == "velocity":
        return masses[..., None] * velocities
    raise ValueError(f"unknown rescale direction {method!r}; choose from {RESCALE_DIRECTIONS}")


def adjust_momentum(
    velocities: Tensor,
    masses: Tensor,
    direction: Tensor,
    energy_change: Tensor,
    target_force: Tensor,
    reverse_frustrated: bool,
) -> tuple[Tensor, Tensor]:
    """Velocities after an attempted hop and whether it is allowed.

    Args:
        velocities: (B, N, 3) A/fs. masses: (B, N) amu. direction: u, (B, N, 3).
        energy_change: (B,) eV, V_target - V_active (the kinetic energy must drop by this).
        target_force: (B, N, 3) eV/A force of the target state (for the reversal rule).
        reverse_frustrated: apply the Jasper-Truhlar reversal to frustrated hops.

    Returns:
        velocities (B, N, 3) (unchanged where frustrated and not reversed) and allowed (B,) bool.
    """
    u_over_m = direction / masses[..., None]
    a = 0.5 * AMU_A2_PER_FS2_EV * (direction * u_over_m).sum(dim=(-1, -2))
    b = AMU_A2_PER_FS2_EV * (velocities * direction).sum(dim=(-1, -2))
    discriminant = b * b - 4.0 * a * energy_change
    degenerate = a <= 0
    allowed = (discriminant >= 0) & ~degenerate
    root = torch.sqrt(discriminant.clamp_min(0.0))
    safe_a = torch.where(degenerate, 1.0, a)
    gamma = torch.where(b >= 0, -b + root, -b - root) / (2.0 * safe_a)
    if reverse_frustrated:
        reverse = ~allowed & ~degenerate
        reverse &= (target_force * direction).sum(dim=(-1, -2)) * b < 0
        gamma = torch.where(reverse, -b / safe_a, torch.where(allowed, gamma, 0.0))
    else:
        gamma = torch.where(allowed, gamma, 0.0)
    return velocities + gamma[:, None, None] * u_over_m, allowed


def landau_zener_probabilities(gaps: Tensor, active: Tensor, dt: float) -> Tensor:
    """Belyaev-Lebedev Landau-Zener probabilities (B, S) of hopping from the active state.

    gaps: (B, 3, S, S) eV at the last three steps (oldest first). Where the gap to state j has
    a local minimum at the middle step, P = exp(-(pi / 2 hbar) sqrt(Delta^3 / (d2 Delta/dt2)))
    with the second difference of the three gaps; elsewhere 0.
    """
    rows = torch.arange(active.shape[0], device=active.device)
    g = gaps[rows, :, active]  # (B, 3, S): gaps from the active state
    before, middle, after = g[:, 0], g[:, 1], g[:, 2]
    minimum = (middle < before) & (middle < after)
    curvature = (after - 2.0 * middle + before) / (dt * dt)
    exponent = (math.pi / (2.0 * HBAR_EV_FS)) * torch.sqrt(
        middle.clamp_min(0.0) ** 3 / curvature.clamp_min(1e-300)
    )
    p = torch.where(minimum & (curvature > 0), torch.exp(-exponent), 0.0)
    p[rows, active] = 0.0
    return p
