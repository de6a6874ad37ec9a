"""The labelling runner with fast fake backends: failures recorded, resume, parallel workers."""

import os
import subprocess
import sys

import numpy as np
import pytest
from ase import Atoms

from fusionff.data.dataset import MultiStateDataset
from fusionff.labeling.backend import LabelResult, ReferenceBackend
from fusionff.labeling.runner import SOURCE_INDEX, label

N_STATES = 2


class HarmonicBackend(ReferenceBackend):
    """E_s = s + sum |x|^2 eV, F = -2x; fails (all states) when two atoms are closer than
    0.5 Angstrom, and fails only S1 for structures with a single atom."""

    def compute(self, numbers, positions, n_states):
        positions = np.asarray(positions, dtype=float)
        distances = np.linalg.norm(positions[:, None] - positions[None], axis=-1)
        if np.any(distances[np.triu_indices(len(positions), 1)] < 0.5):
            return LabelResult.failure(len(positions), n_states, "atoms overlap")
        energies = np.arange(n_states) + np.sum(positions**2)
        forces = np.repeat(-2.0 * positions[:, None, :], n_states, axis=1)
        success = np.ones(n_states, dtype=bool)
        error = ""
        if len(positions) == 1 and n_states > 1:
            success[1:] = False
            energies[1:], forces[:, 1:] = np.nan, np.nan
            error = "S1: no excited state for one atom"
        return LabelResult(energies, forces, success, error)

    def provenance(self):
        return {"program": "harmonic", "version": "1", "keywords": "", "method": "harmonic"}


class InterruptingBackend(HarmonicBackend):
    """Labels ``stop_after`` structures, then raises KeyboardInterrupt like a killed job."""

    def __init__(self, stop_after):
        self.calls, self.stop_after = 0, stop_after

    def compute(self, numbers, positions, n_states):
        if self.calls == self.stop_after:
            raise KeyboardInterrupt
        self.calls += 1
        return super().compute(numbers, positions, n_states)


class CountingBackend(HarmonicBackend):
    def __init__(self):
        self.seen = []

    def compute(self, numbers, positions, n_states):
        self.seen.append(np.asarray(positions).copy())
        return super().compute(numbers, positions, n_states)


class OtherKeywordsBackend(HarmonicBackend):
    def provenance(self):
        return {**super().provenance(), "keywords": "stiffer"}


class BuggyBackend(HarmonicBackend):
    def compute(self, numbers, positions, n_states):
        raise RuntimeError("bug in backend")


def _molecules(n):
    """``n`` small distinct molecules; number 2 (if any) has two atoms on top of each other."""
    rng = np.random.default_rng(0)
    molecules = [
        Atoms(
            "CHO",
            positions=rng.normal(scale=1.0, size=(3, 3)) + [[0, 0, 0], [1.5, 0, 0], [0, 1.5, 0]],
        )
        for _ in range(n)
    ]
    if n > 2:
        molecules[2].positions[1] = molecules[2].positions[0]
    return molecules


def _entries(path):
    with MultiStateDataset.open(path) as dataset:
        return [dataset[i] for i in range(len(dataset))]


def _by_index(entries):
    return {entry.meta[SOURCE_INDEX]: entry for entry in entries}


def test_failed_structure_is_recorded_and_the_others_are_labelled(tmp_path):
    """A structure the backend cannot compute is stored as failed with its message and False
    masks; every other structure gets the backend's energies and (N, S, 3) forces."""
    molecules = _molecules(5)
    summary = label(molecules, HarmonicBackend(), N_STATES, tmp_path / "out.h5")
    assert (summary.total, summary.already_done, summary.ok, summary.failed) == (5, 0, 4, 1)
    entries = _by_index(_entries(tmp_path / "out.h5"))
    assert sorted(entries) == list(range(5))
    failed = entries[2]
    assert failed.status == "failed" and "atoms overlap" in failed.error
    assert not failed.energy_mask.any() and not failed.force_mask.any()
    for i in (0, 1, 3, 4):
        entry, x = entries[i], molecules[i].positions
        assert entry.status == "ok" and entry.error == "" and entry.energy_mask.all()
        np.testing.assert_allclose(entry.energies, [np.sum(x**2), 1 + np.sum(x**2)])
        np.testing.assert_allclose(entry.forces, np.stack([-2 * x, -2 * x], axis=1))


def test_a_single_failed_state_keeps_the_other_states_labels(tmp_path):
    """When only S1 fails, the entry is "failed" with masks [True, False] and S0's labels."""
    atom = Atoms("H", positions=[[0.1, 0.2, 0.3]])
    label([atom], HarmonicBackend(), N_STATES, tmp_path / "out.h5")
    (entry,) = _entries(tmp_path / "out.h5")
    assert entry.status == "failed" and entry.error.startswith("S1:")
    assert entry.energy_mask.tolist() == [True, False]
    assert entry.energies[0] == pytest.approx(0.14)


