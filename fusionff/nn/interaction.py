"""MACE interaction: the atomic basis A_i = sum_j R(r_ij) Y(r_ij_hat) (x) W h_j / avg_neighbours."""

from __future__ import annotations

import torch
from e3nn import o3
from torch import nn

from fusionff.nn.radial import RadialMLP


class Interaction(nn.Module):
    """One message-passing step producing the atomic basis A of every atom.

    Channel-wise tensor product of the (linearly mixed) sender features with the spherical
    harmonics of the edge, weighted per edge by an MLP of the radial features, summed over the
    neighbours of the receiver, divided by ``avg_num_neighbors`` and mixed by a linear map.

    Args:
        irreps_node: irreps of the input node features h.
        irreps_sh: irreps of the edge spherical harmonics.
        irreps_a: irreps of the atomic basis A (output).
        num_radial: number of radial features per edge.
        radial_hidden: widths of the radial MLP's hidden layers.
        avg_num_neighbors: normalisation of the neighbour sum.
    """

    def __init__(
        self,
        irreps_node: o3.Irreps,
        irreps_sh: o3.Irreps,
        irreps_a: o3.Irreps,
        num_radial: int,
        radial_hidden: tuple[int, ...],
        avg_num_neighbors: float,
    ):
        super().__init__()
        self.irreps_node = o3.Irreps(irreps_node)
        self.irreps_sh = o3.Irreps(irreps_sh)
        self.irreps_a = o3.Irreps(irreps_a)
        self.avg_num_neighbors = float(avg_num_neighbors)
        a_types = {ir for _, ir in self.irreps_a}
        mid, instructions = [], []
        for i1, (mul, ir1) in enumerate(self.irreps_node):
            for i2, (_, ir2) in enumerate(self.irreps_sh):
                for ir in ir1 * ir2:
                    if ir in a_types:
                        instructions.append((i1, i2, len(mid), "uvu", True))
                        mid.append((mul, ir))
        self.irreps_mid = o3.Irreps(mid)
        self.linear_up = o3.Linear(self.irreps_node, self.irreps_node)
        self.conv = o3.TensorProduct(
            self.irreps_node,
            self.irreps_sh,
            self.irreps_mid,
            instructions,
            shared_weights=False,
            internal_weights=False,
        )
        self.radial = RadialMLP(num_radial, radial_hidden, self.conv.weight_numel)
        self.linear = o3.Linear(self.irreps_mid, self.irreps_a)

    def forward(
        self,
        h: torch.Tensor,
        edge_sh: torch.Tensor,
        edge_radial: torch.Tensor,
        edge_index: torch.Tensor,
    ) -> torch.Tensor:
        """h: (n, node dim); edge_sh: (E, sh dim); edge_radial: (E, num_radial);
        edge_index: (2, E) as (sender j, receiver i) -> A: (n, irreps_a.dim)."""
        sender, receiver = edge_index
        h = self.linear_up(h)
        messages = self.conv(h[sender], edge_sh, self.radial(edge_radial))
        a = torch.zeros(h.shape[0], messages.shape[1], dtype=messages.dtype, device=messages.device)
        a = a.index_add(0, receiver, messages) / self.avg_num_neighbors
        return self.linear(a)
