"""The electronic-structure protocol the dynamics engine talks to, and an ASE adapter.

Anything that maps a batch of geometries to adiabatic energies, forces and (optionally)
non-adiabatic couplings of S states is an :class:`ElectronicStructure`: the ML potential,
Tully's analytic models (:mod:`fusionff.dynamics.tully`) or a multi-state ASE calculator
wrapped by :class:`ASECalculatorStructure`.
"""

from __future__ import annotations

import copy
import queue
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
import torch
from torch import Tensor

from fusionff.dynamics.spread import max_force_deviation

__all__ = ["StateOutputs", "ElectronicStructure", "ASECalculatorStructure"]


@dataclass
class StateOutputs:
    """Adiabatic electronic-structure results for a batch of B structures of N atoms.

    Attributes:
        energies: (B, S) eV, adiabatic, ordered by increasing energy.
        forces: (B, S, N, 3) eV/Angstrom, minus the gradient of each adiabatic state.
        nacs: (B, S, S, N, 3) 1/Angstrom, d_jk = <j|grad k>, antisymmetric in (j, k);
            None when the structure does not provide couplings.
        energy_spread: (B, S) eV, a committee's spread of each state's energy: the standard
            deviation over its members (ddof 0); None when the structure is not a committee.
        force_spread: (B, S) eV/Angstrom, a committee's force spread of each state: the
            largest over atoms of the members' RMS deviation from the mean force,
            max_a sqrt(mean_m |F_m,a - <F_a>|^2); None when not a committee. Given together
            with ``energy_spread`` (see :mod:`fusionff.dynamics.spread`).
    """

    energies: Tensor
    forces: Tensor
    nacs: Tensor | None = None
    energy_spread: Tensor | None = None
    force_spread: Tensor | None = None

    def __post_init__(self) -> None:
        b, s = self.energies.shape
        if self.forces.shape[:2] != (b, s) or self.forces.shape[-1] != 3:
            raise ValueError(
                f"forces must have shape (B, S, N, 3) = ({b}, {s}, N, 3), "
                f"got {tuple(self.forces.shape)}"
            )
        if self.nacs is not None:
            expected = (b, s, s, *self.forces.shape[2:])
            if tuple(self.nacs.shape) != expected:
                raise ValueError(f"nacs must have shape {expected}, got {tuple(self.nacs.shape)}")
        if (self.energy_spread is None) != (self.force_spread is None):
            raise ValueError("energy_spread and force_spread come together (a committee)")
        for name in ("energy_spread", "force_spread"):
            value = getattr(self, name)
            if value is not None and tuple(value.shape) != (b, s):
                raise ValueError(f"{name} must have shape {(b, s)}, got {tuple(value.shape)}")


@runtime_checkable
class ElectronicStructure(Protocol):
    """Batched multi-state electronic structure.

    Attributes:
        n_states: number S of adiabatic states returned.
        provides_nacs: whether :meth:`evaluate` fills ``StateOutputs.nacs``.
    """

    n_states: int
    provides_nacs: bool

    def evaluate(self, positions: Tensor) -> StateOutputs:
        """Evaluate all states at ``positions`` (B, N, 3) Angstrom; outputs on the same device."""
        ...


