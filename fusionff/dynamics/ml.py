"""A fusionff ML potential as the dynamics' electronic structure."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from fusionff.dynamics.protocol import StateOutputs
from fusionff.dynamics.spread import max_force_deviation
from fusionff.potential import ModelSource, Potential


class MLElectronicStructure:
    """Energies and forces of all S states of a trained model (or the mean of a committee),
    B geometries in one graph.

    Diabatic models (every member of a committee) also give couplings from their
    eigenvectors (``provides_nacs`` is True), so FSSH can use them; with S > 2 their signs
    follow each structure's eigenvector convention, so set ``align_nac_signs``. Adiabatic
    models with learned couplings give them too; those of ``couplings: outer`` come from an
    eigenvector with a sign convention of each geometry, so set ``align_nac_signs`` with them.
    Adiabatic models without learned couplings predict none: use kappa-TSH or Landau-Zener
    hopping with them. Positions come in as (B, N, 3) Angstrom on the engine's device and
    dtype; outputs are returned on that device and dtype (eV, eV/Angstrom, 1/Angstrom).

    A committee (``committee`` is True) also reports its spread: ``energy_spread`` (B, S) eV,
    the members' standard deviation (ddof 0) of each state's energy, and ``force_spread``
    (B, S) eV/Angstrom, per state the largest over atoms of the norm of the per-component
    force standard deviations, max_a sqrt(mean_m |F_m,a - <F_a>|^2)
    (:mod:`fusionff.dynamics.spread`).

    Args:
        model: a :class:`Potential`, a :class:`MultiStateMACE`, a ``*.fff`` path, or a list
            of models or paths (a committee).
        numbers: (N,) atomic numbers of the molecule.
        device: where the model runs (``"auto"``, ``"cpu"``, ``"cuda"``) when not a Potential.
    """

    def __init__(
        self,
        model: Potential | ModelSource | Sequence[ModelSource],
        numbers,
        device: str = "auto",
    ):
        self.potential = model if isinstance(model, Potential) else Potential(model, device)
        self.provides_nacs = self.potential.provides_nacs
        self.committee = self.potential.committee
        self.numbers = torch.as_tensor(numbers, dtype=torch.long, device=self.potential.device)
        known = set(self.potential.model.config.atomic_numbers)
        for i, z in enumerate(self.numbers.tolist()):
            if z not in known:
                raise ValueError(f"atom {i} (Z={z}) is not an element of the model")
        self.n_states = self.potential.n_states

    def evaluate(self, positions: Tensor) -> StateOutputs:
        """positions: (B, N, 3) Angstrom -> energies (B, S) eV, forces (B, S, N, 3) eV/A and,
        where ``provides_nacs``, nacs (B, S, S, N, 3) 1/A; a committee adds energy_spread
        (B, S) eV and force_spread (B, S) eV/A."""
        out = self.potential.evaluate(self.numbers, positions)
        like = {"device": positions.device, "dtype": positions.dtype}
        nacs = out.get("nacs")
        spreads = {}
        if self.committee:
            spreads["energy_spread"] = out["energies_std"].to(**like)
            spreads["force_spread"] = max_force_deviation(out["forces_std"].to(**like))
        return StateOutputs(
            energies=out["energies"].to(**like),
            forces=out["forces"].to(**like),
            nacs=None if nacs is None else nacs.to(**like),
            **spreads,
        )
