"""Diabatic head: a symmetric S x S matrix H(R) per structure, its eigenstates and couplings.

The network predicts the K = S(S+1)/2 independent elements of H (eV), stored in the order
``upper_indices(S)``: the S diagonal elements first, then the upper triangle (i < j) row by row.
The adiabatic energies are the eigenvalues of H in ascending order, the adiabatic states the
eigenvectors u_s (columns), and the non-adiabatic couplings (1/Angstrom) follow from the
gradients of H without any reference couplings:

    d_ij = <psi_i | grad psi_j> = u_i^T (grad H) u_j / (E_j - E_i),   d_ji = -d_ij,  d_ii = 0.

Degeneracy. Where two eigenvalues meet, 1/(E_j - E_i) and the derivatives of eigenvalues and
eigenvectors are singular. Two guards, one parameter ``eps`` (``DEGENERACY_EPS2`` = eps^2 =
1e-8 eV^2, eps = 0.1 meV):

- S = 2: closed form. With m = (h11 + h22)/2, a = (h11 - h22)/2, b = h12,
  E = m -+ sqrt(a^2 + b^2 + eps^2): the gap is never below 2 eps, so the cone's tip is rounded
  over a region of size eps (0.1 meV), and energies are smooth (every derivative finite) for
  every H, H = c * identity included. Above the tip the energies differ from the exact
  eigenvalues of H by eps^2 / (2 |E_j - E_i|) at most (5e-8 eV at a 0.1 eV gap). The coupling is
  d_12 = (a grad b - b grad a) / (2 (a^2 + b^2 + eps^2)), the exact formula with the same
  smoothing; it needs no eigenvector, so it is smooth in the weights too (trainable).
- S > 2: ``torch.linalg.eigh`` (eigenvalues exact), with its backward replaced by the same
  formula in which every 1/(E_j - E_i) is broadened to (E_j - E_i) / ((E_j - E_i)^2 + 4 eps^2)
  (bounded by 1/(4 eps); equal to 1/(E_j - E_i) to a relative 4 eps^2/(E_j - E_i)^2). Energies
  and forces are exact; derivatives of eigenvectors, second derivatives of energies (training
  on forces) and the couplings use the broadened factor, so none of them is infinite or NaN at
  a degeneracy. Exactly at a degeneracy the couplings between the degenerate states are those of
  whichever eigenvectors ``eigh`` returns there (the states are not defined there).

Eigenvectors are returned for analysis and for the signs of the couplings; nothing above
differentiates them, and their derivative is undefined exactly at a degeneracy (S = 2:
atan2(0, 0)), so losses should use energies, forces and couplings only.

Eigenvector signs are a convention (an eigenvector is defined up to sign, and so is each
coupling): S = 2: u_1 = (-sin t, cos t), u_2 = (cos t, sin t) with t = atan2(b, a)/2 in
(-pi/2, pi/2]; S > 2: the largest component of each eigenvector is positive. Dynamics must align
signs along a trajectory (overlap with the previous step's states) as with any electronic
structure code.
"""

from __future__ import annotations

import torch

DEGENERACY_EPS2 = 1e-8  # eV^2: eps^2 inside the S = 2 square root and the broadening (module doc)


def n_hamiltonian_elements(n_states: int) -> int:
    """K = S(S+1)/2 independent elements of a symmetric S x S matrix."""
    return n_states * (n_states + 1) // 2