class ASECalculatorStructure:
    """Wrap a multi-state ASE calculator as an :class:`ElectronicStructure` (a loop over B).

    A calculation that raises (e.g. a reference program that fails at one geometry) gives NaN
    for that structure, with a warning naming it: the engine then flags and stops only that
    trajectory while the others go on.

    The calculator must fill ``results["energies"]`` (S,) eV and ``results["state_forces"]``
    (S, N, 3) eV/Angstrom when it computes the energy of a structure,
    ``results["nacs"]`` (S, S, N, 3) 1/Angstrom if ``provides_nacs`` is True, and, if
    ``provides_spread`` is True (a committee, e.g. ``FusionCalculator([a, b])``),
    ``results["energies_std"]`` (S,) eV and ``results["forces_std"]`` (S, N, 3) eV/Angstrom,
    which become ``energy_spread`` and ``force_spread``
    (:func:`~fusionff.dynamics.spread.max_force_deviation`).

    With ``workers`` > 1 the B structures of a batch are computed concurrently by that many
    threads, each with its own deep copy of the calculator. That pays off for calculators
    that run an external program (MOPAC: the threads wait on the subprocesses, so with W cores
    a batch of B >= W takes about 1/W of the serial time); the results are the same as with
    one worker, structure by structure.

    Args:
        calculator: an ASE calculator (deep-copyable when ``workers`` > 1).
        atoms: template structure (atomic numbers, cell, pbc); its positions are replaced.
        n_states: number of states S the calculator returns.
        provides_nacs: read ``results["nacs"]`` as well.
        workers: structures computed at the same time.
        provides_spread: read a committee's ``results["energies_std"]`` and ``["forces_std"]``.
    """

    def __init__(
        self,
        calculator,
        atoms,
        n_states: int,
        provides_nacs: bool = False,
        workers: int = 1,
        provides_spread: bool = False,
    ) -> None:
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        self.calculator = calculator
        self.atoms = atoms.copy()
        self.atoms.calc = calculator
        self.n_states = int(n_states)
        self.provides_nacs = bool(provides_nacs)
        self.provides_spread = bool(provides_spread)
        self.workers = int(workers)
        self._slots: queue.SimpleQueue | None = None

    def _slot_queue(self) -> queue.SimpleQueue:
        """Atoms objects, one per worker, each with its own calculator (copies made on first
        use, in the calling thread, before any worker starts)."""
        if self._slots is None:
            self._slots = queue.SimpleQueue()
            self._slots.put(self.atoms)
            for _ in range(self.workers - 1):
                atoms = self.atoms.copy()
                atoms.calc = copy.deepcopy(self.calculator)
                self._slots.put(atoms)
        return self._slots

    def _result(self, calculator, name: str, shape: tuple[int, ...]) -> np.ndarray:
        results = calculator.results
        if name not in results:
            raise KeyError(f"calculator {type(calculator).__name__} did not fill results[{name!r}]")
        value = np.asarray(results[name], dtype=np.float64)
        if value.shape != shape:
            raise ValueError(f"results[{name!r}] has shape {value.shape}, expected {shape}")
        return value

    def _compute(self, atoms, position: np.ndarray, index: int):
        """(energies, forces, nacs or None, (energies_std, forces_std) or None) of one
        structure, or None where it failed."""
        atoms.positions = position
        try:
            atoms.get_potential_energy()
        except Exception as err:  # a failed reference calculation stops one trajectory
            warnings.warn(
                f"{type(atoms.calc).__name__} failed for structure {index} of the batch "
                f"({type(err).__name__}: {err}); its trajectory gets NaN and is stopped",
                RuntimeWarning,
                stacklevel=3,
            )
            return None
        s, n = self.n_states, len(atoms)
        return (
            self._result(atoms.calc, "energies", (s,)),
            self._result(atoms.calc, "state_forces", (s, n, 3)),
            self._result(atoms.calc, "nacs", (s, s, n, 3)) if self.provides_nacs else None,
            (
                self._result(atoms.calc, "energies_std", (s,)),
                self._result(atoms.calc, "forces_std", (s, n, 3)),
            )
            if self.provides_spread
            else None,
        )

    def _compute_in_slot(self, position: np.ndarray, index: int):
        slots = self._slots
        atoms = slots.get()
        try:
            return self._compute(atoms, position, index)
        finally:
            slots.put(atoms)

    def evaluate(self, positions: Tensor) -> StateOutputs:
        """Evaluate B structures (``workers`` at a time). positions: (B, N, 3) Angstrom."""
        b, n, _ = positions.shape
        if n != len(self.atoms):
            raise ValueError(f"positions have {n} atoms, the template has {len(self.atoms)}")
        s = self.n_states
        coords = positions.detach().cpu().numpy()
        if self.workers == 1 or b == 1:
            results = [self._compute(self.atoms, coords[i], i) for i in range(b)]
        else:
            self._slot_queue()
            with ThreadPoolExecutor(min(self.workers, b)) as pool:
                results = list(pool.map(self._compute_in_slot, coords, range(b)))
        energies = np.full((b, s), np.nan)
        forces = np.full((b, s, n, 3), np.nan)
        nacs = np.full((b, s, s, n, 3), np.nan) if self.provides_nacs else None
        energies_std = np.full((b, s), np.nan)
        forces_std = np.full((b, s, n, 3), np.nan)
        for i, result in enumerate(results):
            if result is not None:
                energies[i], forces[i] = result[0], result[1]
                if nacs is not None:
                    nacs[i] = result[2]
                if self.provides_spread:
                    energies_std[i], forces_std[i] = result[3]

        def to_tensor(a: np.ndarray) -> Tensor:
            return torch.as_tensor(a, dtype=torch.float64, device=positions.device)

        spreads = {}
        if self.provides_spread:
            spreads["energy_spread"] = to_tensor(energies_std)
            spreads["force_spread"] = max_force_deviation(to_tensor(forces_std))
        return StateOutputs(
            energies=to_tensor(energies),
            forces=to_tensor(forces),
            nacs=None if nacs is None else to_tensor(nacs),
            **spreads,
        )
