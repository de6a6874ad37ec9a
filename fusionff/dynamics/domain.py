"""The reference's domain: geometries a potential was trained for, checked at every step.

A machine-learned potential is only as good as the reference it learned, and a reference has
a domain: a CAS(2,2) on the central C=C of stilbene describes twisting and pyramidalisation
but not a hydrogen moving over to the other central carbon (its active space no longer holds
the pi and pi* orbitals there, and no label exists). A trajectory that gets there is on a
surface no reference supports; it is stopped with status ``OUT_OF_DOMAIN`` ("out-of-domain"
in summaries), so that it is counted apart instead of lending the potential's extrapolation
to a yield.

The run input's ``dynamics.domain`` key::

    domain:
      pairs: [[1, 13], [14, 0]]   # 0-based atom indices
      min_distance: 1.45          # Angstrom: stop where any pair comes closer
      description: a hydrogen bridges the central carbons (outside R2's active space)
      dissociation_distance: 2.0  # Angstrom (optional): stop where an atom has no other
                                  # atom this close (a bond broke: a fragment flies off)

A molecule that falls apart leaves the domain of a reference whose labels are the intact
molecule (a CAS(2,2) has no orbitals for the broken bond's radical pair), and a potential
trained on them goes on to compute something for the fragment with nothing to check it
against: a hydrogen shot off by a strained start flew 66 A away in a 500 fs R3 preview, which
ran to its time limit, and its frame was later picked for labelling.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["DomainLimits", "nearest_neighbour_distances", "outside_domain"]


@dataclass
class DomainLimits:
    """Where a run's trajectories leave the reference's domain.

    Attributes:
        pairs: atom pairs (0-based indices), each ``[i, j]``.
        min_distance: Angstrom; a trajectory where any pair is closer is stopped.
        description: what the limit means, for summaries and logs.
        dissociation_distance: Angstrom, or None (no check); a trajectory where some atom
            has no other atom within this distance is stopped (the molecule fell apart).
    """

    pairs: list[list[int]]
    min_distance: float
    description: str = ""
    dissociation_distance: float | None = None

    def __post_init__(self) -> None:
        if not self.pairs:
            raise ValueError("pairs: give at least one [i, j] pair of atom indices")
        for pair in self.pairs:
            if len(pair) != 2 or min(pair) < 0 or pair[0] == pair[1]:
                raise ValueError(f"pairs: {pair} is not two different atom indices (0-based)")
        if not (math.isfinite(self.min_distance) and self.min_distance > 0):
            raise ValueError(f"min_distance must be positive (Angstrom), got {self.min_distance}")
        cut = self.dissociation_distance
        if cut is not None and not (math.isfinite(cut) and cut > 0):
            raise ValueError(f"dissociation_distance must be positive (Angstrom), got {cut}")
        self._index: dict[tuple[int, torch.device], Tensor] = {}  # not a field: not in configs

    def index(self, n_atoms: int, device: torch.device) -> Tensor:
        """(P, 2) atom indices of the pairs on ``device``, checked against ``n_atoms`` once
        and kept (this runs at every step of a run)."""
        key = (n_atoms, device)
        if key not in self._index:
            for pair in self.pairs:
                if max(pair) >= n_atoms:
                    raise ValueError(
                        f"dynamics.domain.pairs: {pair} names an atom beyond the {n_atoms} atoms"
                    )
            self._index[key] = torch.tensor(self.pairs, device=device)
        return self._index[key]


def pair_distances(positions: Tensor, limits: DomainLimits) -> Tensor:
    """(B, N, 3) Angstrom -> (B, P) Angstrom, the distance of each of the P pairs."""
    index = limits.index(positions.shape[1], positions.device)
    return (positions[:, index[:, 0]] - positions[:, index[:, 1]]).norm(dim=-1)


def nearest_neighbour_distances(positions: Tensor) -> Tensor:
    """(B, N, 3) Angstrom -> (B, N) Angstrom, each atom's distance to its nearest other atom
    (inf for a one-atom system)."""
    d = torch.cdist(positions, positions)
    eye = torch.eye(positions.shape[1], dtype=torch.bool, device=positions.device)
    return d.masked_fill(eye, math.inf).amin(dim=-1)


def outside_domain(positions: Tensor, limits: DomainLimits) -> Tensor:
    """(B, N, 3) Angstrom -> (B,) bool: some pair is closer than ``limits.min_distance``, or
    some atom is farther than ``limits.dissociation_distance`` from every other atom."""
    outside = (pair_distances(positions, limits) < limits.min_distance).any(dim=1)
    if limits.dissociation_distance is not None and positions.shape[1] > 1:
        far = nearest_neighbour_distances(positions) > limits.dissociation_distance
        outside = outside | far.any(dim=1)
    return outside
