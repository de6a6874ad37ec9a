"""Radial part of the edge features: Bessel basis times a smooth polynomial cutoff.

Distances are in Angstrom. Both functions go to zero with two continuous derivatives at
``r_max``, so energies and forces are smooth when a neighbour enters or leaves the cutoff.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class PolynomialCutoff(nn.Module):
    """Envelope ``f(x) = 1 - (p+1)(p+2)/2 x^p + p(p+2) x^(p+1) - p(p+1)/2 x^(p+2)``, x = r/r_max.

    ``f(0) = 1`` and ``f``, ``f'`` and ``f''`` vanish at ``r = r_max``; zero beyond.
    """

    def __init__(self, r_max: float, p: int = 5):
        super().__init__()
        if r_max <= 0:
            raise ValueError(f"r_max must be positive, got {r_max}")
        if p < 2:
            raise ValueError(f"cutoff exponent p must be >= 2, got {p}")
        self.r_max = float(r_max)
        self.p = int(p)

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        """r: (E,) Angstrom -> (E,) dimensionless envelope."""
        p = self.p
        x = r / self.r_max
        f = (
            1.0
            - 0.5 * (p + 1) * (p + 2) * x.pow(p)
            + p * (p + 2) * x.pow(p + 1)
            - 0.5 * p * (p + 1) * x.pow(p + 2)
        )
        return f * (x < 1.0)


class BesselBasis(nn.Module):
    """``sqrt(2/r_max) sin(n pi r / r_max) / r`` for n = 1..num_basis (r in Angstrom)."""

    def __init__(self, r_max: float, num_basis: int = 8):
        super().__init__()
        if num_basis < 1:
            raise ValueError(f"num_basis must be >= 1, got {num_basis}")
        self.r_max = float(r_max)
        self.num_basis = int(num_basis)
        self.register_buffer(
            "frequencies",
            math.pi / self.r_max * torch.arange(1, num_basis + 1, dtype=torch.float64),
        )
        self.prefactor = math.sqrt(2.0 / self.r_max)

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        """r: (E,) Angstrom, all > 0 -> (E, num_basis)."""
        r = r.unsqueeze(-1)
        return self.prefactor * torch.sin(self.frequencies * r) / r


class RadialEmbedding(nn.Module):
    """Bessel basis multiplied by the polynomial envelope: (E,) -> (E, num_basis)."""

    def __init__(self, r_max: float, num_basis: int = 8, p: int = 5):
        super().__init__()
        self.bessel = BesselBasis(r_max, num_basis)
        self.cutoff = PolynomialCutoff(r_max, p)
        self.num_basis = num_basis

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        return self.bessel(r) * self.cutoff(r).unsqueeze(-1)


class RadialMLP(nn.Module):
    """Maps radial features (E, num_basis) to per-edge tensor-product weights (E, n_out).

    No biases, so weights vanish smoothly together with the radial features at r_max.
    """

    def __init__(self, n_in: int, hidden: tuple[int, ...], n_out: int):
        super().__init__()
        layers: list[nn.Module] = []
        width = n_in
        for h in hidden:
            layers += [nn.Linear(width, h, bias=False), nn.SiLU()]
            width = h
        layers.append(nn.Linear(width, n_out, bias=False))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
