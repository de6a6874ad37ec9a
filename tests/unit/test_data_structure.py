"""Structure: default masks, validation messages, conversion to ase.Atoms."""

from __future__ import annotations

import numpy as np
import pytest

from fusionff.data.structure import Structure


def water(**kw) -> Structure:
    fields = dict(
        numbers=np.array([8, 1, 1]),
        positions=np.array([[0.0, 0.0, 0.0], [0.76, 0.59, 0.0], [-0.76, 0.59, 0.0]]),
        energies=np.array([-10.0, -6.0]),
        forces=np.zeros((3, 2, 3)),
        energy_mask=None,
        force_mask=None,
    )
    fields.update(kw)
    return Structure(**fields)


def test_masks_default_to_labels_present():
    """Without masks, given labels count as present and absent labels as missing."""
    e, f = water().masks(2)
    assert e.tolist() == [True, True] and f.tolist() == [True, True]
    e, f = water(forces=None).masks(2)
    assert e.all() and not f.any()
    assert water().n_states == 2 and water(energies=None, forces=None).n_states is None


def test_unlabelled_structure_is_valid_and_missing():
    """Structure.unlabelled has status 'missing' and validates for any number of states."""
    s = Structure.unlabelled([8, 1, 1], water().positions)
    s.validate(3)
    assert s.status == "missing" and s.n_atoms == 3


def test_nan_is_allowed_only_where_masked_out():
    """NaN labels are accepted for masked-out states and rejected for labelled ones."""
    energies = np.array([-10.0, np.nan])
    water(energies=energies, energy_mask=np.array([True, False])).validate(2)
    with pytest.raises(ValueError, match=r"^frame 4: energies contain NaN for state 1"):
        water(energies=energies).validate(2, name="frame 4")


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(numbers=np.array([8.0, 1.0, 1.0])), "numbers must be integers"),
        (dict(numbers=np.array([8, 1, 0])), "atom 2 has unknown atomic number 0"),
        (dict(numbers=np.array([8, 1, 119])), "atom 2 has unknown atomic number 119"),
        (dict(positions=np.full((3, 3), np.nan)), "positions of atom 0 are not finite"),
        (dict(forces=np.zeros((3, 3, 3))), r"has labels for 2 states, expected 3|forces must"),
        (dict(energy_mask=np.array([1, 1])), "energy_mask must be boolean"),
        (dict(energies=None, energy_mask=np.array([True, False])), "energies is None"),
        (dict(cell=np.eye(2)), r"cell must have shape \(3, 3\)"),
        (dict(nacs=np.zeros((3, 2, 2))), r"nacs must have shape \(3, 2, 2, 3\)"),
        (dict(status="pending"), "status 'pending' is not one of"),
    ],
)
def test_validate_names_the_problem(change, message):
    """validate() rejects wrong dtypes, shapes, elements and values with a precise message."""
    with pytest.raises(ValueError, match=message):
        water(**change).validate(2)


def test_validate_checks_the_expected_number_of_states():
    """A two-state structure is rejected when three states are expected."""
    with pytest.raises(ValueError, match="has labels for 2 states, expected 3"):
        water().validate(3)


def test_to_atoms_carries_geometry_cell_and_pbc():
    """to_atoms gives an ase.Atoms with the same numbers, positions, cell and pbc."""
    s = water(cell=np.eye(3) * 10, pbc=np.array([True, False, True]))
    atoms = s.to_atoms()
    assert atoms.get_chemical_formula() == "H2O"
    np.testing.assert_array_equal(atoms.positions, s.positions)
    np.testing.assert_array_equal(atoms.cell[:], s.cell)
    assert atoms.pbc.tolist() == [True, False, True]
    assert water().to_atoms().pbc.tolist() == [False, False, False]
