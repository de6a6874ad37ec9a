"""Sign-free learned couplings: the outer product D = d d^T per structure and state pair.

A coupling d_ij (3N components on the N atoms of a structure, 1/Angstrom) is defined up to its
sign, and at a geometry that a point-group operation g maps onto itself (atom a onto pi(a)) the
coupling of two states of different symmetry can be antisymmetric, d_pi(a) = -g d_a, which no
rotation-equivariant, permutation-invariant per-atom vector readout gives (the limitation in
:mod:`fusionff.nn.couplings`). The outer product D = d d^T (3N x 3N, blocks D_ab = d_a d_b^T)
is free of the sign and transforms as D_pi(a)pi(b) = g D_ab g^T for either pattern, so a readout
of D can fit it (``ModelConfig.couplings: outer``). Per pair p = (i < j):

    u_a^{p,k}   = K polar vectors per atom (:class:`~fusionff.nn.couplings.AtomVectors`),
    phi^{p,k}(a, b) = MLP(s_a + s_b, s_a * s_b, G(|r_ab|)),  every atom pair of the structure,
    D_ab^p      = sum_k phi^{p,k}(a, b) u_a^{p,k} (u_b^{p,k})^T,

with s the invariant (0e) node features and G Gaussians of the distance (centres 0, 1, ..., 12
Angstrom, width 1 Angstrom; no cutoff: every atom pair of a structure takes part, which is
meant for molecules of a few dozen atoms, and distances are taken within the cell without
periodic images). The weights phi are invariant and symmetric in a and b and may be negative,
which gives D the opposite sign between atoms whose couplings point opposite ways; D_ba =
D_ab^T, and D(QR) = (Q x 1) D(R) (Q x 1)^T for every rotation and reflection Q.

D is stored ragged: ``(M, P, 3, 3)`` over the M = sum_b N_b^2 ordered atom pairs (a, b) of the
structures, structure after structure, a-major (:func:`structure_pairs`). Losses compare D with
d_ref d_ref^T (:func:`fusionff.train.loss.outer_coupling_loss`); couplings come out of D by its
largest eigenpair (:func:`couplings_from_outer`): d = sqrt(max(lambda_max, 0)) v_max of the
symmetrised 3N x 3N matrix, with the sign fixed so that the component of largest magnitude is
positive (a convention: along a trajectory the sign can flip between steps, so surface hopping
sets ``dynamics.align_nac_signs: true``). The eigen step carries no autograd graph.
"""

from __future__ import annotations

import torch
from e3nn import o3
from torch import nn

from fusionff.nn.couplings import AtomVectors, antisymmetric_couplings

PAIR_DISTANCE_CENTRES = tuple(float(c) for c in range(13))  # Angstrom
PAIR_DISTANCE_WIDTH = 1.0  # Angstrom


