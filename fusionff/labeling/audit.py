"""Audit stored multireference labels: confirm each, or replace it where it is a higher solution.

SA-CASSCF can converge to more than one solution; a label made by following a neighbour's
orbitals alone may be a higher one (data/stilbene/r2/README.md, "Two SA-CASSCF solutions").
:class:`StoredLabelAudit` is a reference backend for :func:`fusionff.labeling.runner.label`
(resumable, failures recorded, parallel) whose input geometries are those of stored labels:
for each it runs :meth:`fusionff.labeling.molcas.MolcasCasscfBackend.audit` (a fresh start's
RASSCF, and a new label only where that lies lower), so the output dataset holds, row for
row, the confirmed old label or its replacement (meta ``audit``). Units as stored: energies
eV, forces eV/Angstrom, couplings 1/Angstrom.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from fusionff.data.structure import Structure
from fusionff.labeling.backend import LabelResult, ReferenceBackend, check_geometry
from fusionff.labeling.molcas import AUDIT_TOLERANCE_EV, MolcasCasscfBackend


class StoredLabelAudit(ReferenceBackend):
    """Audits the stored label of each geometry it is asked to compute.

    Args:
        backend: the OpenMolcas backend whose settings made the labels (basis, active atoms,
            couplings).
        labels: the stored labels (status "ok"); a geometry is matched to the label whose
            atoms are the same and whose positions agree to ``position_tol`` Angstrom.
        tolerance: eV, see :meth:`MolcasCasscfBackend.audit`.
    """

    def __init__(
        self,
        backend: MolcasCasscfBackend,
        labels: Sequence[Structure],
        tolerance: float = AUDIT_TOLERANCE_EV,
        position_tol: float = 1e-4,
    ) -> None:
        self.backend = backend
        self.labels = list(labels)
        self.tolerance = tolerance
        self.position_tol = position_tol

    def stored(self, numbers: np.ndarray, positions: np.ndarray) -> Structure | None:
        """The stored label at this geometry, or None."""
        for label in self.labels:
            if (
                len(label.numbers) == len(numbers)
                and np.array_equal(label.numbers, numbers)
                and np.abs(label.positions - positions).max() <= self.position_tol
            ):
                return label
        return None

    def compute(self, numbers: np.ndarray, positions: np.ndarray, n_states: int) -> LabelResult:
        numbers, positions = check_geometry(numbers, positions)
        old = self.stored(numbers, positions)
        if old is None:
            return LabelResult.failure(
                len(numbers), n_states, f"audit: no stored label within {self.position_tol} A"
            )
        if old.energies is None or len(old.energies) != n_states or old.forces is None:
            return LabelResult.failure(
                len(numbers), n_states, f"audit: the stored label has no {n_states}-state labels"
            )
        stored = LabelResult(
            energies=np.asarray(old.energies, dtype=float),
            forces=np.asarray(old.forces, dtype=float),
            success=np.ones(n_states, dtype=bool),
            nacs=old.nacs,
            meta=dict(old.meta),
        )
        return self.backend.audit(numbers, positions, stored, self.tolerance)

    def provenance(self) -> dict:
        return self.backend.provenance() | {
            "audit": "each row is the stored label, confirmed by a fresh start whose state "
            f"average is not lower by more than {self.tolerance} eV, or its replacement "
            "(meta audit: confirmed / replaced)"
        }
