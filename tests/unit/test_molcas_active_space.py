"""The OpenMolcas backend's pure parts, without OpenMolcas: the pi weight behind the
active-space guard, the coupling sign convention, and the job input."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import molecule

from fusionff.labeling.molcas import _fix_sign, job_input, pi_axis, pi_weight


def _ethylene_basis() -> np.ndarray:
    """BASIS_FUNCTION_IDS of a minimal basis on ethylene: C (1s, 2s, 2p x/y/z), H (1s)."""
    ids = []
    for centre in (1, 2):
        ids += [[centre, 1, 0, 0], [centre, 2, 0, 0]]
        ids += [[centre, 1, 1, m] for m in (1, -1, 0)]  # px, py, pz
    ids += [[centre, 1, 0, 0] for centre in (3, 4, 5, 6)]
    return np.array(ids)


def test_pi_axis_is_the_normal_of_the_molecular_plane():
    """Planar ethylene (in ASE's build, the yz plane): each carbon's pi axis is +-x."""
    atoms = molecule("C2H4")
    for carbon in (0, 1):
        axis = pi_axis(atoms.positions, carbon)
        assert abs(abs(axis[0]) - 1.0) < 1e-12


def test_pi_weight_is_one_for_a_pure_pi_orbital_and_zero_for_sigma_and_hydrogen():
    """An orbital of the carbons' p functions along the plane normal scores 1, one along the
    C=C bond (sigma) or on the hydrogens scores 0, and a half-and-half mixture 1/2."""
    atoms, ids = molecule("C2H4"), _ethylene_basis()
    normal = pi_axis(atoms.positions, 0)
    bond = atoms.positions[1] - atoms.positions[0]
    bond /= np.linalg.norm(bond)

    def p_orbital(direction: np.ndarray) -> np.ndarray:
        c = np.zeros(len(ids))
        for centre in (0, 1):
            c[5 * centre + 2 : 5 * centre + 5] = direction  # m = 1, -1, 0 -> x, y, z
        return c

    pi, sigma = p_orbital(normal), p_orbital(bond)
    hydrogen = np.zeros(len(ids))
    hydrogen[10:] = 1.0
    assert pi_weight(pi, ids, atoms.positions, (0, 1)) == pytest.approx(1.0, abs=1e-12)
    assert pi_weight(sigma, ids, atoms.positions, (0, 1)) == pytest.approx(0.0, abs=1e-12)
    assert pi_weight(hydrogen, ids, atoms.positions, (0, 1)) == 0.0
    assert pi_weight(pi + hydrogen * np.sqrt(0.5), ids, atoms.positions, (0, 1)) == (
        pytest.approx(0.5, abs=1e-12)
    )


def test_coupling_sign_convention_makes_the_largest_component_positive():
    """The stored sign of a coupling vector does not depend on the phase the program chose."""
    d = np.array([[0.1, -0.7, 0.2], [0.3, 0.0, -0.1]])
    assert np.array_equal(_fix_sign(d), _fix_sign(-d))
    assert _fix_sign(d).reshape(-1)[np.argmax(np.abs(d))] > 0


def test_job_input_asks_for_every_gradient_and_coupling():
    """SA-3: three ALASKA gradient roots and the couplings of the three pairs, with the
    followed orbitals and the convergence thresholds; an SCF only without orbitals."""
    text = job_input("g.xyz", "STO-3G", 3, 7, couplings=True, orbitals="start.orb")
    assert "CIRoot = 3 3 1" in text and "FileOrb = start.orb" in text and "Thrs" in text
    assert [f"Root = {k}" in text for k in (1, 2, 3)] == [True] * 3
    assert [f"NAC = {i} {j}" in text for i, j in ((1, 2), (1, 3), (2, 3))] == [True] * 3
    assert "&SCF" not in text
    assert "&SCF" in job_input("g.xyz", "STO-3G", 2, 7, couplings=False)
    assert "NAC" not in job_input("g.xyz", "STO-3G", 2, 7, couplings=False)
