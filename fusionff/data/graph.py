"""Batched graphs: several structures as one flat set of atoms and edges for the model."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from fusionff.data.neighbors import batched_molecular_edges, neighbor_list


@dataclass
class Graph:
    """B structures as one graph of n atoms and E edges.

    Attributes:
        numbers: (n,) atomic numbers.
        positions: (n, 3) Angstrom.
        batch: (n,) index of the structure each atom belongs to.
        edge_index: (2, E) (sender j, receiver i) node indices.
        shifts: (E, 3) Angstrom lattice shift of each edge (zero in molecules).
        n_graphs: number of structures B.
    """

    numbers: torch.Tensor
    positions: torch.Tensor
    batch: torch.Tensor
    edge_index: torch.Tensor
    shifts: torch.Tensor
    n_graphs: int

    def to(self, device=None, dtype: torch.dtype | None = None) -> Graph:
        """Move to a device; floating tensors also to ``dtype`` when given."""
        f = dict(device=device, dtype=dtype) if dtype is not None else dict(device=device)
        return Graph(
            numbers=self.numbers.to(device),
            positions=self.positions.to(**f),
            batch=self.batch.to(device),
            edge_index=self.edge_index.to(device),
            shifts=self.shifts.to(**f),
            n_graphs=self.n_graphs,
        )


def build_graph(
    numbers: Sequence[np.ndarray],
    positions: Sequence[np.ndarray],
    r_max: float,
    cells: Sequence[np.ndarray | None] | None = None,
    pbcs: Sequence[np.ndarray | None] | None = None,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
) -> Graph:
    """Graph of a list of structures (each (N_b,) numbers, (N_b, 3) Angstrom positions)."""
    if len(numbers) != len(positions):
        raise ValueError(f"{len(numbers)} sets of atomic numbers but {len(positions)} of positions")
    cells = cells if cells is not None else [None] * len(numbers)
    pbcs = pbcs if pbcs is not None else [None] * len(numbers)
    all_z, all_x, all_b, senders, receivers, shifts = [], [], [], [], [], []
    offset = 0
    for b, (z, x, cell, pbc) in enumerate(zip(numbers, positions, cells, pbcs, strict=True)):
        z = np.asarray(z, dtype=np.int64)
        x = np.asarray(x, dtype=np.float64)
        if x.shape != (len(z), 3):
            raise ValueError(
                f"structure {b}: positions have shape {x.shape}, expected ({len(z)}, 3)"
            )
        i, j, s = neighbor_list(x, r_max, cell, pbc)
        all_z.append(z)
        all_x.append(x)
        all_b.append(np.full(len(z), b, dtype=np.int64))
        receivers.append(i + offset)
        senders.append(j + offset)
        shifts.append(s)
        offset += len(z)
    return Graph(
        numbers=torch.as_tensor(np.concatenate(all_z), device=device),
        positions=torch.as_tensor(np.concatenate(all_x), dtype=dtype, device=device),
        batch=torch.as_tensor(np.concatenate(all_b), device=device),
        edge_index=torch.as_tensor(
            np.stack([np.concatenate(senders), np.concatenate(receivers)]), device=device
        ),
        shifts=torch.as_tensor(np.concatenate(shifts), dtype=dtype, device=device),
        n_graphs=len(numbers),
    )


def molecular_batch_graph(numbers: torch.Tensor, positions: torch.Tensor, r_max: float) -> Graph:
    """Graph of B copies of one isolated molecule, built on the positions' device.

    numbers: (N,) atomic numbers; positions: (B, N, 3) Angstrom (kept in the graph as a view,
    so gradients with respect to ``positions`` flow through).
    """
    b, n, _ = positions.shape
    edge_index = batched_molecular_edges(positions, r_max)
    dev = positions.device
    return Graph(
        numbers=numbers.to(dev).repeat(b),
        positions=positions.reshape(b * n, 3),
        batch=torch.arange(b, device=dev).repeat_interleave(n),
        edge_index=edge_index,
        shifts=torch.zeros(edge_index.shape[1], 3, dtype=positions.dtype, device=dev),
        n_graphs=b,
    )
