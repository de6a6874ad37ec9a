"""``FusionCalculator``: a multi-state fusionff model as an ASE calculator."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes

from fusionff.models.multistate_mace import MultiStateMACE
from fusionff.potential import ModelSource, Potential


class FusionCalculator(Calculator):
    """ASE calculator exposing every electronic state of a fusionff model.

    ``energy``/``forces`` (eV, eV/Angstrom) are those of the active surface ``state``;
    ``results["energies"]`` (S,) eV and ``results["state_forces"]`` (S, N, 3) eV/Angstrom hold
    every state. Works for isolated molecules and periodic cells.

    Models with couplings (diabatic heads, and adiabatic heads with learned couplings; every
    model, for a committee) add ``results["nacs"]`` (S, S, N, 3) 1/Angstrom, d_ij = <i|grad j>,
    antisymmetric; a single diabatic model also ``results["diabatic_hamiltonian"]`` (S, S) eV,
    whose eigenvalues are the energies. A
    committee (a list or tuple of models or files) reports the mean over its members and adds
    ``energies_std`` (S,) eV, ``forces_std`` (S, N, 3) eV/Angstrom and ``gap_std`` (float, eV,
    spread of E_1 - E_0): population standard deviations over the members (ddof = 0; see
    :class:`~fusionff.potential.Potential`). ``implemented_properties`` lists what this
    calculator's model(s) give.

    Args:
        model: a :class:`MultiStateMACE`, the path of a ``*.fff`` file, or a list or tuple of
            them (a committee).
        state: index of the active state (0 = ground state).
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
    """

    implemented_properties = ["energy", "free_energy", "forces", "energies", "state_forces"]

    def __init__(
        self,
        model: MultiStateMACE | str | os.PathLike | Sequence[ModelSource],
        state: int = 0,
        device: str = "auto",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.potential = Potential(model, device=device)
        extra = []
        if self.potential.provides_nacs:
            extra.append("nacs")
            if len(self.potential.models) == 1 and self.potential.model.head == "diabatic":
                extra.append("diabatic_hamiltonian")
        if self.potential.committee:
            extra += ["energies_std", "forces_std", "gap_std"]
        self.implemented_properties = [*type(self).implemented_properties, *extra]
        self._state = 0
        self.state = state

    @property
    def n_states(self) -> int:
        return self.potential.n_states

    @property
    def state(self) -> int:
        """Index of the active state whose energy and forces ``energy``/``forces`` report."""
        return self._state

    @state.setter
    def state(self, value: int) -> None:
        value = int(value)
        if not 0 <= value < self.n_states:
            raise ValueError(f"state {value} out of range: the model has {self.n_states} states")
        self._state = value
        if "energies" in self.results:  # every state is already computed: just switch surface
            self.results["energy"] = self.results["free_energy"] = self.results["energies"][value]
            self.results["forces"] = self.results["state_forces"][value]

    def calculate(self, atoms: Atoms | None = None, properties=None, system_changes=all_changes):
        super().calculate(atoms, properties or ["energy"], system_changes)
        atoms = self.atoms
        numbers, positions = self._validated(atoms)
        pbc = np.asarray(atoms.pbc, dtype=bool)
        cell = np.asarray(atoms.cell.array) if pbc.any() else None
        (out,) = self.potential.evaluate_structures([numbers], [positions], [cell], [pbc])
        energies, forces = out.pop("energies"), out.pop("forces")
        self.results = {
            "energies": energies,
            "state_forces": forces,
            "energy": float(energies[self._state]),
            "free_energy": float(energies[self._state]),
            "forces": forces[self._state],
            **out,
        }
        if "gap_std" in out:
            self.results["gap_std"] = float(out["gap_std"])

    def _validated(self, atoms: Atoms) -> tuple[np.ndarray, np.ndarray]:
        numbers = np.asarray(atoms.numbers)
        positions = np.asarray(atoms.positions, dtype=np.float64)
        if positions.shape != (len(numbers), 3):
            raise ValueError(
                f"positions have shape {positions.shape}, expected ({len(numbers)}, 3)"
            )
        known = set(self.potential.model.config.atomic_numbers)
        for i, z in enumerate(numbers):
            if int(z) not in known:
                raise ValueError(
                    f"atom {i} ({atoms.get_chemical_symbols()[i]}, Z={int(z)}) is not an element "
                    f"of this model (elements: {self.potential.model.elements})"
                )
        bad = ~np.isfinite(positions)
        if bad.any():
            i, k = np.argwhere(bad)[0]
            raise ValueError(
                f"atom {i} has a non-finite position: {'xyz'[k]} = {positions[i, k]} "
                f"(positions {positions[i].tolist()} Angstrom)"
            )
        return numbers, positions
