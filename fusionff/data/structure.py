"""One labelled structure with the energies and forces of S electronic states.

Units: positions and cell in Angstrom, energies in eV, forces in eV/Angstrom, non-adiabatic
couplings in 1/Angstrom. Forces are stored atoms first, then states: ``(N, S, 3)``, the layout
of the dataset's flat per-atom arrays.

A label that does not exist (never computed, or the reference program failed) has its mask
entry False; its value is not used and may be NaN. ``status`` says what happened to the
structure as a whole (one of :data:`STATUSES`) and ``error`` why, when it failed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import ase
import numpy as np

MAX_ATOMIC_NUMBER = 118
"""Largest atomic number accepted (oganesson)."""

STATUSES = ("ok", "failed", "missing")
"""Allowed values of :attr:`Structure.status`: labelled, labelling failed, not labelled yet."""


@dataclass
class Structure:
    """A structure and its multi-state labels.

    Attributes:
        numbers: (N,) int atomic numbers, 1..118.
        positions: (N, 3) Angstrom.
        energies: (S,) eV, or None when the structure has no energy labels.
        forces: (N, S, 3) eV/Angstrom, or None when the structure has no force labels.
        energy_mask: (S,) bool, True where the energy label exists; None means "all True"
            if ``energies`` is given (see :meth:`masks`).
        force_mask: (S,) bool, True where the force label exists; None as for energy_mask.
        cell: (3, 3) Angstrom, lattice vectors as rows, or None for a molecule.
        pbc: (3,) bool periodic directions, or None.
        status: one of :data:`STATUSES`.
        error: why labelling failed (empty when it did not).
        meta: free-form JSON-serialisable information (source file, frame, ...).
        nacs: (N, S, S, 3) 1/Angstrom non-adiabatic couplings, antisymmetric in the two state
            axes, or None.
    """

    numbers: np.ndarray
    positions: np.ndarray
    energies: np.ndarray | None
    forces: np.ndarray | None
    energy_mask: np.ndarray | None
    force_mask: np.ndarray | None
    cell: np.ndarray | None = None
    pbc: np.ndarray | None = None
    status: str = "ok"
    error: str = ""
    meta: dict[str, Any] = field(default_factory=dict)
    nacs: np.ndarray | None = None

    @property
    def n_atoms(self) -> int:
        """Number of atoms N."""
        return int(np.shape(self.numbers)[0])

    @property
    def n_states(self) -> int | None:
        """Number of states S implied by the labels or masks, None if there are none."""
        for array, axis in (
            (self.energies, 0),
            (self.energy_mask, 0),
            (self.forces, 1),
            (self.force_mask, 0),
        ):
            if array is not None and np.ndim(array) > axis:
                return int(np.shape(array)[axis])
        return None

    def masks(self, n_states: int) -> tuple[np.ndarray, np.ndarray]:
        """The (S,) energy and force masks with the defaults filled in.

        A missing mask means "every state labelled" when the labels are given and "nothing
        labelled" when they are None.
        """
        energy_mask = _default_mask(self.energy_mask, self.energies, n_states)
        force_mask = _default_mask(self.force_mask, self.forces, n_states)
        return energy_mask, force_mask

    @classmethod
    def unlabelled(
        cls,
        numbers: np.ndarray,
        positions: np.ndarray,
        cell: np.ndarray | None = None,
        pbc: np.ndarray | None = None,
        meta: dict[str, Any] | None = None,
    ) -> Structure:
        """A structure waiting for labels (status "missing")."""
        return cls(
            numbers=np.asarray(numbers, dtype=np.int64),
            positions=np.asarray(positions, dtype=np.float64),
            energies=None,
            forces=None,
            energy_mask=None,
            force_mask=None,
            cell=cell,
            pbc=pbc,
            status="missing",
            meta=dict(meta or {}),
        )

    def to_atoms(self) -> ase.Atoms:
        """An ``ase.Atoms`` with the numbers, positions, cell and pbc (labels not attached)."""
        atoms = ase.Atoms(numbers=np.asarray(self.numbers), positions=np.asarray(self.positions))
        if self.cell is not None:
            atoms.cell = np.asarray(self.cell)
        if self.pbc is not None:
            atoms.pbc = np.asarray(self.pbc, dtype=bool)
        return atoms

    def validate(self, n_states: int | None = None, *, name: str = "structure") -> None:
        """Check shapes, dtypes and values; raise ``ValueError`` starting with ``name``.

        Args:
            n_states: S expected by the caller (a dataset); None to infer it from the labels.
            name: prefix of error messages, e.g. ``"data.h5: structure 17"``.
        """

        def fail(message: str) -> None:
            raise ValueError(f"{name}: {message}")

        numbers = np.asarray(self.numbers)
        if numbers.ndim != 1:
            fail(f"numbers must have shape (N,), got {numbers.shape}")
        if not np.issubdtype(numbers.dtype, np.integer):
            fail(f"numbers must be integers, got dtype {numbers.dtype}")
        n = numbers.shape[0]
        if n == 0:
            fail("has no atoms")
        bad = np.flatnonzero((numbers < 1) | (numbers > MAX_ATOMIC_NUMBER))
        if bad.size:
            fail(
                f"atom {bad[0]} has unknown atomic number {numbers[bad[0]]} "
                f"(must be 1..{MAX_ATOMIC_NUMBER})"
            )
        _check_array(fail, "positions", self.positions, (n, 3))
        if not np.all(np.isfinite(self.positions)):
            atom = int(np.flatnonzero(~np.isfinite(np.asarray(self.positions)).all(axis=1))[0])
            fail(f"positions of atom {atom} are not finite")

        s = self.n_states if n_states is None else n_states
        if n_states is not None and self.n_states is not None and self.n_states != n_states:
            fail(f"has labels for {self.n_states} states, expected {n_states}")
        if s is not None:
            energy_mask, force_mask = self.masks(s)
            for key, mask in (("energy_mask", self.energy_mask), ("force_mask", self.force_mask)):
                if mask is not None:
                    _check_array(fail, key, mask, (s,))
                    if np.asarray(mask).dtype != bool:
                        fail(f"{key} must be boolean, got dtype {np.asarray(mask).dtype}")
            if self.energies is not None:
                _check_array(fail, "energies", self.energies, (s,))
                _check_finite(fail, "energies", np.asarray(self.energies), energy_mask)
            elif energy_mask.any():
                fail("energy_mask marks labels but energies is None")
            if self.forces is not None:
                _check_array(fail, "forces", self.forces, (n, s, 3))
                forces = np.asarray(self.forces).transpose(1, 0, 2).reshape(s, -1)
                _check_finite(fail, "forces", forces, force_mask)
            elif force_mask.any():
                fail("force_mask marks labels but forces is None")
            if self.nacs is not None:
                _check_array(fail, "nacs", self.nacs, (n, s, s, 3))
                if not np.all(np.isfinite(self.nacs)):
                    fail("nacs contain NaN or inf")
        elif self.nacs is not None:
            fail("nacs given without energies or forces")

        if self.cell is not None:
            _check_array(fail, "cell", self.cell, (3, 3))
            if not np.all(np.isfinite(self.cell)):
                fail("cell is not finite")
        if self.pbc is not None:
            _check_array(fail, "pbc", self.pbc, (3,))
        if self.status not in STATUSES:
            fail(f"status {self.status!r} is not one of {STATUSES}")


def _default_mask(mask: np.ndarray | None, labels: np.ndarray | None, n_states: int) -> np.ndarray:
    if mask is not None:
        return np.asarray(mask, dtype=bool)
    return np.full(n_states, labels is not None, dtype=bool)


def _check_array(fail, key: str, value: object, shape: tuple[int, ...]) -> None:
    got = np.shape(value)
    if got != shape:
        fail(f"{key} must have shape {shape}, got {got}")


def _check_finite(fail, key: str, values: np.ndarray, mask: np.ndarray) -> None:
    """values: (S, ...) per state; only states with mask True must be finite."""
    flat = np.asarray(values, dtype=np.float64).reshape(mask.shape[0], -1)
    bad = mask & ~np.isfinite(flat).all(axis=1)
    if bad.any():
        state = int(np.flatnonzero(bad)[0])
        kind = "NaN" if np.isnan(flat[state]).any() else "inf"
        fail(f"{key} contain {kind} for state {state}, which its mask marks as labelled")
