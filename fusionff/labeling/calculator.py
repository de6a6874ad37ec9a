"""Multi-state ASE calculators around a reference backend: MOPAC at R1
(:class:`MopacCalculator`), SA-CASSCF through OpenMolcas at R2 (:class:`CasscfCalculator`), or
any :class:`~fusionff.labeling.backend.ReferenceBackend` (:class:`ReferenceCalculator`).

They have the results of the project's ``FusionCalculator``, so they are interchangeable in
scripts and in the dynamics engine's ASE wrapper::

    atoms.calc = MopacCalculator(n_states=2, state=1)
    atoms.get_potential_energy()        # eV, state S1
    atoms.calc.results["energies"]      # (S,) eV, every state
    atoms.calc.results["state_forces"]  # (S, N, 3) eV/Angstrom, every state
    atoms.calc.results["nacs"]          # (S, S, N, 3) 1/Angstrom, where the backend gives them
"""

from __future__ import annotations

import numpy as np
from ase import Atoms
from ase.calculators.calculator import CalculationFailed, Calculator, all_changes

from fusionff.labeling.backend import ReferenceBackend
from fusionff.labeling.mopac import R1_KEYWORDS, MopacBackend


class ReferenceCalculator(Calculator):
    """ASE calculator giving energies and forces (and couplings, where the backend computes
    them) of states S0 .. S(n_states-1) from a reference backend.

    Args:
        backend: the reference program.
        n_states: number of states S computed at every geometry.
        state: the state (0-based) whose energy and forces ``energy``/``forces`` report.

    Results: ``energy`` = ``free_energy`` (eV) and ``forces`` ((N, 3) eV/Angstrom) of
    ``state``; ``energies`` ((S,) eV) and ``state_forces`` ((S, N, 3) eV/Angstrom) of every
    state; ``nacs`` ((S, S, N, 3) 1/Angstrom, ``<S_i|d/dR S_j>``) when the backend gives
    couplings.

    Raises:
        ase.calculators.calculator.CalculationFailed: when a state fails; the message names
            the state and the program's own message.
    """

    implemented_properties = ["energy", "free_energy", "forces", "energies", "state_forces"]

    def __init__(
        self, backend: ReferenceBackend, n_states: int = 2, state: int = 0, **kwargs
    ) -> None:
        super().__init__(**kwargs)
        if n_states < 1:
            raise ValueError(f"n_states must be at least 1, got {n_states}")
        self.n_states = n_states
        self.backend = backend
        if getattr(backend, "couplings", False):
            self.implemented_properties = [*type(self).implemented_properties, "nacs"]
        self._state = 0
        self.state = state

    @property
    def state(self) -> int:
        """The active state (0-based); changing it updates ``energy``/``forces`` from the
        stored results of every state, without a new calculation."""
        return self._state

    @state.setter
    def state(self, value: int) -> None:
        if not 0 <= value < self.n_states:
            raise ValueError(f"state must be in 0..{self.n_states - 1}, got {value}")
        self._state = int(value)
        if "energies" in self.results:
            energy = float(self.results["energies"][self._state])
            self.results["energy"] = self.results["free_energy"] = energy
            self.results["forces"] = self.results["state_forces"][self._state].copy()

    def calculate(
        self,
        atoms: Atoms | None = None,
        properties: list[str] | None = None,
        system_changes: list[str] = all_changes,
    ) -> None:
        """Run the backend for every state at the geometry of ``atoms``."""
        super().calculate(atoms, properties or ["energy"], system_changes)
        if self.atoms.pbc.any():
            raise ValueError(
                f"{type(self).__name__} computes isolated molecules; atoms.pbc is "
                f"{self.atoms.pbc.tolist()}"
            )
        result = self.backend.compute(self.atoms.numbers, self.atoms.positions, self.n_states)
        if not result.ok:
            failed = ", ".join(f"S{k}" for k in np.flatnonzero(~result.success))
            raise CalculationFailed(
                f"{type(self.backend).__name__} failed for state(s) {failed} of "
                f"{self.atoms.get_chemical_formula()}: {result.error}"
            )
        self.results = {"energies": result.energies.copy(), "state_forces": result.state_forces}
        if result.nacs is not None:
            self.results["nacs"] = np.ascontiguousarray(np.transpose(result.nacs, (1, 2, 0, 3)))
        self.state = self._state


class MopacCalculator(ReferenceCalculator):
    """:class:`ReferenceCalculator` with MOPAC (level R1 by default).

    Args:
        n_states: number of states S computed at every geometry.
        state: the active state (0-based).
        keywords: MOPAC keywords without ``ROOT``/``AUX`` (default R1).
        timeout: wall-clock limit of one MOPAC run, s.
        executable: name or path of the MOPAC program.
        backend: another reference backend to use instead of MOPAC (then ``keywords``,
            ``timeout`` and ``executable`` are not used).
    """

    def __init__(
        self,
        n_states: int = 2,
        state: int = 0,
        *,
        keywords: str = R1_KEYWORDS,
        timeout: float | None = 600.0,
        executable: str = "mopac",
        backend: ReferenceBackend | None = None,
        **kwargs,
    ) -> None:
        backend = backend or MopacBackend(keywords, timeout=timeout, executable=executable)
        super().__init__(backend, n_states, state, **kwargs)


class CasscfCalculator(ReferenceCalculator):
    """:class:`ReferenceCalculator` with SA-CASSCF(2,2) through OpenMolcas (level R2 with the
    defaults): energies, forces and couplings of every state, each structure starting from
    the previous one's orbitals (direct dynamics follows its own path).

    Args:
        active_atoms: the C=C pair whose pi/pi* orbitals are active (stilbene: 0, 13).
        n_states: states averaged and computed (at most 3).
        state: the active state (0-based).
        **options: further :class:`fusionff.labeling.molcas.MolcasCasscfBackend` arguments
            (``basis``, ``couplings``, ``orbital_store``, ``timeout``, ...); ASE's own
            calculator arguments are not taken.
    """

    def __init__(
        self, active_atoms: tuple[int, int] = (0, 1), n_states: int = 2, state: int = 0, **options
    ) -> None:
        from fusionff.labeling.molcas import MolcasCasscfBackend

        super().__init__(MolcasCasscfBackend(active_atoms, **options), n_states, state)
