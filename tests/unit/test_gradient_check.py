"""The gradient check of reference labels: consistent forces pass, a wrong gradient of one
state is rejected (its energy kept), failures of the displaced calculations reject the
forces, the direction is reproducible, and the labelling runner stores the result."""

import re

import numpy as np
import pytest

from fusionff.data.dataset import MultiStateDataset
from fusionff.data.structure import Structure
from fusionff.labeling.backend import LabelResult, ReferenceBackend
from fusionff.labeling.gradient_check import GradientCheckedBackend
from fusionff.labeling.runner import label


class AnharmonicBackend(ReferenceBackend):
    """E_s = s + sum(x^2) + 0.1 sum(x^4) eV with exact forces, except that S1's forces on
    atom 0 are off by ``wrong`` eV/A in x; ``fail_displaced`` fails every calculation after
    the first (the check's displaced ones)."""

    def __init__(self, wrong=0.0, fail_displaced=False):
        self.wrong, self.fail_displaced, self.calls = wrong, fail_displaced, 0

    def compute(self, numbers, positions, n_states):
        self.calls += 1
        if self.fail_displaced and self.calls > 1:
            return LabelResult.failure(len(positions), n_states, "SCF did not converge")
        x = np.asarray(positions, dtype=float)
        energies = np.arange(n_states) + np.sum(x**2) + 0.1 * np.sum(x**4)
        force = -(2 * x + 0.4 * x**3)
        forces = np.repeat(force[:, None, :], n_states, axis=1)
        forces[0, 1, 0] += self.wrong
        return LabelResult(energies, forces, np.ones(n_states, dtype=bool))

    def provenance(self):
        return {"program": "anharmonic", "version": "1", "keywords": "", "method": "test"}


NUMBERS = np.array([6, 1, 1])
POSITIONS = np.array([[0.1, -0.2, 0.3], [1.0, 0.2, -0.1], [-0.7, 0.9, 0.4]])


def test_consistent_forces_pass():
    """Exact forces pass at tolerance 1e-4 eV/A: the central difference is accurate to
    O(h^2) (h = 0.005 A), and the result equals the inner backend's labels."""
    checked = GradientCheckedBackend(AnharmonicBackend(), tolerance=1e-4)
    result = checked.compute(NUMBERS, POSITIONS, 2)
    assert result.ok and result.forces_ok.all() and result.error == ""
    plain = AnharmonicBackend().compute(NUMBERS, POSITIONS, 2)
    np.testing.assert_array_equal(result.energies, plain.energies)
    np.testing.assert_array_equal(result.forces, plain.forces)


def test_wrong_gradient_of_one_state_is_rejected_and_its_energy_kept():
    """S1's forces off by 3 eV/A on one atom: S1's forces are rejected with both slopes in
    the message; S0's forces and both energies stay."""
    result = GradientCheckedBackend(AnharmonicBackend(wrong=3.0), tolerance=0.05).compute(
        NUMBERS, POSITIONS, 2
    )
    assert result.ok  # energies of both states are usable
    assert result.forces_ok.tolist() == [True, False]
    assert result.error.startswith("S1: forces rejected by the gradient check: energy slope")
    pattern = r"slope (\S+) eV/A along a random direction, forces give (\S+) "
    numbers = re.search(pattern, result.error)
    slope, predicted = float(numbers[1]), float(numbers[2])
    assert abs(slope - predicted) > 0.05


def test_failed_displaced_calculations_reject_the_forces():
    """When the displaced calculations fail, the forces cannot be checked and are rejected;
    the energies of the undisplaced calculation stay."""
    result = GradientCheckedBackend(AnharmonicBackend(fail_displaced=True)).compute(
        NUMBERS, POSITIONS, 2
    )
    assert result.ok and not result.forces_ok.any()
    assert "displaced calculations failed" in result.error


def test_direction_is_reproducible_and_depends_on_the_geometry():
    """The same geometry and seed give the same unit direction, another geometry or seed
    another one."""
    a = GradientCheckedBackend(AnharmonicBackend())
    u = a.direction(NUMBERS, POSITIONS)
    assert np.linalg.norm(u) == pytest.approx(1.0)
    np.testing.assert_array_equal(u, a.direction(NUMBERS, POSITIONS.copy()))
    assert not np.allclose(u, a.direction(NUMBERS, POSITIONS + 1e-3))
    assert not np.allclose(
        u, GradientCheckedBackend(AnharmonicBackend(), seed=1).direction(NUMBERS, POSITIONS)
    )


def test_runner_stores_rejected_forces_as_unlabelled(tmp_path):
    """The labelling runner writes a rejected state's forces with a False force mask, keeps
    the entry "ok" with the message, counts it, and records the check in the provenance."""
    structures = [
        Structure(NUMBERS, POSITIONS + 0.05 * i, None, None, None, None) for i in range(3)
    ]
    backend = GradientCheckedBackend(AnharmonicBackend(wrong=3.0))
    summary = label(structures, backend, 2, tmp_path / "out.h5")
    assert (summary.ok, summary.failed, summary.forces_rejected) == (3, 0, 3)
    with MultiStateDataset.open(tmp_path / "out.h5") as ds:
        entry = ds[0]
        assert ds.provenance["gradient_check"]["tolerance_eV_per_angstrom"] == 0.05
    assert entry.status == "ok" and "S1: forces rejected" in entry.error
    assert entry.energy_mask.tolist() == [True, True]
    assert entry.force_mask.tolist() == [True, False]


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="positive"):
        GradientCheckedBackend(AnharmonicBackend(), tolerance=0.0)