def structure_pairs(counts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Every ordered atom pair (a, b) of each structure, a-major, structure after structure.

    Args:
        counts: (B,) atoms per structure (atoms numbered structure after structure).

    Returns:
        ``first`` (M,) a, ``second`` (M,) b and ``owner`` (M,) the structure, M = sum N_b^2.
    """
    counts = counts.to(torch.long)
    device = counts.device
    offsets = torch.cumsum(counts, 0) - counts  # first atom of each structure
    owner_atom = torch.repeat_interleave(torch.arange(counts.shape[0], device=device), counts)
    row_length = counts[owner_atom]  # each atom pairs with every atom of its structure
    first = torch.repeat_interleave(torch.arange(owner_atom.shape[0], device=device), row_length)
    row_start = torch.cumsum(row_length, 0) - row_length
    owner = owner_atom[first]
    second = torch.arange(first.shape[0], device=device) - row_start[first] + offsets[owner]
    return first, second, owner


class OuterCouplingReadout(nn.Module):
    """Node features, edges and positions -> D (M, P, 3, 3) in readout units (module docstring).

    Args:
        irreps_node, irreps_sh, num_radial, hidden, avg_num_neighbors: as for
            :class:`~fusionff.nn.couplings.AtomVectors`.
        n_states: S >= 2.
        n_terms: K, vector fields per state pair (D has rank <= K N per structure and pair).
    """

    def __init__(
        self,
        irreps_node: o3.Irreps,
        irreps_sh: o3.Irreps,
        num_radial: int,
        n_states: int,
        n_terms: int,
        hidden: int,
        avg_num_neighbors: float,
    ):
        super().__init__()
        if n_states < 2 or n_terms < 1:
            raise ValueError(
                f"outer couplings need n_states >= 2 and n_terms >= 1, got {n_states}, {n_terms}"
            )
        self.n_states, self.n_terms = n_states, n_terms
        self.n_pairs = n_states * (n_states - 1) // 2
        outputs = self.n_pairs * n_terms
        self.vectors = AtomVectors(
            irreps_node, irreps_sh, num_radial, outputs, hidden, avg_num_neighbors
        )
        n_scalars = self.vectors.n_scalars
        self.register_buffer(
            "centres", torch.tensor(PAIR_DISTANCE_CENTRES), persistent=False
        )  # Angstrom
        self.weights = nn.Sequential(
            nn.Linear(2 * n_scalars + len(PAIR_DISTANCE_CENTRES), hidden),
            nn.SiLU(),
            nn.Linear(hidden, outputs),
        )

    def forward(
        self,
        h: torch.Tensor,
        edge_sh: torch.Tensor,
        edge_radial: torch.Tensor,
        edge_index: torch.Tensor,
        positions: torch.Tensor,
        counts: torch.Tensor,
    ) -> torch.Tensor:
        """h, edge_sh, edge_radial, edge_index: as for ``AtomVectors``; positions: (n, 3)
        Angstrom; counts: (B,) atoms per structure -> D (M, P, 3, 3), pairs of
        :func:`structure_pairs`."""
        n = h.shape[0]
        u = self.vectors(h, edge_sh, edge_radial, edge_index)
        u = u.reshape(n, self.n_pairs, self.n_terms, 3)
        first, second, _ = structure_pairs(counts)
        same = (first == second)[:, None]
        r = positions[second] - positions[first]
        # |r| without the undefined gradient of the norm at r = 0 (a = b)
        distance = torch.where(same, 0.0, torch.where(same, 1.0, r).norm(dim=-1, keepdim=True))
        gaussians = torch.exp(-(((distance - self.centres) / PAIR_DISTANCE_WIDTH) ** 2))
        s = self.vectors.scalars(h)
        features = torch.cat([s[first] + s[second], s[first] * s[second], gaussians], dim=-1)
        phi = self.weights(features).reshape(-1, self.n_pairs, self.n_terms)
        return torch.einsum("mpk,mpki,mpkj->mpij", phi, u[first], u[second])


def couplings_from_outer(outer: torch.Tensor, counts: torch.Tensor, n_states: int) -> torch.Tensor:
    """Couplings (n, S, S, 3), antisymmetric, from D (M, P, 3, 3) (module docstring).

    Per structure and pair, d = sqrt(max(lambda_max, 0)) v_max of (D + D^T) / 2 as a 3N x 3N
    matrix, the component of largest magnitude made positive; d = 0 where no eigenvalue is
    positive (D = 0 included). Computed without an autograd graph (losses use D).

    Args:
        outer: (M, P, 3, 3) in the units of d^2, pairs of :func:`structure_pairs`.
        counts: (B,) atoms per structure.
        n_states: S.
    """
    with torch.no_grad():
        outer = outer.detach()
        counts = counts.to(torch.long)
        n_graphs, n_pairs = counts.shape[0], outer.shape[1]
        n_max = int(counts.max()) if n_graphs else 0
        first, second, owner = structure_pairs(counts)
        offsets = torch.cumsum(counts, 0) - counts
        local_first, local_second = first - offsets[owner], second - offsets[owner]
        # zero-padded to N_max atoms: the padding adds zero eigenvalues, which max(., 0) ignores
        dense = outer.new_zeros(n_graphs, n_max, n_max, n_pairs, 3, 3)
        dense[owner, local_first, local_second] = outer
        dense = dense.permute(0, 3, 1, 4, 2, 5).reshape(n_graphs, n_pairs, 3 * n_max, 3 * n_max)
        values, vectors = torch.linalg.eigh(0.5 * (dense + dense.transpose(-1, -2)))
        top = vectors[..., -1]  # (B, P, 3 N_max), unit length
        largest = top.gather(-1, top.abs().argmax(dim=-1, keepdim=True))
        sign = torch.where(largest < 0, -1.0, 1.0).to(top.dtype)
        d = sign * values[..., -1:].clamp(min=0.0).sqrt() * top
        d = d.reshape(n_graphs, n_pairs, n_max, 3).permute(0, 2, 1, 3)  # (B, N_max, P, 3)
        atoms = torch.arange(int(counts.sum()), device=counts.device)
        owner_atom = torch.repeat_interleave(torch.arange(n_graphs, device=counts.device), counts)
        pairs = d[owner_atom, atoms - offsets[owner_atom]]  # (n, P, 3)
        return antisymmetric_couplings(pairs, n_states)
