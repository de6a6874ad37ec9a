"""Electronic motion: the TDSE in the adiabatic basis and fewest-switches probabilities.

With V_j in eV and sigma_jk in 1/fs the amplitudes obey
    dc/dt = -i H c,   H = diag(V)/hbar - i sigma  (Hermitian, sigma real antisymmetric).
Over a nuclear step the energies and couplings are interpolated linearly between the two ends
and each sub-step is propagated exactly with exp(-i H tau) of the local (midpoint) H, so the
norm is conserved to rounding. Fewest-switches probabilities (Tully 1990)
    g_kj = max(0, -2 Re(c_j* c_k sigma_jk) tau / |c_k|^2)
are summed over the sub-steps, each by the trapezoidal rule (amplitudes at both of its ends,
coupling at its midpoint), which is second-order accurate in tau.
"""

from __future__ import annotations

import torch
from torch import Tensor

from fusionff.dynamics.state import abs2
from fusionff.units import HBAR_EV_FS

__all__ = ["local_propagator", "propagate_coefficients", "fewest_switches_rate"]


def local_propagator(hamiltonian: Tensor, tau: float) -> Tensor:
    """exp(-i H tau) for Hermitian H (B, S, S) in 1/fs and tau in fs -> (B, S, S) unitary.

    Two states use the closed form (elementwise, cheap), more states ``matrix_exp``.
    """
    if hamiltonian.shape[-1] != 2:
        return torch.linalg.matrix_exp(-1j * tau * hamiltonian)
    h00, h11 = hamiltonian[:, 0, 0].real, hamiltonian[:, 1, 1].real
    h01 = hamiltonian[:, 0, 1]
    mean, half = 0.5 * (h00 + h11), 0.5 * (h00 - h11)
    omega = torch.sqrt(half * half + abs2(h01))
    cos = torch.cos(omega * tau)
    # sin(w tau)/w, finite as w -> 0
    sinc = tau * torch.sinc(omega * tau / torch.pi)
    phase = torch.exp(-1j * mean * tau)
    u00 = phase * (cos - 1j * sinc * half)
    u11 = phase * (cos + 1j * sinc * half)
    u01 = phase * (-1j * sinc * h01)
    u10 = phase * (-1j * sinc * h01.conj())
    return torch.stack([torch.stack([u00, u01], -1), torch.stack([u10, u11], -1)], -2)


def fewest_switches_rate(coefficients: Tensor, couplings: Tensor, active: Tensor) -> Tensor:
    """Hopping rates out of the active state k, (..., B, S) in 1/fs.

    rate_j = max(0, -2 Re(c_j* c_k sigma_jk)) / |c_k|^2 (0 for j = k).
    coefficients: (..., B, S) complex, couplings: (..., B, S, S) 1/fs, active: (B,) int64;
    leading dimensions (e.g. sub-steps) share the active state.
    """
    s = coefficients.shape[-1]
    k = active[:, None].expand(coefficients.shape[:-1] + (1,))
    ck = coefficients.gather(-1, k)
    sigma_jk = couplings.gather(-1, k[..., None].expand(couplings.shape[:-1] + (1,)))[..., 0]
    flux = -2.0 * (coefficients.conj() * ck * sigma_jk).real
    rate = flux.clamp_min(0.0) / abs2(ck).clamp_min(1e-300)
    return rate.masked_fill(torch.nn.functional.one_hot(active, s).bool(), 0.0)


def propagate_coefficients(
    coefficients: Tensor,
    energies: tuple[Tensor, Tensor],
    couplings: tuple[Tensor, Tensor],
    active: Tensor,
    dt: float,
    n_substeps: int,
) -> tuple[Tensor, Tensor]:
    """Propagate amplitudes over one nuclear step and sum the hopping probabilities.

    Args:
        coefficients: (B, S) complex at the start of the step.
        energies: (start, end) adiabatic energies, each (B, S) eV.
        couplings: (start, end) sigma, each (B, S, S) 1/fs.
        active: (B,) active state during the step.
        dt: step, fs. n_substeps: number of sub-steps.

    Returns:
        coefficients (B, S) at the end; probabilities (B, S) of hopping from the active state
        to each state during the step (unclipped sums of fewest-switches sub-step terms).
    """
    tau = dt / n_substeps
    b, s = coefficients.shape
    e0, e1 = energies
    s0, s1 = couplings
    # a global energy shift only changes a global phase; remove it for accuracy
    shift = e0.mean(dim=1, keepdim=True)
    f = (torch.arange(n_substeps, dtype=e0.dtype, device=e0.device) + 0.5) / n_substeps
    f_e, f_s = f[:, None, None], f[:, None, None, None]
    sigma = (1.0 - f_s) * s0 + f_s * s1  # (M, B, S, S) midpoint couplings of the sub-steps
    levels = ((1.0 - f_e) * e0 + f_e * e1 - shift) / HBAR_EV_FS
    h = torch.diag_embed(levels).to(coefficients.dtype) - 1j * sigma
    u = local_propagator(h.reshape(-1, s, s), tau).reshape(n_substeps, b, s, s)
    c = coefficients
    trajectory = [c]
    for m in range(n_substeps):
        c = (u[m] @ c[..., None])[..., 0]
        trajectory.append(c)
    amplitudes = torch.stack(trajectory)  # (M + 1, B, S)
    # trapezoidal rule on each sub-step: rates with the amplitudes at both of its ends
    rates = fewest_switches_rate(amplitudes[:-1], sigma, active)
    rates = rates + fewest_switches_rate(amplitudes[1:], sigma, active)
    return c, (0.5 * tau) * rates.sum(dim=0)
