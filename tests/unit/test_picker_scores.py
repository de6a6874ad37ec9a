"""data/stilbene/r3/picker_scores.py: feature novelty (distance in a model's invariant atom
features to the nearest training atom of the same element) and the source of each structure."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from fusionff.data.dataset import MultiStateDataset
from fusionff.data.structure import Structure
from fusionff.train.data import load_training_data
from tests.conftest import load_script, random_molecule, small_model

picker = load_script("data/stilbene/r3/picker_scores.py")


def test_novelty_is_the_largest_nearest_same_element_distance_of_a_structures_atoms():
    reference = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 5.0]], dtype=torch.float64)
    ref_numbers = np.array([1, 1, 6])
    # structure 1: an H at (0, 0.5) -> 0.5 and a C at (0, 2) -> 3 (the H at (0, 0) is nearer
    # but not carbon); structure 2: one H on a reference atom -> 0
    query = torch.tensor([[0.0, 0.5], [0.0, 2.0], [1.0, 0.0]], dtype=torch.float64)
    scores = picker.novelty(reference, ref_numbers, query, np.array([1, 6, 1]), np.array([2, 1]))
    np.testing.assert_allclose(scores, [3.0, 0.0])


def test_an_element_missing_from_the_reference_is_infinitely_novel_and_counts_must_add_up():
    reference = torch.zeros(2, 3, dtype=torch.float64)
    query = torch.zeros(2, 3, dtype=torch.float64)
    scores = picker.novelty(reference, np.array([1, 1]), query, np.array([1, 8]), np.array([1, 1]))
    assert scores[0] == 0.0 and np.isinf(scores[1])
    with pytest.raises(ValueError, match="3 query atoms"):
        picker.novelty(reference, np.array([1, 1]), torch.zeros(3, 3), np.ones(3), np.array([2]))


def _dataset(path, positions_list, numbers):
    structures = [
        Structure(
            numbers,
            positions,
            np.array([-1.0, 1.0]),
            np.zeros((len(numbers), 2, 3)),
            np.array([True, True]),
            np.array([True, True]),
        )
        for positions in positions_list
    ]
    with MultiStateDataset.create(path, 2) as ds:
        ds.extend(structures)


def test_features_are_invariant_so_a_rotated_training_structure_is_not_novel(tmp_path):
    """Rotation, reflection and translation leave the scalar features unchanged to float64
    round-off: a moved copy of a training structure has novelty ~0, a distorted one does not."""
    rng = np.random.default_rng(3)
    numbers, positions = random_molecule(rng, n=7)
    moved = Rotation.random(random_state=4).apply(positions) @ np.diag([1, 1, -1]) + 0.7
    distorted = positions + rng.normal(scale=0.2, size=positions.shape)
    path = tmp_path / "stilbene-r3-al9-rows0-2.h5"
    _dataset(path, [positions, moved, distorted], numbers)
    model = small_model(fusion=True, n_states=2)
    data = load_training_data([path], model.r_max)
    assert picker.source_names(data, np.arange(3)).tolist() == ["al9"] * 3
    train, held = np.array([0]), np.array([1, 2])
    for layer in (0, 1):
        ref = picker.atom_features(model, data, train, layer, batch_size=2)
        query = picker.atom_features(model, data, held, layer, batch_size=1)
        assert ref.shape[0] == len(numbers) and query.shape[0] == 2 * len(numbers)
        scalars = model.config.channels
        scores = picker.novelty(
            ref[:, :scalars], numbers, query[:, :scalars], np.tile(numbers, 2), np.array([7, 7])
        )
        assert scores[0] < 1e-10 * max(scores[1], 1.0)
        assert scores[1] > 1e-3
    with pytest.raises(ValueError, match="layer 2 out of range"):
        picker.atom_features(model, data, train, 2, batch_size=1)
