"""The electronic-structure protocol the dynamics engine talks to, and an ASE adapter.

Anything that maps a batch of geometries to adiabatic energies, forces and (optionally)
non-adiabatic couplings of S states is an :class:`ElectronicStructure`: the ML potential,
Tully's analytic models (:mod:`fusionff.dynamics.tully`) or a multi-state ASE calculator
wrapped by :class:`ASECalculatorStructure`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
import torch
from torch import Tensor

__all__ = ["StateOutputs", "ElectronicStructure", "ASECalculatorStructure"]


@dataclass
class StateOutputs:
    """Adiabatic electronic-structure results for a batch of B structures of N atoms.

    Attributes:
        energies: (B, S) eV, adiabatic, ordered by increasing energy.
        forces: (B, S, N, 3) eV/Angstrom, minus the gradient of each adiabatic state.
        nacs: (B, S, S, N, 3) 1/Angstrom, d_jk = <j|grad k>, antisymmetric in (j, k);
            None when the structure does not provide couplings.
    """

    energies: Tensor
    forces: Tensor
    nacs: Tensor | None = None

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
    (S, N, 3) eV/Angstrom when it computes the energy of a structure, and
    ``results["nacs"]`` (S, S, N, 3) 1/Angstrom if ``provides_nacs`` is True.

    Args:
        calculator: an ASE calculator.
        atoms: template structure (atomic numbers, cell, pbc); its positions are replaced.
        n_states: number of states S the calculator returns.
        provides_nacs: read ``results["nacs"]`` as well.
    """

    def __init__(self, calculator, atoms, n_states: int, provides_nacs: bool = False) -> None:
        self.calculator = calculator
        self.atoms = atoms.copy()
        self.atoms.calc = calculator
        self.n_states = int(n_states)
        self.provides_nacs = bool(provides_nacs)

    def _result(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        results = self.calculator.results
        if name not in results:
            raise KeyError(
                f"calculator {type(self.calculator).__name__} did not fill results[{name!r}]"
            )
        value = np.asarray(results[name], dtype=np.float64)
        if value.shape != shape:
            raise ValueError(f"results[{name!r}] has shape {value.shape}, expected {shape}")
        return value

    def evaluate(self, positions: Tensor) -> StateOutputs:
        """Evaluate B structures one by one. positions: (B, N, 3) Angstrom."""
        b, n, _ = positions.shape
        if n != len(self.atoms):
            raise ValueError(f"positions have {n} atoms, the template has {len(self.atoms)}")
        s = self.n_states
        energies = np.empty((b, s))
        forces = np.empty((b, s, n, 3))
        nacs = np.empty((b, s, s, n, 3)) if self.provides_nacs else None
        coords = positions.detach().cpu().numpy()
        for i in range(b):
            self.atoms.positions = coords[i]
            try:
                self.atoms.get_potential_energy()
            except Exception as err:  # a failed reference calculation stops one trajectory
                warnings.warn(
                    f"{type(self.calculator).__name__} failed for structure {i} of the batch "
                    f"({type(err).__name__}: {err}); its trajectory gets NaN and is stopped",
                    RuntimeWarning,
                    stacklevel=2,
                )
                energies[i], forces[i] = np.nan, np.nan
                if nacs is not None:
                    nacs[i] = np.nan
                continue
            energies[i] = self._result("energies", (s,))
            forces[i] = self._result("state_forces", (s, n, 3))
            if nacs is not None:
                nacs[i] = self._result("nacs", (s, s, n, 3))

        def to_tensor(a: np.ndarray) -> Tensor:
            return torch.as_tensor(a, dtype=torch.float64, device=positions.device)

        return StateOutputs(
            energies=to_tensor(energies),
            forces=to_tensor(forces),
            nacs=None if nacs is None else to_tensor(nacs),
        )
