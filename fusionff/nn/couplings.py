"""Learned non-adiabatic couplings: one polar vector per state pair on every atom.

For the adiabatic head (``ModelConfig.couplings``) the couplings d_ij = <psi_i | grad psi_j>
(1/Angstrom) are read out from the last layer's node features. Under a rotation or a reflection
Q of the molecule the coupling on each atom is a polar vector, d(QR) = Q d(R) (the gradient of
a scalar product of wavefunctions; a coupling's overall sign is a phase convention), so the
readout maps the 1o features (vectors that change sign under inversion) to P = S(S-1)/2 outputs
of type 1o, one per pair i < j:

    v_i = Linear_1o( g(s_i) * x_i ),      d_ij = v, d_ji = -v, d_ii = 0,

with x_i the atom's C vector channels, s_i its scalar (0e) channels and g a small MLP giving
one invariant gate per vector channel. The gate is invariant and ``Linear_1o`` mixes channels
only, so the map is equivariant to O(3) exactly. The 1o components are in the order of the
positions (x, y, z), as e3nn's spherical harmonics give them (checked by the O(3) tests).
"""

from __future__ import annotations

import torch
from e3nn import o3
from torch import nn


def pair_indices(n_states: int, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows i and columns j of the P = S(S-1)/2 pairs i < j, row by row."""
    rows, cols = torch.triu_indices(n_states, n_states, offset=1, device=device)
    return rows, cols


def antisymmetric_couplings(pairs: torch.Tensor, n_states: int) -> torch.Tensor:
    """(n, P, 3) couplings of the pairs i < j -> (n, S, S, 3) with d_ji = -d_ij, d_ii = 0."""
    rows, cols = pair_indices(n_states, pairs.device)
    n_pairs = rows.shape[0]
    # entries [0, d_p..., -d_p...]; table[i, j] says which one d_ij is
    table = torch.zeros(n_states, n_states, dtype=torch.long, device=pairs.device)
    table[rows, cols] = torch.arange(1, n_pairs + 1, device=pairs.device)
    table[cols, rows] = torch.arange(n_pairs + 1, 2 * n_pairs + 1, device=pairs.device)
    entries = torch.cat([torch.zeros_like(pairs[:, :1]), pairs, -pairs], dim=1)
    return entries[:, table.reshape(-1)].reshape(pairs.shape[0], n_states, n_states, 3)


def _channel_indices(irreps: o3.Irreps, target: o3.Irrep) -> list[int]:
    """Flat feature indices of every component of the channels of type ``target``."""
    idx, start = [], 0
    for mul, ir in irreps:
        if ir == target:
            idx.extend(range(start, start + mul * ir.dim))
        start += mul * ir.dim
    return idx


class CouplingReadout(nn.Module):
    """Node features (n, dim) -> couplings (n, S, S, 3), antisymmetric, in readout units.

    Args:
        irreps_in: irreps of the node features; need 0e and 1o channels.
        n_states: S >= 2.
        hidden: hidden width of the gate MLP.
    """

    def __init__(self, irreps_in: o3.Irreps, n_states: int, hidden: int = 16):
        super().__init__()
        irreps_in = o3.Irreps(irreps_in)
        scalars = _channel_indices(irreps_in, o3.Irrep("0e"))
        vectors = _channel_indices(irreps_in, o3.Irrep("1o"))
        if not scalars or not vectors:
            raise ValueError(f"coupling readout needs 0e and 1o features, got {irreps_in}")
        if n_states < 2:
            raise ValueError(f"couplings need at least two states, got n_states = {n_states}")
        self.n_states = n_states
        self.n_vectors = len(vectors) // 3
        self.register_buffer("scalar_index", torch.tensor(scalars), persistent=False)
        self.register_buffer("vector_index", torch.tensor(vectors), persistent=False)
        self.gate = nn.Sequential(
            nn.Linear(len(scalars), hidden), nn.SiLU(), nn.Linear(hidden, self.n_vectors)
        )
        n_pairs = n_states * (n_states - 1) // 2
        self.linear = o3.Linear(o3.Irreps(f"{self.n_vectors}x1o"), o3.Irreps(f"{n_pairs}x1o"))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        n = h.shape[0]
        gate = self.gate(h.index_select(-1, self.scalar_index))  # (n, C)
        x = h.index_select(-1, self.vector_index).reshape(n, self.n_vectors, 3)
        pairs = self.linear((gate[..., None] * x).reshape(n, -1)).reshape(n, -1, 3)
        return antisymmetric_couplings(pairs, self.n_states)
