"""Readouts: per-atom contributions to the energy of each of the S electronic states.

``n_states`` is the number of per-atom outputs: S energies (adiabatic head) or the
S(S+1)/2 elements of the diabatic matrix H (diabatic head, :mod:`fusionff.nn.diabatic`).
"""

from __future__ import annotations

import torch
from e3nn import o3
from torch import nn


class LinearReadout(nn.Module):
    """Linear map of the invariant (0e) features to S per-atom energies (eV)."""

    def __init__(self, irreps_in: o3.Irreps, n_states: int):
        super().__init__()
        self.linear = o3.Linear(o3.Irreps(irreps_in), o3.Irreps(f"{n_states}x0e"))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """h: (n, dim) -> (n, S)."""
        return self.linear(h)


class MLPReadout(nn.Module):
    """Two-layer MLP with SiLU on the invariant (0e) features -> S per-atom energies (eV)."""

    def __init__(self, irreps_in: o3.Irreps, n_states: int, hidden: int = 16):
        super().__init__()
        self.irreps_in = o3.Irreps(irreps_in)
        self.n_scalars = sum(mul for mul, ir in self.irreps_in if ir == o3.Irrep("0e"))
        if self.n_scalars == 0:
            raise ValueError(f"readout input {self.irreps_in} has no 0e features")
        # indices of the 0e components, wherever they sit in the irreps
        idx, start = [], 0
        for mul, ir in self.irreps_in:
            if ir == o3.Irrep("0e"):
                idx.extend(range(start, start + mul))
            start += mul * ir.dim
        self.register_buffer("scalar_index", torch.tensor(idx, dtype=torch.long), persistent=False)
        self.net = nn.Sequential(
            nn.Linear(self.n_scalars, hidden), nn.SiLU(), nn.Linear(hidden, n_states)
        )

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.net(h.index_select(-1, self.scalar_index))
