"""The interface every reference program (MOPAC, later OpenQP, ...) implements for labelling.

A backend turns one geometry into energies and forces of the lowest ``n_states`` electronic
states. It never raises for a structure it cannot compute: it returns a :class:`LabelResult`
whose per-state ``success`` mask is False for the failed states and whose ``error`` says why.
Backends must be picklable, because the labelling runner ships them to worker processes.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class LabelResult:
    """Reference labels of one structure.

    Attributes:
        energies: (S,) eV; NaN where ``success`` is False.
        forces: (N, S, 3) eV/Angstrom, atoms first then states (the dataset's layout); NaN
            where ``success`` is False.
        success: (S,) bool, True where the state was computed.
        error: empty when every state succeeded, otherwise one message per failed state
            (or rejected forces), each prefixed with the state's name (``"S1: ..."``),
            joined by ``"; "``.
        seconds: wall-clock time spent on the structure, s.
        force_success: (S,) bool, True where the state's forces are usable; None: as
            ``success``. A state can have a usable energy and rejected forces
            (:mod:`fusionff.labeling.gradient_check`).
        nacs: (N, S, S, 3) 1/Angstrom, non-adiabatic couplings ``<S_i|d/dR S_j>``
            (antisymmetric), from backends that compute them and only when every state
            succeeded; None otherwise.
        meta: how the labels were made (JSON-able; e.g. the starting orbitals of a
            multireference calculation), stored in the dataset entry's ``meta``.
    """

    energies: np.ndarray
    forces: np.ndarray
    success: np.ndarray
    error: str = ""
    seconds: float = 0.0
    force_success: np.ndarray | None = None
    nacs: np.ndarray | None = None
    meta: dict | None = None

    @property
    def ok(self) -> bool:
        """True when every state was computed."""
        return bool(np.all(self.success))

    @property
    def forces_ok(self) -> np.ndarray:
        """(S,) bool: states whose forces are usable (computed and not rejected)."""
        success = np.asarray(self.success, dtype=bool)
        if self.force_success is None:
            return success
        return success & np.asarray(self.force_success, dtype=bool)

    @property
    def state_forces(self) -> np.ndarray:
        """(S, N, 3) eV/Angstrom: the forces with states first (the ASE calculator's layout)."""
        return np.ascontiguousarray(self.forces.transpose(1, 0, 2))

    @classmethod
    def failure(cls, n_atoms: int, n_states: int, error: str, seconds: float = 0.0) -> LabelResult:
        """A result in which every state failed with the same message."""
        return cls(
            energies=np.full(n_states, np.nan),
            forces=np.full((n_atoms, n_states, 3), np.nan),
            success=np.zeros(n_states, dtype=bool),
            error=error,
            seconds=seconds,
        )


class ReferenceBackend(ABC):
    """A reference electronic-structure program that labels structures with S states."""

    @abstractmethod
    def compute(self, numbers: np.ndarray, positions: np.ndarray, n_states: int) -> LabelResult:
        """Energies and forces of states S0 .. S(n_states-1) of one structure.

        Args:
            numbers: (N,) atomic numbers.
            positions: (N, 3) Angstrom.
            n_states: number of states S, counted from the ground state.

        Returns:
            The labels; failures are reported in the result, never raised.
        """

    @abstractmethod
    def provenance(self) -> dict:
        """What produced the labels: at least ``program``, ``version``, ``keywords`` and
        ``method`` (a one-line description of the level of theory)."""


def check_geometry(numbers: np.ndarray, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validate shapes of one structure and return them as ``(int64 (N,), float64 (N, 3))``.

    Raises:
        ValueError: shapes that do not fit (a caller's bug, not a bad structure).
    """
    numbers = np.asarray(numbers, dtype=np.int64).reshape(-1)
    positions = np.asarray(positions, dtype=np.float64)
    if positions.shape != (len(numbers), 3):
        raise ValueError(
            f"positions must have shape ({len(numbers)}, 3) for {len(numbers)} atoms, "
            f"got {positions.shape}"
        )
    return numbers, positions


def compute_safely(
    backend: ReferenceBackend, numbers: np.ndarray, positions: np.ndarray, n_states: int
) -> LabelResult:
    """``backend.compute``, with an exception turned into a failed result naming it.

    The labelling runner's worker processes call this; it lives here so that they import
    only the backend, not the dataset.
    """
    start = time.perf_counter()
    try:
        return backend.compute(numbers, positions, n_states)
    except Exception as exc:  # a backend bug must not end a long labelling job
        message = f"{type(backend).__name__} raised {type(exc).__name__}: {exc}"
        return LabelResult.failure(len(numbers), n_states, message, time.perf_counter() - start)
