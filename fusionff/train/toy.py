"""A toy two-state dataset with an analytic potential, for tests, examples and benchmarks.

Small random H/C/O molecules (3 to 5 atoms). Two diabatic surfaces, each a sum of Morse pair
terms (equilibrium distances 1.3 and 1.5 Angstrom, the second raised by 0.1 eV), coupled by a
constant 0.1 eV; the labels are the adiabatic energies (the eigenvalues of the 2x2 diabatic
matrix, so E_1 - E_0 >= 0.2 eV with many structures near the intersection) plus per-element
reference energies, and their forces by automatic differentiation. Some labels are masked and
one structure has status "failed", as in real labelled data.
"""

from __future__ import annotations

import os

import numpy as np
import torch

from fusionff.data.dataset import MultiStateDataset
from fusionff.data.structure import Structure

ELEMENT_E0 = {1: (-13.6, -13.58), 6: (-1029.0, -1028.95), 8: (-2040.0, -2039.97)}
"""Per-element reference energies of the toy labels (eV), state 0 and state 1."""

_MORSE_D, _MORSE_A, _R0, _R1, _OFFSET, _COUPLING = 0.5, 1.5, 1.3, 1.5, 0.1, 0.1


def toy_energies(numbers: np.ndarray, positions: torch.Tensor) -> torch.Tensor:
    """Adiabatic energies (2,) eV of one molecule; positions (N, 3) Angstrom (differentiable)."""
    i, j = torch.triu_indices(len(numbers), len(numbers), offset=1)
    r = (positions[i] - positions[j]).norm(dim=-1)

    def morse(r0: float) -> torch.Tensor:
        return (_MORSE_D * (1 - torch.exp(-_MORSE_A * (r - r0))) ** 2 - _MORSE_D).sum()

    h11, h22 = morse(_R0), morse(_R1) + _OFFSET
    mean, half_gap = (h11 + h22) / 2, torch.sqrt(((h11 - h22) / 2) ** 2 + _COUPLING**2)
    e0 = torch.tensor([sum(ELEMENT_E0[int(z)][s] for z in numbers) for s in (0, 1)])
    return torch.stack([mean - half_gap, mean + half_gap]) + e0.to(positions.dtype)


def toy_structures(n: int = 40, seed: int = 0) -> list[Structure]:
    """``n`` labelled toy structures (see the module docstring); reproducible from ``seed``."""
    rng = np.random.default_rng(seed)
    structures = []
    for k in range(n):
        size = int(rng.integers(3, 6))
        numbers = np.concatenate([[6], rng.choice([1, 6, 8], size=size - 1)]).astype(np.int64)
        positions = _random_cluster(rng, size)
        x = torch.tensor(positions, dtype=torch.float64, requires_grad=True)
        energies = toy_energies(numbers, x)
        forces = torch.stack(
            [-torch.autograd.grad(energies[s], x, retain_graph=True)[0] for s in (0, 1)], dim=1
        )
        energy_mask = np.array([True, k % 11 != 5])
        force_mask = np.array([True, k % 7 != 3])
        status = "failed" if k == n // 2 else "ok"
        structures.append(
            Structure(
                numbers=numbers,
                positions=positions,
                energies=None if status == "failed" else energies.detach().numpy(),
                forces=None if status == "failed" else forces.detach().numpy(),
                energy_mask=energy_mask & (status == "ok"),
                force_mask=force_mask & (status == "ok"),
                status=status,
                error="toy failure" if status == "failed" else "",
                meta={"toy": k},
            )
        )
    return structures


def write_toy_dataset(path: str | os.PathLike, n: int = 40, seed: int = 0) -> None:
    """Write :func:`toy_structures` to a new multi-state dataset file (2 states)."""
    provenance = {"program": "fusionff.train.toy", "n": n, "seed": seed}
    with MultiStateDataset.create(
        path, 2, method="toy two-state Morse model", provenance=provenance, overwrite=True
    ) as ds:
        ds.extend(toy_structures(n, seed))


def _random_cluster(rng: np.random.Generator, n: int) -> np.ndarray:
    """n positions (Angstrom), each 1.0-1.8 Angstrom from an earlier one, none closer than 1.0."""
    positions = [np.zeros(3)]
    while len(positions) < n:
        anchor = positions[int(rng.integers(len(positions)))]
        direction = rng.normal(size=3)
        x = anchor + rng.uniform(1.0, 1.8) * direction / np.linalg.norm(direction)
        if all(np.linalg.norm(x - p) >= 1.0 for p in positions):
            positions.append(x)
    return np.array(positions)
