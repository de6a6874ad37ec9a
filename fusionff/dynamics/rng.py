"""Counter-based random numbers: one reproducible stream per trajectory.

A uniform number is a pure function of (trajectory seed, counter), computed with the
SplitMix64 finaliser on int64 tensors (wrap-around arithmetic, logical shifts by masking).
A trajectory therefore draws the same numbers whichever batch, device or neighbours it has.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["mix64", "uniform", "trajectory_seeds"]

_GOLDEN = 0x9E3779B97F4A7C15 - (1 << 64)
_M1 = 0xBF58476D1CE4E5B9 - (1 << 64)
_M2 = 0x94D049BB133111EB - (1 << 64)


def _shift_right(z: Tensor, bits: int) -> Tensor:
    """Logical (unsigned) right shift of int64 values."""
    return (z >> bits) & ((1 << (64 - bits)) - 1)


def mix64(z: Tensor) -> Tensor:
    """SplitMix64 finaliser, a bijection of 64-bit integers. z: int64 tensor, any shape."""
    z = (z ^ _shift_right(z, 30)) * _M1
    z = (z ^ _shift_right(z, 27)) * _M2
    return z ^ _shift_right(z, 31)


def uniform(seeds: Tensor, counters: Tensor) -> Tensor:
    """Uniform numbers in [0, 1), float64, one per (seed, counter) pair.

    Args:
        seeds: (B,) int64 trajectory seeds.
        counters: (B,) int64 position in each trajectory's stream (e.g. the step number).
    """
    z = mix64(mix64(seeds) + (counters + 1) * _GOLDEN)
    return _shift_right(z, 11).to(torch.float64) * 2.0**-53


def trajectory_seeds(seed: int, indices: Tensor) -> Tensor:
    """Seeds of trajectories ``indices`` (int64) of an ensemble with master ``seed``.

    Trajectory i gets the same seed whatever the batching of the ensemble.
    """
    base = torch.tensor(int(seed), dtype=torch.int64, device=indices.device)
    return mix64(base + (indices.to(torch.int64) + 1) * _GOLDEN)
