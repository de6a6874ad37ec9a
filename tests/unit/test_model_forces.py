"""Forces of every state equal minus the gradient of that state's energy."""

from __future__ import annotations

import numpy as np

from fusionff.potential import Potential
from tests.conftest import random_crystal, random_molecule


def _energies(pot, z, x, cell=None):
    pbc = None if cell is None else np.ones(3, dtype=bool)
    (out,) = pot.evaluate_structures([z], [x], [cell], [pbc])
    return out["energies"], out["forces"]


def _finite_difference_forces(pot, z, x, cell=None, h=1e-5):
    """-dE_s/dx by central differences: (S, N, 3)."""
    n_states = pot.n_states
    fd = np.zeros((n_states, len(z), 3))
    for i in range(len(z)):
        for k in range(3):
            xp, xm = x.copy(), x.copy()
            xp[i, k] += h
            xm[i, k] -= h
            fd[:, i, k] = -(_energies(pot, z, xp, cell)[0] - _energies(pot, z, xm, cell)[0]) / (
                2 * h
            )
    return fd


def test_forces_are_minus_energy_gradient_in_molecule(model):
    """Autograd forces of each state match central finite differences (h = 1e-5 A)."""
    rng = np.random.default_rng(11)
    pot = Potential(model, device="cpu")
    z, x = random_molecule(rng, n=6)
    _, f = _energies(pot, z, x)
    fd = _finite_difference_forces(pot, z, x)
    assert np.max(np.abs(f - fd)) < 1e-6 * max(1.0, np.max(np.abs(f)))


def test_forces_are_minus_energy_gradient_in_periodic_cell(model):
    """Same in a periodic cell, where edges cross the cell boundary."""
    rng = np.random.default_rng(12)
    pot = Potential(model, device="cpu")
    z, x, cell = random_crystal(rng, n=4)
    _, f = _energies(pot, z, x, cell)
    fd = _finite_difference_forces(pot, z, x, cell)
    assert np.max(np.abs(f - fd)) < 1e-6 * max(1.0, np.max(np.abs(f)))


def test_energy_and_forces_smooth_at_cutoff(model):
    """A neighbour crossing r_max changes neither the energy nor the forces abruptly:
    the values just inside and just outside the cutoff agree to O(delta^3)."""
    pot = Potential(model, device="cpu")
    r_max = model.r_max
    z = np.array([6, 8])
    inside = np.array([[0.0, 0.0, 0.0], [r_max - 1e-6, 0.0, 0.0]])
    outside = np.array([[0.0, 0.0, 0.0], [r_max + 1e-6, 0.0, 0.0]])
    e_in, f_in = _energies(pot, z, inside)
    e_out, f_out = _energies(pot, z, outside)
    assert np.max(np.abs(e_in - e_out)) < 1e-9
    assert np.max(np.abs(f_in - f_out)) < 1e-9


def test_batched_evaluation_matches_single_structures(model):
    """Potential.evaluate on B configurations at once equals B separate evaluations."""
    rng = np.random.default_rng(13)
    pot = Potential(model, device="cpu")
    z, x = random_molecule(rng, n=7)
    xs = np.stack([x + 0.1 * rng.normal(size=x.shape) for _ in range(4)])
    out = pot.evaluate(z, xs)
    for b in range(4):
        e, f = _energies(pot, z, xs[b])
        np.testing.assert_allclose(out["energies"][b].numpy(), e, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(out["forces"][b].numpy(), f, rtol=1e-10, atol=1e-12)
