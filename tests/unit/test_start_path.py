"""data/stilbene/r3/start_path.py without OpenMolcas: the Kabsch alignment that puts an anchor
onto the target, and the choice of anchors (the ok labels nearest the target). Positions
Angstrom, energies eV."""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

from fusionff.data.dataset import MultiStateDataset
from fusionff.data.structure import Structure
from tests.conftest import load_script

sp = load_script("data/stilbene/r3/start_path.py")


def test_alignment_undoes_a_rotation_and_translation_and_never_reflects():
    """A rotated, shifted copy is brought back onto the original to round-off; a mirror
    image of a chiral cloud is not (a proper rotation only), so its RMSD stays large."""
    x = np.random.default_rng(0).normal(size=(8, 3))
    rotation = Rotation.random(random_state=1).as_matrix()
    moved = x @ rotation.T + np.array([1.0, -2.0, 3.0])
    np.testing.assert_allclose(sp.aligned_onto(moved, x), x, atol=1e-12)
    assert sp.superpose(x, moved)[1] < 1e-12
    assert sp.superpose(x, x * np.array([1.0, 1.0, -1.0]))[1] > 0.1


def test_the_nearest_ok_labels_are_the_anchors_and_the_target_is_left_out(tmp_path):
    """Ranked by RMSD after superposition (a rotated near-copy comes first although its raw
    positions are far), failed labels and other molecules passed over, the target itself
    left out."""
    rng = np.random.default_rng(2)
    numbers = np.array([6, 6, 1, 1, 8])
    target = rng.normal(size=(5, 3))
    rotation = Rotation.random(random_state=3).as_matrix()

    def ok(positions, atoms=numbers):
        return Structure(atoms, positions, np.zeros(2), None, None, None)

    rows = [
        ok(target),  # 0: the target
        ok(target @ rotation.T + 5.0 + 0.01 * rng.normal(size=(5, 3))),  # 1: nearest, rotated
        ok(target + 0.2 * rng.normal(size=(5, 3))),  # 2: second
        Structure(numbers, target + 0.001, None, None, None, None, status="failed"),  # 3
        ok(target + 0.5 * rng.normal(size=(5, 3))),  # 4: third
        ok(target, np.array([6, 6, 1, 1, 7])),  # 5: another molecule
    ]
    path = tmp_path / "q.h5"
    with MultiStateDataset.create(path, 2, method="test", provenance={}) as dataset:
        dataset.extend(rows)
    found = sp.nearest_labels([str(path)], numbers, target, 3, f"{path}:0")
    assert found == [f"{path}:1", f"{path}:2", f"{path}:4"]
