"""The audit of stored labels (``MolcasCasscfBackend.audit``, ``StoredLabelAudit``) without
OpenMolcas: jobs are scripted as in test_molcas_screening.py (the fresh start's solution has
the state average -1.0 Hartree). Checks when a stored label is confirmed (returned unchanged,
no gradient job) or replaced (gradient job from the fresh orbitals), the failures, and a
resumable audit queue through the labelling runner. The real program: ethylene in
tests/integration/test_labeling_molcas_backend.py."""

from __future__ import annotations

import numpy as np
from ase.build import molecule

from fusionff.data.dataset import MultiStateDataset
from fusionff.data.structure import Structure
from fusionff.labeling.audit import StoredLabelAudit
from fusionff.labeling.backend import LabelResult
from fusionff.labeling.molcas import AUDIT_TOLERANCE_EV, HARTREE_TO_EV
from fusionff.labeling.runner import label
from tests.unit.test_molcas_screening import SOLUTIONS, ScriptedBackend

FRESH_AVERAGE_EV = float(np.mean(SOLUTIONS["fresh"])) * HARTREE_TO_EV


def stored_label(n_atoms: int, shift_ev: float) -> LabelResult:
    """A stored 2-state label whose state average lies ``shift_ev`` above the fresh one's."""
    energies = np.array(SOLUTIONS["fresh"]) * HARTREE_TO_EV + shift_ev
    return LabelResult(
        energies=energies,
        forces=np.full((n_atoms, 2, 3), 0.7),
        success=np.ones(2, dtype=bool),
        meta={"start": "followed"},
    )


def test_a_higher_stored_label_is_replaced_from_the_fresh_orbitals():
    """Stored average 0.5 eV above the fresh start's: one RASSCF-only fresh job, then a
    gradient job from its orbitals; the new label has the fresh solution's energies and
    forces, and the meta says replaced, with both averages."""
    atoms = molecule("C2H4")
    backend = ScriptedBackend((0, 1), couplings=False)
    result = backend.audit(atoms.numbers, atoms.positions, stored_label(len(atoms), 0.5))
    assert result.ok and result.meta["audit"] == "replaced"
    assert backend.jobs == [("fresh", False), ("fresh", True)]
    np.testing.assert_allclose(result.energies, np.array(SOLUTIONS["fresh"]) * HARTREE_TO_EV)
    assert np.allclose(np.abs(result.forces), 0.01 * HARTREE_TO_EV / 0.529177210903)
    averages = result.meta["audit_state_averages_eV"]
    assert averages["fresh"] == FRESH_AVERAGE_EV
    assert averages["stored"] == FRESH_AVERAGE_EV + 0.5


def test_a_stored_label_not_above_the_fresh_one_is_confirmed_unchanged():
    """Stored average below, equal to, or above the fresh one by less than the tolerance: the
    stored label comes back as it was (energies, forces, its meta plus the audit's), after the
    fresh RASSCF alone."""
    atoms = molecule("C2H4")
    for shift in (-0.3, 0.0, 0.5 * AUDIT_TOLERANCE_EV):
        backend = ScriptedBackend((0, 1), couplings=False)
        old = stored_label(len(atoms), shift)
        result = backend.audit(atoms.numbers, atoms.positions, old)
        assert result.ok and result.meta["audit"] == "confirmed", shift
        assert backend.jobs == [("fresh", False)]
        np.testing.assert_array_equal(result.energies, old.energies)
        np.testing.assert_array_equal(result.forces, old.forces)
        assert result.meta["start"] == "followed"


def test_a_failed_fresh_start_or_gradient_drift_fails_the_audit():
    atoms = molecule("C2H4")
    broken = ScriptedBackend((0, 1), couplings=False, broken=("fresh",))
    result = broken.audit(atoms.numbers, atoms.positions, stored_label(len(atoms), 0.5))
    assert not result.ok and "scripted failure of the fresh start" in result.error
    drifting = ScriptedBackend((0, 1), couplings=False, drift=0.01 / HARTREE_TO_EV)
    result = drifting.audit(atoms.numbers, atoms.positions, stored_label(len(atoms), 0.5))
    assert not result.ok and "left the screened fresh solution" in result.error


def test_audit_queue_through_the_runner_writes_confirmed_and_replaced_rows(tmp_path):
    """Three stored labels, one of them 0.5 eV too high and one at a geometry no stored label
    has: the output holds the confirmed label, the replacement and a failure naming the
    missing label; a second call resumes with nothing left to do."""
    atoms = molecule("C2H4")
    geometries = [atoms.positions + 0.01 * k for k in range(3)]
    stored = []
    for k, shift in ((0, 0.0), (1, 0.5)):
        old = stored_label(len(atoms), shift)
        stored.append(Structure(atoms.numbers, geometries[k], old.energies, old.forces, None, None))
    audit = StoredLabelAudit(ScriptedBackend((0, 1), couplings=False), stored)
    frames = [atoms.copy() for _ in range(3)]
    for frame, positions in zip(frames, geometries, strict=True):
        frame.positions = positions
    out = tmp_path / "audit.h5"
    summary = label(frames, audit, 2, out)
    assert (summary.ok, summary.failed) == (2, 1)
    with MultiStateDataset.open(out) as ds:
        rows = [ds[i] for i in range(len(ds))]
    by_index = {row.meta["source_index"]: row for row in rows}
    assert by_index[0].meta["audit"] == "confirmed"
    np.testing.assert_allclose(by_index[0].energies, stored[0].energies)
    assert by_index[1].meta["audit"] == "replaced"
    np.testing.assert_allclose(by_index[1].energies, stored[1].energies - 0.5)
    assert by_index[2].status == "failed" and "no stored label" in by_index[2].error
    assert label(frames, audit, 2, out).already_done == 3
