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


def test_errors_per_reference_gap_bin():
    """gap_edges bins the structures labelled in both states by reference E1 - E0 (the lower
    edge inside a bin, the upper outside); each bin's metrics equal compute_metrics on that
    bin's structures alone; an empty bin says so; a structure without S1 is in no bin; the
    result is plain JSON and the table has a line per bin."""
    ref_e = np.array([[0.0, 0.3], [0.0, 0.5], [0.0, 5.0], [1.0, 9.0], [0.0, 2.0]])
    err = np.array([[0.01, 0.02], [0.03, -0.01], [0.2, -0.1], [0.5, 0.0], [0.04, 0.05]])
    energy_mask = np.ones((5, 2), bool)
    energy_mask[3, 1] = False  # no S1 label: in no gap bin
    n_atoms = np.array([1, 2, 1, 1, 1])
    rng = np.random.default_rng(0)
    ref_f = rng.normal(size=(6, 2, 3))
    pred_f = ref_f + 0.1 * rng.normal(size=(6, 2, 3))
    args = (ref_e + err, ref_e, energy_mask, n_atoms, pred_f, ref_f, np.ones((5, 2), bool))
    m = compute_metrics(*args, gap_edges=[0.5, 1.0, 4.0])
    bins = m["by_gap"]
    assert [(b["gap_from_eV"], b["gap_to_eV"]) for b in bins] == [
        (None, 0.5),
        (0.5, 1.0),
        (1.0, 4.0),
        (4.0, None),
    ]
    assert [b["n_structures"] for b in bins] == [1, 1, 1, 1]
    assert bins[0]["states"][0]["energy_mae"] == pytest.approx(10.0)  # structure 0
    assert bins[1]["gaps"][0]["mae"] == pytest.approx(40.0)  # structure 1: -0.01 - 0.03
    assert bins[3]["states"][1]["energy_mae"] == pytest.approx(100.0)  # structure 2 only
    alone = compute_metrics(
        *(a[[1]] for a in args[:4]), pred_f[1:3], ref_f[1:3], args[6][[1]], near_gap=None
    )
    assert bins[1]["states"] == alone["states"] and bins[1]["gaps"] == alone["gaps"]
    empty = compute_metrics(*args, gap_edges=[6.0, 7.0])["by_gap"][1]
    assert empty == {"gap_from_eV": 6.0, "gap_to_eV": 7.0, "n_structures": 0}
    json.dumps(m)
    text = format_metrics(compute_metrics(*args, gap_edges=[6.0, 7.0]))
    assert "  gap < 6: 4 structures; energy MAE" in text
    assert "  6 <= gap < 7: 0 structures; -" in text and "  7 <= gap: 0 structures" in text
    for bad in ([], [1.0, 1.0], [2.0, 1.0]):
        with pytest.raises(ValueError, match="gap_edges must be increasing"):
            compute_metrics(*args, gap_edges=bad)
    assert "by_gap" not in compute_metrics(*args)
