"""Learned non-adiabatic couplings: one polar vector per state pair on every atom.

For the adiabatic head (``ModelConfig.couplings: vector``) the couplings d_ij =
<psi_i | grad psi_j> (1/Angstrom) of the P = S(S-1)/2 pairs i < j are read out on every atom a
from the final invariant node features h and the 1o spherical harmonics of the edges (Y_1(r) =
sqrt(3) r/|r| in e3nn's component normalisation, components in the order x, y, z of the
positions):

    v_a^p = 1/<n_nb> sum_{b in N(a)} phi^p(h_a, h_b) rho^p(r_ab) Y_1(r_ab),
    d_ij = v^p, d_ji = -v^p, d_ii = 0,

with phi an MLP of the two atoms' features, rho a linear map (no bias) of the edge's radial
features (Bessel functions times the cutoff envelope, so every term goes to zero smoothly at
r_max) and <n_nb> the average number of neighbours. The weights phi rho are invariant and Y_1 is
a polar vector (type 1o: it changes sign under the inversion), so d(QR) = Q d(R) exactly for
every rotation and reflection Q. The readout uses the edges' unit vectors rather than vector
(1o) features of the trunk: at initialisation those were about 1e-3 of the scalar features on
R2 stilbene (which carry the element embedding through the residuals), and a readout of them
had barely moved after ten epochs.

Limitation (measured on R2 stilbene, README). At a geometry that a point-group operation g maps
onto itself, atom a onto atom pi(a), any readout that is equivariant under rotations and
invariant under permutations of like atoms gives d_pi(a) = g d_a (det(g) g d_a for a 1e
readout): a totally symmetric pattern. The coupling between two states of different symmetry
transforms like the product of their symmetries, d_pi(a) = -g d_a for stilbene's S0 (A) and
S1 (B) under the C2 that swaps the two halves, so no such readout (nor the diabatic head's
sum of invariant per-atom terms) can fit it near symmetric geometries; the phase-free loss
frees only each structure's overall sign. ``couplings: outer``
(:mod:`fusionff.nn.outer_couplings`) learns the sign-free outer product d d^T instead, which
has no such restriction; it builds on :class:`AtomVectors`, the sum above with any number of
outputs.
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


class AtomVectors(nn.Module):
    """Node features and edges -> F polar vectors per atom (n, F, 3): the sum of the module
    docstring, v_a^f = 1/<n_nb> sum_b phi^f(h_a, h_b) rho^f(r_ab) Y_1(r_ab), with F outputs.

    Args:
        irreps_node: irreps of the final node features (their 0e channels are used).
        irreps_sh: irreps of the edge spherical harmonics; must contain 1o.
        num_radial: radial features per edge.
        n_outputs: F, vectors per atom.
        hidden: hidden width of the pair MLP phi.
        avg_num_neighbors: normalisation of the neighbour sum.
    """

    def __init__(
        self,
        irreps_node: o3.Irreps,
        irreps_sh: o3.Irreps,
        num_radial: int,
        n_outputs: int,
        hidden: int,
        avg_num_neighbors: float,
    ):
        super().__init__()
        irreps_node, irreps_sh = o3.Irreps(irreps_node), o3.Irreps(irreps_sh)
        scalars, start = [], 0
        for mul, ir in irreps_node:
            if ir == o3.Irrep("0e"):
                scalars.extend(range(start, start + mul))
            start += mul * ir.dim
        vector = [k for k, (_, ir) in enumerate(irreps_sh) if ir == o3.Irrep("1o")]
        if not scalars or len(vector) != 1 or irreps_sh[vector[0]].mul != 1:
            raise ValueError(
                f"coupling readout needs 0e node features ({irreps_node}) and one 1o spherical "
                f"harmonic ({irreps_sh})"
            )
        self.n_scalars = len(scalars)
        self.avg_num_neighbors = float(avg_num_neighbors)
        sh = irreps_sh.slices()[vector[0]]
        self.register_buffer("scalar_index", torch.tensor(scalars), persistent=False)
        self.register_buffer(
            "vector_index", torch.arange(sh.start, sh.stop), persistent=False
        )  # the 1o block of the spherical harmonics
        self.pair = nn.Sequential(
            nn.Linear(2 * len(scalars), hidden), nn.SiLU(), nn.Linear(hidden, n_outputs)
        )
        self.radial = nn.Linear(num_radial, n_outputs, bias=False)

    def scalars(self, h: torch.Tensor) -> torch.Tensor:
        """The invariant (0e) channels of the node features: (n, node dim) -> (n, n_scalars)."""
        return h.index_select(-1, self.scalar_index)

    def forward(
        self,
        h: torch.Tensor,
        edge_sh: torch.Tensor,
        edge_radial: torch.Tensor,
        edge_index: torch.Tensor,
    ) -> torch.Tensor:
        """h: (n, node dim); edge_sh: (E, sh dim) of the vectors from receiver a to sender b;
        edge_radial: (E, num_radial); edge_index: (2, E) as (sender b, receiver a)
        -> (n, F, 3)."""
        sender, receiver = edge_index
        s = self.scalars(h)
        weights = self.pair(torch.cat([s[receiver], s[sender]], dim=-1)) * self.radial(edge_radial)
        y1 = edge_sh.index_select(-1, self.vector_index)  # (E, 3), 1o
        terms = weights.unsqueeze(-1) * y1.unsqueeze(-2)  # (E, F, 3)
        vectors = terms.new_zeros(h.shape[0], *terms.shape[1:]).index_add(0, receiver, terms)
        return vectors / self.avg_num_neighbors


class CouplingReadout(AtomVectors):
    """Node features and edges -> couplings (n, S, S, 3), antisymmetric, in readout units: one
    vector of :class:`AtomVectors` per pair i < j (``ModelConfig.couplings: vector``).

    Args:
        irreps_node, irreps_sh, num_radial, hidden, avg_num_neighbors: as for
            :class:`AtomVectors`.
        n_states: S >= 2.
    """

    def __init__(
        self,
        irreps_node: o3.Irreps,
        irreps_sh: o3.Irreps,
        num_radial: int,
        n_states: int,
        hidden: int,
        avg_num_neighbors: float,
    ):
        if n_states < 2:
            raise ValueError(f"couplings need at least two states, got n_states = {n_states}")
        n_pairs = n_states * (n_states - 1) // 2
        super().__init__(irreps_node, irreps_sh, num_radial, n_pairs, hidden, avg_num_neighbors)
        self.n_states = n_states

    def forward(
        self,
        h: torch.Tensor,
        edge_sh: torch.Tensor,
        edge_radial: torch.Tensor,
        edge_index: torch.Tensor,
    ) -> torch.Tensor:
        """As :meth:`AtomVectors.forward` -> (n, S, S, 3)."""
        pairs = super().forward(h, edge_sh, edge_radial, edge_index)
        return antisymmetric_couplings(pairs, self.n_states)
