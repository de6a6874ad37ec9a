"""Metrics on hand-made arrays: per-state energy/force errors, gaps, near-intersection subset."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fusionff.train.metrics import compute_metrics, format_metrics


@pytest.fixture()
def arrays():
    """Two structures (2 and 1 atoms), two states; structure 1 has no S1 energy label."""
    ref_e = np.array([[0.0, 0.3], [1.0, 3.0]])  # gap 0.3 eV (near) and 2.0 eV
    pred_e = ref_e + np.array([[0.010, -0.020], [0.030, 999.0]])
    energy_mask = np.array([[True, True], [True, False]])
    n_atoms = np.array([2, 1])
    ref_f = np.zeros((3, 2, 3))
    pred_f = np.zeros((3, 2, 3))
    pred_f[0, 0] = [0.1, 0.0, 0.0]  # structure 0, state 0
    pred_f[2, 1] = [0.0, 0.0, 5.0]  # structure 1, state 1: force label masked
    force_mask = np.array([[True, True], [True, False]])
    return pred_e, ref_e, energy_mask, n_atoms, pred_f, ref_f, force_mask


def test_energy_errors_per_structure_and_per_atom(arrays):
    """MAE/RMSE in meV over labelled entries only; per atom divides by N."""
    m = compute_metrics(*arrays)
    s0, s1 = m["states"]
    assert s0["n_energies"] == 2 and s1["n_energies"] == 1
    assert s0["energy_mae"] == pytest.approx(20.0)
    assert s0["energy_rmse"] == pytest.approx(np.sqrt((10.0**2 + 30.0**2) / 2))
    assert s0["energy_mae_per_atom"] == pytest.approx((5.0 + 30.0) / 2)
    assert s1["energy_mae"] == pytest.approx(20.0) and s1["energy_rmse"] == pytest.approx(20.0)


def test_force_errors_per_component_masked(arrays):
    """Force MAE/RMSE per Cartesian component (meV/A) over atoms with labelled forces."""
    s0, s1 = compute_metrics(*arrays)["states"]
    assert s0["n_forces"] == 2
    assert s0["force_mae"] == pytest.approx(100.0 / 9)  # one 100 meV/A error in 3 atoms x 3
    assert s0["force_rmse"] == pytest.approx(np.sqrt(100.0**2 / 9))
    assert s1["force_mae"] == 0.0  # the 5 eV/A error sits on a masked label


def test_gap_errors_and_near_intersection_subset(arrays):
    """Gap E1-E0 error uses structures labelled in both states; the near subset has gap<0.5."""
    m = compute_metrics(*arrays)
    (gap,) = m["gaps"]
    assert gap["n"] == 1 and gap["mae"] == pytest.approx(30.0)
    near = m["near_intersection"]
    assert near["n_structures"] == 1 and near["gap_below_eV"] == 0.5
    assert near["states"][0]["energy_mae"] == pytest.approx(10.0)
    assert near["states"][0]["force_mae"] == pytest.approx(100.0 / 6)
    json.dumps(m)  # plain JSON


def test_no_near_subset_when_no_structure_qualifies(arrays):
    """Without a structure whose reference gap is below the threshold there is no subset."""
    assert "near_intersection" not in compute_metrics(*arrays, near_gap=0.1)


def test_single_state_and_unlabelled_metrics_are_none():
    """One state: no gaps; a state without any label reports None, not NaN."""
    m = compute_metrics(
        np.zeros((2, 1)),
        np.ones((2, 1)),
        np.zeros((2, 1), bool),
        np.array([1, 1]),
        np.zeros((2, 1, 3)),
        np.zeros((2, 1, 3)),
        np.ones((2, 1), bool),
    )
    assert m["gaps"] == [] and "near_intersection" not in m
    assert m["states"][0]["energy_mae"] is None and m["states"][0]["force_mae"] == 0.0


def test_table_lists_states_gaps_and_subset(arrays):
    """The text table has a row per state, per gap, and the near-intersection block."""
    text = format_metrics(compute_metrics(*arrays), "test split")
    assert text.splitlines()[0] == "test split (2 structures)"
    assert "S0 " in text and "S1 " in text and "S1-S0" in text
    assert "near intersection: E1 - E0 < 0.5 eV (1 structures)" in text
    assert "20.00" in text
