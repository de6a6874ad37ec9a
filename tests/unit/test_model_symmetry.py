"""Exact symmetries of MultiStateMACE (plain and fusion) in float64.

Energies of every state must be invariant, and forces of every state equivariant, under
rotations and reflections (O(3)), translations and permutations of like atoms, in isolated
molecules and in periodic cells, to a relative error below 1e-10.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from fusionff.potential import Potential
from tests.conftest import random_crystal, random_molecule, relative_error

TOL = 1e-10


def _orthogonal(rng: np.random.Generator, reflect: bool) -> np.ndarray:
    q = Rotation.random(random_state=rng.integers(1 << 31)).as_matrix()
    return -q if reflect else q  # -R: a rotation composed with inversion (det = -1)


def _eval(pot: Potential, numbers, positions, cell=None):
    pbc = None if cell is None else np.ones(3, dtype=bool)
    (out,) = pot.evaluate_structures([numbers], [positions], [cell], [pbc])
    return out["energies"], out["forces"]


@pytest.mark.parametrize("reflect", [False, True], ids=["rotation", "reflection"])
def test_molecule_energy_invariant_forces_equivariant_under_o3(model, reflect):
    """E_s(Q x) = E_s(x) and F_s(Q x) = Q F_s(x) for every state s, Q in O(3)."""
    rng = np.random.default_rng(1)
    pot = Potential(model, device="cpu")
    z, x = random_molecule(rng)
    e, f = _eval(pot, z, x)
    for _ in range(3):
        q = _orthogonal(rng, reflect)
        e2, f2 = _eval(pot, z, x @ q.T)
        assert relative_error(e2, e) < TOL
        assert relative_error(f2, f @ q.T) < TOL


def test_molecule_invariant_under_translation(model):
    """Energies and forces do not change when the whole molecule is translated."""
    rng = np.random.default_rng(2)
    pot = Potential(model, device="cpu")
    z, x = random_molecule(rng)
    e, f = _eval(pot, z, x)
    e2, f2 = _eval(pot, z, x + np.array([3.7, -12.1, 0.4]))
    assert relative_error(e2, e) < TOL and relative_error(f2, f) < TOL


def test_molecule_invariant_under_permutation_of_like_atoms(model):
    """Relabelling atoms permutes the forces and leaves the energies unchanged."""
    rng = np.random.default_rng(3)
    pot = Potential(model, device="cpu")
    z, x = random_molecule(rng, n=10)
    e, f = _eval(pot, z, x)
    perm = rng.permutation(len(z))  # any permutation maps like atoms onto like atoms
    e2, f2 = _eval(pot, z[perm], x[perm])
    assert relative_error(e2, e) < TOL
    assert relative_error(f2, f[:, perm]) < TOL


@pytest.mark.parametrize("reflect", [False, True], ids=["rotation", "reflection"])
def test_periodic_energy_invariant_forces_equivariant_under_o3(model, reflect):
    """Rotating (or reflecting) positions and cell together leaves energies invariant and
    rotates the forces, in a triclinic periodic cell."""
    rng = np.random.default_rng(4)
    pot = Potential(model, device="cpu")
    z, x, cell = random_crystal(rng)
    e, f = _eval(pot, z, x, cell)
    q = _orthogonal(rng, reflect)
    e2, f2 = _eval(pot, z, x @ q.T, cell @ q.T)
    assert relative_error(e2, e) < TOL
    assert relative_error(f2, f @ q.T) < TOL


def test_periodic_invariant_under_translation_and_wrapping(model):
    """Translating all atoms, then wrapping them back into the cell, changes nothing."""
    rng = np.random.default_rng(5)
    pot = Potential(model, device="cpu")
    z, x, cell = random_crystal(rng)
    e, f = _eval(pot, z, x, cell)
    frac = np.linalg.solve(cell.T, (x + np.array([1.3, -0.7, 2.9])).T).T % 1.0
    e2, f2 = _eval(pot, z, frac @ cell, cell)
    assert relative_error(e2, e) < TOL and relative_error(f2, f) < TOL


def test_periodic_invariant_under_permutation(model):
    """Permuting the atoms of a periodic cell permutes forces and keeps energies."""
    rng = np.random.default_rng(6)
    pot = Potential(model, device="cpu")
    z, x, cell = random_crystal(rng, n=6)
    e, f = _eval(pot, z, x, cell)
    perm = rng.permutation(len(z))
    e2, f2 = _eval(pot, z[perm], x[perm], cell)
    assert relative_error(e2, e) < TOL and relative_error(f2, f[:, perm]) < TOL


def test_supercell_energy_is_extensive(model):
    """A 2x1x1 supercell has twice the energy of every state, and the same forces."""
    rng = np.random.default_rng(7)
    pot = Potential(model, device="cpu")
    z, x, cell = random_crystal(rng)
    e, f = _eval(pot, z, x, cell)
    z2 = np.concatenate([z, z])
    x2 = np.concatenate([x, x + cell[0]])
    cell2 = cell * np.array([[2.0], [1.0], [1.0]])
    e2, f2 = _eval(pot, z2, x2, cell2)
    assert relative_error(e2, 2 * e) < TOL
    assert relative_error(f2[:, : len(z)], f) < TOL
