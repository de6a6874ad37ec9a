"""Neighbour lists within a cutoff, for isolated molecules and periodic cells.

Convention: an edge (j -> i) has receiver ``i``, sender ``j`` and vector
``r_ij = x_j - x_i + shift``, where ``shift`` is a lattice vector (Angstrom; zero in molecules).
"""

from __future__ import annotations

import numpy as np
import torch
from ase.neighborlist import primitive_neighbor_list


def neighbor_list(
    positions: np.ndarray,
    r_max: float,
    cell: np.ndarray | None = None,
    pbc: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Edges of one structure within ``r_max`` (Angstrom).

    Args:
        positions: (N, 3) Angstrom.
        cell: (3, 3) Angstrom, rows are lattice vectors; needed where ``pbc`` has a True entry.
        pbc: (3,) bool periodicity along each lattice vector.

    Returns:
        receivers (E,), senders (E,), shifts (E, 3) Angstrom.
    """
    positions = np.asarray(positions, dtype=np.float64)
    pbc = np.zeros(3, dtype=bool) if pbc is None else np.asarray(pbc, dtype=bool)
    if pbc.any():
        if cell is None or abs(np.linalg.det(np.asarray(cell, dtype=np.float64))) < 1e-12:
            raise ValueError(f"periodic structure (pbc={pbc.tolist()}) needs a non-singular cell")
        cell = np.asarray(cell, dtype=np.float64)
        i, j, s = primitive_neighbor_list("ijS", pbc, cell, positions, float(r_max))
        return i.astype(np.int64), j.astype(np.int64), s.astype(np.float64) @ cell
    return _molecular_edges(positions, r_max)


def _molecular_edges(positions: np.ndarray, r_max: float):
    d = np.linalg.norm(positions[None, :, :] - positions[:, None, :], axis=-1)
    mask = d < r_max
    np.fill_diagonal(mask, False)
    i, j = np.nonzero(mask)
    return i.astype(np.int64), j.astype(np.int64), np.zeros((len(i), 3))


def batched_molecular_edges(positions: torch.Tensor, r_max: float) -> torch.Tensor:
    """Edges of B isolated molecules of N atoms each, in one flat graph of B*N nodes.

    positions: (B, N, 3) Angstrom -> edge_index (2, E) as (sender, receiver) flat node indices.
    """
    b, n, _ = positions.shape
    with torch.no_grad():
        d = torch.cdist(positions, positions)
        mask = d < r_max
        mask &= ~torch.eye(n, dtype=torch.bool, device=positions.device)
        g, i, j = torch.nonzero(mask, as_tuple=True)
    return torch.stack([g * n + j, g * n + i])
