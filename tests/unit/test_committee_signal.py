"""data/stilbene/r3/committee_signal.py: the scores of how well a committee's spread ranks its
own errors, on synthetic numbers (energies eV, forces eV/Angstrom)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from fusionff.train.evaluate import Predictions
from tests.conftest import load_script

sig = load_script("data/stilbene/r3/committee_signal.py")


def test_a_spread_equal_to_the_error_ranks_perfectly_and_captures_every_worst_structure():
    error = np.linspace(0.1, 2.0, 50)
    score = sig.signal(error.copy(), error)
    assert score["spearman"] == pytest.approx(1.0)
    assert score["capture"] == 1.0  # the worst 5 are among the top 10 by spread
    assert score["capture_chance"] == pytest.approx(0.2)
    assert score["median_error_over_spread"] == pytest.approx(1.0)


def test_a_reversed_spread_ranks_backwards_and_captures_none():
    error = np.linspace(0.1, 2.0, 50)
    score = sig.signal(error[::-1].copy(), error)
    assert score["spearman"] == pytest.approx(-1.0)
    assert score["capture"] == 0.0


def test_structures_without_a_label_are_left_out_and_too_few_is_an_error():
    spread = np.array([1.0, 2.0, np.nan, 3.0, 4.0])
    error = np.array([2.0, 4.0, 5.0, np.nan, 8.0])
    score = sig.signal(spread, error)
    assert score["n"] == 3
    assert score["median_error_over_spread"] == pytest.approx(2.0)
    with pytest.raises(ValueError, match="at least 3"):
        sig.signal(spread[:2], error[:2])


def test_per_structure_spreads_and_errors_follow_the_dynamics_definitions(monkeypatch):
    """Two members, two structures of 2 and 1 atoms, two states. Force spread: the largest
    over atoms of the norm of the per-component standard deviations over members; force error:
    the largest over atoms of |mean force - label|; energy: std and |mean - label|; gap: the
    std of the members' S1 - S0 and |mean gap - label gap|. A state without labels gives NaN."""
    energies = [torch.tensor([[0.0, 4.0], [1.0, 5.0]]), torch.tensor([[0.2, 4.6], [1.0, 5.0]])]
    forces = [torch.zeros(3, 2, 3), torch.zeros(3, 2, 3)]
    forces[1][0, 0] = torch.tensor([0.2, 0.0, 0.0])  # atom 0, S0: members 0 and 0.2 in x
    forces[1][1, 0] = torch.tensor([0.0, 0.6, 0.8])  # atom 1, S0: a deviation of norm 1.0
    members = iter(Predictions(e, f) for e, f in zip(energies, forces, strict=True))
    monkeypatch.setattr(sig, "predict", lambda *args, **kwargs: next(members))
    ref_forces = np.zeros((3, 2, 3))
    ref_forces[2, 1] = [0.0, 0.0, 0.3]  # structure 1's only atom, S1
    data = SimpleNamespace(
        energies=np.array([[0.0, 4.0], [1.0, 5.5]]),
        energy_mask=np.array([[True, True], [True, False]]),
        force_mask=np.array([[True, True], [True, True]]),
        forces=ref_forces,
        n_atoms=np.array([2, 1]),
        atom_indices=lambda idx: np.arange(3),
    )
    rows = sig.per_structure([None, None], data, np.array([0, 1]), batch_size=4)
    # structure 0, S0: atom 0 std (0.1, 0, 0), atom 1 std (0, 0.3, 0.4) -> largest norm 0.5
    assert rows["force_spread"][0, 0] == pytest.approx(0.5)
    # mean forces: atom 0 (0.1, 0, 0), atom 1 (0, 0.3, 0.4): largest error 0.5 against zeros
    assert rows["force_error"][0, 0] == pytest.approx(0.5)
    assert rows["force_spread"][1].tolist() == [0.0, 0.0]
    assert rows["force_error"][1, 1] == pytest.approx(0.3)
    assert rows["energy_spread"][0].tolist() == pytest.approx([0.1, 0.3])
    assert rows["energy_error"][0].tolist() == pytest.approx([0.1, 0.3])
    assert np.isnan(rows["energy_error"][1, 1]) and np.isnan(rows["gap_error"][1, 0])
    assert rows["gap_spread"][0, 0] == pytest.approx(0.2)  # gaps 4.0 and 4.4
    assert rows["gap_error"][0, 0] == pytest.approx(0.2)  # mean gap 4.2 against 4.0