def upper_indices(n_states: int, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Row and column of each of the K elements: the diagonal first, then i < j row by row."""
    diag = torch.arange(n_states, device=device)
    rows, cols = torch.triu_indices(n_states, n_states, offset=1, device=device)
    return torch.cat([diag, rows]), torch.cat([diag, cols])


def symmetric_matrix(upper: torch.Tensor, n_states: int) -> torch.Tensor:
    """(..., K) elements in ``upper_indices`` order -> (..., S, S) symmetric matrices."""
    rows, cols = upper_indices(n_states, upper.device)
    index = torch.empty(n_states, n_states, dtype=torch.long, device=upper.device)
    k = torch.arange(rows.shape[0], device=upper.device)
    index[rows, cols] = k
    index[cols, rows] = k
    return upper[..., index.reshape(-1)].reshape(*upper.shape[:-1], n_states, n_states)


def adiabatic_states(
    hamiltonian: torch.Tensor, eps2: float = DEGENERACY_EPS2
) -> tuple[torch.Tensor, torch.Tensor]:
    """Energies (B, S) eV ascending and eigenvectors (B, S, S) (column s = state s) of H (B, S, S).

    S = 2 uses the closed form smoothed by ``eps2`` (eV^2); S > 2 ``eigh`` with a broadened
    backward (module docstring).
    """
    n_states = hamiltonian.shape[-1]
    if n_states == 2:
        m, a, b = _two_state_parameters(hamiltonian)
        r = torch.sqrt(a * a + b * b + eps2)
        energies = torch.stack([m - r, m + r], dim=-1)
        t = 0.5 * torch.atan2(b, a)
        c, s = torch.cos(t), torch.sin(t)
        vectors = torch.stack([torch.stack([-s, c], -1), torch.stack([c, s], -1)], dim=-1)
        return energies, vectors
    energies, vectors = _BroadenedEigh.apply(hamiltonian, eps2)
    largest = vectors.abs().argmax(dim=-2, keepdim=True)
    sign = torch.sign(vectors.gather(-2, largest))
    return energies, vectors * torch.where(sign == 0, torch.ones_like(sign), sign)


def nonadiabatic_couplings(
    hamiltonian: torch.Tensor,
    energies: torch.Tensor,
    vectors: torch.Tensor,
    grad_upper: torch.Tensor,
    batch: torch.Tensor,
    eps2: float = DEGENERACY_EPS2,
) -> torch.Tensor:
    """Couplings d_ij (n, S, S, 3) 1/Angstrom on every atom, from the gradients of H.

    hamiltonian, vectors: (B, S, S); energies: (B, S) eV; grad_upper: (n, K, 3) eV/Angstrom,
    the gradient of each element of H (``upper_indices`` order) with respect to the positions
    of each atom of its structure; batch: (n,) structure of each atom. d_ij = -d_ji; d_ii = 0.
    """
    n_states = hamiltonian.shape[-1]
    if n_states == 2:
        _, a, b = _two_state_parameters(hamiltonian)
        a, b = a[batch, None], b[batch, None]
        grad_a = 0.5 * (grad_upper[:, 0] - grad_upper[:, 1])
        d12 = (a * grad_upper[:, 2] - b * grad_a) / (2 * (a * a + b * b + eps2))
        zero = torch.zeros_like(d12)
        return torch.stack([torch.stack([zero, d12], 1), torch.stack([-d12, zero], 1)], 1)
    grad_h = symmetric_matrix(grad_upper.transpose(1, 2), n_states)  # (n, 3, S, S)
    u = vectors[batch]
    g = u.transpose(-1, -2).unsqueeze(1) @ grad_h @ u.unsqueeze(1)  # (n, 3, S, S)
    e = energies[batch]
    gap = e.unsqueeze(-2) - e.unsqueeze(-1)  # gap[i, j] = E_j - E_i
    d = g * (gap / (gap * gap + 4 * eps2)).unsqueeze(1)
    return (0.5 * (d - d.transpose(-1, -2))).permute(0, 2, 3, 1)  # antisymmetric to the bit


def _two_state_parameters(h: torch.Tensor):
    h11, h22, h12 = h[..., 0, 0], h[..., 1, 1], h[..., 0, 1]
    return 0.5 * (h11 + h22), 0.5 * (h11 - h22), h12


class _BroadenedEigh(torch.autograd.Function):
    """``torch.linalg.eigh`` whose backward broadens 1/(E_j - E_i) (twice differentiable)."""

    @staticmethod
    def forward(ctx, hamiltonian: torch.Tensor, eps2: float):
        energies, vectors = torch.linalg.eigh(hamiltonian)
        ctx.save_for_backward(energies, vectors)
        ctx.eps2 = eps2
        return energies, vectors

    @staticmethod
    def backward(ctx, grad_energies: torch.Tensor, grad_vectors: torch.Tensor):
        energies, vectors = ctx.saved_tensors
        vt_gv = vectors.transpose(-1, -2) @ grad_vectors
        gap = energies.unsqueeze(-2) - energies.unsqueeze(-1)  # gap[i, j] = E_j - E_i
        inner = 0.5 * (vt_gv - vt_gv.transpose(-1, -2)) * gap / (gap * gap + 4 * ctx.eps2)
        inner = inner + torch.diag_embed(grad_energies)
        return vectors @ inner @ vectors.transpose(-1, -2), None
