"""FusionCalculator: ASE protocol, every state exposed, clear errors on bad input."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk, molecule

from fusionff import FusionCalculator, save_model
from tests.conftest import small_model


@pytest.fixture(scope="module")
def calc_model():
    return small_model(fusion=True, n_states=3)


def test_results_hold_every_state(calc_model):
    """energies (S,), state_forces (S,N,3); energy/forces are those of the chosen state."""
    atoms = molecule("CH3OH")
    atoms.calc = FusionCalculator(calc_model, state=2, device="cpu")
    e = atoms.get_potential_energy()
    f = atoms.get_forces()
    r = atoms.calc.results
    assert r["energies"].shape == (3,) and r["state_forces"].shape == (3, len(atoms), 3)
    assert e == r["energies"][2]
    np.testing.assert_array_equal(f, r["state_forces"][2])


def test_switching_state_switches_surface(calc_model):
    """Setting calc.state selects another surface without changing the others."""
    atoms = molecule("CH3OH")
    calc = FusionCalculator(calc_model, state=0, device="cpu")
    atoms.calc = calc
    e0 = atoms.get_potential_energy()
    energies = calc.results["energies"].copy()
    calc.state = 1
    assert atoms.get_potential_energy() == energies[1]
    assert e0 == energies[0]
    with pytest.raises(ValueError, match="state 3 out of range"):
        calc.state = 3


def test_calculator_from_file_matches_object(tmp_path, calc_model):
    """A calculator built from a model file gives the same numbers as from the object."""
    save_model(calc_model, tmp_path / "m.fff")
    a, b = molecule("C2H6"), molecule("C2H6")
    a.calc = FusionCalculator(calc_model, device="cpu")
    b.calc = FusionCalculator(tmp_path / "m.fff", device="cpu")
    np.testing.assert_array_equal(a.get_forces(), b.get_forces())


def test_periodic_cell(calc_model):
    """Periodic systems work and the forces on a perfect diamond lattice vanish by symmetry."""
    atoms = bulk("C", "diamond", a=3.57)
    atoms.calc = FusionCalculator(calc_model, device="cpu")
    atoms.get_potential_energy()
    assert np.max(np.abs(atoms.calc.results["state_forces"])) < 1e-10


def test_unknown_element_names_atom(calc_model):
    """An element outside the model raises ValueError naming the atom index and symbol."""
    atoms = molecule("CH3Cl")
    atoms.calc = FusionCalculator(calc_model, device="cpu")
    idx = atoms.get_chemical_symbols().index("Cl")
    with pytest.raises(ValueError, match=rf"atom {idx} \(Cl, Z=17\)"):
        atoms.get_potential_energy()


def test_non_finite_position_names_atom_and_value(calc_model):
    """A NaN or inf coordinate raises ValueError naming the atom and the value."""
    atoms = molecule("CH4")
    atoms.positions[3, 1] = np.nan
    atoms.calc = FusionCalculator(calc_model, device="cpu")
    with pytest.raises(ValueError, match=r"atom 3 has a non-finite position: y = nan"):
        atoms.get_potential_energy()
    atoms.positions[3, 1] = 0.0
    atoms.positions[1, 2] = np.inf
    with pytest.raises(ValueError, match=r"atom 1 .* z = inf"):
        atoms.get_forces()


def test_wrongly_shaped_positions(calc_model):
    """Positions that are not (N, 3) raise ValueError with the shape."""
    atoms = Atoms("CH", positions=[[0, 0, 0], [1.1, 0, 0]])
    atoms.arrays["positions"] = np.zeros((2, 2))
    calc = FusionCalculator(calc_model, device="cpu")
    with pytest.raises(ValueError, match=r"shape \(2, 2\)"):
        calc.calculate(atoms, ["energy"])


def test_cuda_requested_without_cuda_is_an_error(calc_model):
    """device='cuda' on a machine without CUDA says so instead of silently using the CPU."""
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        FusionCalculator(calc_model, device="cuda")
