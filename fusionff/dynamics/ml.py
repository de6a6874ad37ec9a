"""A fusionff ML potential as the dynamics' electronic structure."""

from __future__ import annotations

import os

import torch
from torch import Tensor

from fusionff.dynamics.protocol import StateOutputs
from fusionff.models.multistate_mace import MultiStateMACE
from fusionff.potential import Potential


class MLElectronicStructure:
    """Energies and forces of all S states of a trained model, B geometries in one graph.

    The models predict no couplings (``provides_nacs`` is False): use kappa-TSH or
    Landau-Zener hopping with them. Positions come in as (B, N, 3) Angstrom on the engine's
    device and dtype; outputs are returned on that device and dtype (eV, eV/Angstrom).

    Args:
        model: a :class:`Potential`, a :class:`MultiStateMACE` or a ``*.fff`` path.
        numbers: (N,) atomic numbers of the molecule.
        device: where the model runs (``"auto"``, ``"cpu"``, ``"cuda"``) when not a Potential.
    """

    provides_nacs = False

    def __init__(
        self,
        model: Potential | MultiStateMACE | str | os.PathLike,
        numbers,
        device: str = "auto",
    ):
        self.potential = model if isinstance(model, Potential) else Potential(model, device)
        self.numbers = torch.as_tensor(numbers, dtype=torch.long, device=self.potential.device)
        known = set(self.potential.model.config.atomic_numbers)
        for i, z in enumerate(self.numbers.tolist()):
            if z not in known:
                raise ValueError(f"atom {i} (Z={z}) is not an element of the model")
        self.n_states = self.potential.n_states

    def evaluate(self, positions: Tensor) -> StateOutputs:
        """positions: (B, N, 3) Angstrom -> energies (B, S) eV, forces (B, S, N, 3) eV/A."""
        out = self.potential.evaluate(self.numbers, positions)
        return StateOutputs(
            energies=out["energies"].to(device=positions.device, dtype=positions.dtype),
            forces=out["forces"].to(device=positions.device, dtype=positions.dtype),
        )