def test_resume_after_interrupt_labels_only_the_remaining_structures(tmp_path, caplog):
    """A job interrupted after 3 of 6 structures keeps those 3 and says so in its log (the
    serial path as the pool's); the next call computes only the other 3, and every input
    index is stored exactly once."""
    molecules = _molecules(6)
    path = tmp_path / "out.h5"
    with caplog.at_level("WARNING", logger="fusionff.labeling.runner"):
        with pytest.raises(KeyboardInterrupt):
            label(molecules, InterruptingBackend(stop_after=3), N_STATES, path)
    assert "labelling stopped (KeyboardInterrupt) after 3 new structure(s), 3 left" in caplog.text
    assert sorted(_by_index(_entries(path))) == [0, 1, 2]

    backend = CountingBackend()
    summary = label(molecules, backend, N_STATES, path)
    assert (summary.already_done, summary.ok + summary.failed) == (3, 3)
    np.testing.assert_allclose(backend.seen, [m.positions for m in molecules[3:]])
    indices = [entry.meta[SOURCE_INDEX] for entry in _entries(path)]
    assert sorted(indices) == list(range(6))

    again = label(molecules, CountingBackend(), N_STATES, path)
    assert (again.already_done, again.ok, again.failed) == (6, 0, 0)
    assert len(_entries(path)) == 6


def test_resume_refuses_a_different_input(tmp_path):
    """Continuing an output with other geometries than it was started with is an error."""
    molecules = _molecules(3)
    label(molecules, HarmonicBackend(), N_STATES, tmp_path / "out.h5")
    molecules[1].positions += 0.1
    with pytest.raises(ValueError, match="differs from input structure 1"):
        label(molecules, HarmonicBackend(), N_STATES, tmp_path / "out.h5")


def test_resume_refuses_other_states_or_another_method(tmp_path):
    """An output is continued only with its number of states and its program's keywords."""
    label(_molecules(2), HarmonicBackend(), N_STATES, tmp_path / "out.h5")
    with pytest.raises(ValueError, match="n_states 2 \\(asked: 3\\)"):
        label(_molecules(2), HarmonicBackend(), 3, tmp_path / "out.h5")
    with pytest.raises(ValueError, match="keywords ''"):
        label(_molecules(2), OtherKeywordsBackend(), N_STATES, tmp_path / "out.h5")
    summary = label(_molecules(2), OtherKeywordsBackend(), 3, tmp_path / "out.h5", overwrite=True)
    assert summary.already_done == 0


def test_periodic_input_is_refused(tmp_path):
    """Backends label isolated molecules: a periodic input structure is an error up front."""
    molecules = _molecules(2)
    molecules[1].cell, molecules[1].pbc = [10.0, 10.0, 10.0], True
    with pytest.raises(ValueError, match="input structure 1 is periodic"):
        label(molecules, HarmonicBackend(), N_STATES, tmp_path / "out.h5")


def test_backend_exception_is_recorded_as_failure(tmp_path):
    """An exception inside a backend becomes a failed entry naming it, not a crashed job."""
    label(_molecules(2), BuggyBackend(), N_STATES, tmp_path / "out.h5")
    entries = _entries(tmp_path / "out.h5")
    assert len(entries) == 2
    assert all(e.status == "failed" and "RuntimeError: bug in backend" in e.error for e in entries)


@pytest.mark.slow
def test_parallel_workers_give_the_serial_labels(tmp_path):
    """Two worker processes store the same labels as one, each input exactly once."""
    molecules = _molecules(6)
    label(molecules, HarmonicBackend(), N_STATES, tmp_path / "serial.h5")
    summary = label(molecules, HarmonicBackend(), N_STATES, tmp_path / "parallel.h5", workers=2)
    assert (summary.ok, summary.failed) == (5, 1)
    serial = _by_index(_entries(tmp_path / "serial.h5"))
    parallel = _entries(tmp_path / "parallel.h5")
    assert sorted(e.meta[SOURCE_INDEX] for e in parallel) == list(range(6))
    for entry in parallel:
        reference = serial[entry.meta[SOURCE_INDEX]]
        assert entry.status == reference.status
        np.testing.assert_array_equal(entry.energy_mask, reference.energy_mask)
        np.testing.assert_allclose(entry.energies, reference.energies)
        np.testing.assert_allclose(entry.forces, reference.forces)


KILLED_JOB = """
import os, sys
import numpy as np
from ase import Atoms
from fusionff.labeling.backend import LabelResult, ReferenceBackend
from fusionff.labeling.runner import label

class DyingBackend(ReferenceBackend):
    calls = 0
    def compute(self, numbers, positions, n_states):
        if self.calls == 3:
            os._exit(9)  # killed: no cleanup, the HDF5 file is never closed
        self.calls += 1
        forces = np.zeros((len(numbers), n_states, 3))
        return LabelResult(np.arange(n_states) + 0.5, forces, np.ones(n_states, bool))
    def provenance(self):
        return {"program": "harmonic", "version": "1", "keywords": "", "method": "harmonic"}

molecules = [Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.7 + 0.01 * i]]) for i in range(6)]
label(molecules, DyingBackend(), 2, sys.argv[1])
"""


@pytest.mark.slow
def test_resume_after_the_process_is_killed(tmp_path):
    """A labelling process killed (os._exit, file never closed) after 3 structures leaves a
    readable output with those 3; resuming labels the other 3, each index once."""
    script = tmp_path / "job.py"
    script.write_text(KILLED_JOB)
    path = tmp_path / "out.h5"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    run = subprocess.run(
        [sys.executable, str(script), str(path)], capture_output=True, text=True, env=env
    )
    assert run.returncode == 9, run.stderr
    assert sorted(_by_index(_entries(path))) == [0, 1, 2]
    molecules = [Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.7 + 0.01 * i]]) for i in range(6)]
    backend = CountingBackend()
    summary = label(molecules, backend, N_STATES, path)
    assert (summary.already_done, summary.ok) == (3, 3) and len(backend.seen) == 3
    assert sorted(e.meta[SOURCE_INDEX] for e in _entries(path)) == list(range(6))
