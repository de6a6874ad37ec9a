"""Stilbene geometry tools: central dihedral, torsion setting, pyramidalisation, cis builder."""

from __future__ import annotations

import numpy as np
import pytest

from fusionff.data import stilbene as sb
from fusionff.data.molecules import trans_stilbene


def bond_lengths(positions: np.ndarray) -> np.ndarray:
    """Distances of the pairs bonded in the ideal trans geometry (1.25 x covalent radii)."""
    from ase.data import covalent_radii

    reference = trans_stilbene()
    radii = covalent_radii[reference.numbers]
    ref = np.linalg.norm(reference.positions[:, None] - reference.positions[None], axis=-1)
    i, j = np.nonzero(np.triu(ref < 1.25 * (radii[:, None] + radii[None]), k=1))
    return np.linalg.norm(positions[i] - positions[j], axis=-1)


def test_atom_order_matches_trans_stilbene():
    """The index constants name the right atoms: C1/C2 are carbons bonded (1.34 A) to each
    other, H1/H2 hydrogens 1.08 A from them, the ipso carbons 1.47 A from them, 12 H in all."""
    atoms = trans_stilbene()
    symbols = atoms.get_chemical_symbols()
    assert len(atoms) == sb.N_ATOMS and symbols.count("H") == 12
    p = atoms.positions
    for c, h, ipso in ((sb.C1, sb.H1, sb.IPSO1), (sb.C2, sb.H2, sb.IPSO2)):
        assert (symbols[c], symbols[h], symbols[ipso]) == ("C", "H", "C")
        assert np.linalg.norm(p[h] - p[c]) == pytest.approx(1.08)
        assert np.linalg.norm(p[ipso] - p[c]) == pytest.approx(1.47)
    assert np.linalg.norm(p[sb.C1] - p[sb.C2]) == pytest.approx(1.34)
    assert [symbols[i] for i in sb.PHENYL1].count("C") == 6


def test_dihedral_of_ideal_trans_is_180():
    """The central C(ipso)-C=C-C(ipso) dihedral of the planar trans geometry is 180 degrees."""
    assert abs(sb.dihedral(trans_stilbene().positions)) == pytest.approx(180.0, abs=1e-8)


def test_dihedral_sign_follows_the_right_hand_rule():
    """Rotating the last atom by +t about the b->c axis changes the dihedral by +t."""
    p = trans_stilbene().positions
    axis = p[sb.C2] - p[sb.C1]
    rotated = sb.rotate(p, (sb.IPSO2,), p[sb.C2], axis, -30.0)  # 180 - 30 = 150
    assert sb.dihedral(rotated) == pytest.approx(150.0)


@pytest.mark.parametrize("target", [0.0, 7.0, -30.0, 90.0, 120.0, -150.0, 180.0])
def test_set_torsion_gives_the_requested_dihedral_and_keeps_bond_lengths(target):
    """set_torsion reaches the requested dihedral and leaves every bond length unchanged."""
    p = trans_stilbene().positions
    q = sb.set_torsion(p, target)
    assert np.cos(np.radians(sb.dihedral(q) - target)) == pytest.approx(1.0, abs=1e-10)
    np.testing.assert_allclose(bond_lengths(q), bond_lengths(p), atol=1e-10)


def test_set_torsion_does_not_modify_its_input():
    """The geometry functions are pure: the input array is left as it was."""
    p = trans_stilbene().positions
    copy = p.copy()
    sb.set_torsion(p, 90.0)
    sb.pyramidalise(p, sb.C1, 330.0)
    np.testing.assert_array_equal(p, copy)


def test_planar_carbon_has_angle_sum_360():
    """Both ethylenic carbons of the planar trans geometry have bond angles summing to 360."""
    p = trans_stilbene().positions
    assert sb.pyramidalisation(p, sb.C1) == pytest.approx(360.0)
    assert sb.pyramidalisation(p, sb.C2) == pytest.approx(360.0)


def test_bending_substituents_decreases_the_angle_sum_and_keeps_bonds():
    """Tilting H and phenyl out of plane lowers the angle sum monotonically with the tilt,
    keeps bond lengths, and leaves the other carbon planar."""
    p = sb.set_torsion(trans_stilbene().positions, 90.0)
    sums = [sb.pyramidalisation(sb.bend_substituents(p, sb.C1, t), sb.C1) for t in (0, 10, 20, 30)]
    assert sums[0] == pytest.approx(360.0)
    assert np.all(np.diff(sums) < 0)
    bent = sb.bend_substituents(p, sb.C1, 25.0)
    np.testing.assert_allclose(bond_lengths(bent), bond_lengths(p), atol=1e-10)
    assert sb.pyramidalisation(bent, sb.C2) == pytest.approx(sb.pyramidalisation(p, sb.C2))


@pytest.mark.parametrize("carbon", [sb.C1, sb.C2])
@pytest.mark.parametrize("target", [350.0, 320.0, 300.0])
def test_pyramidalise_reaches_the_requested_angle_sum(carbon, target):
    """pyramidalise brings the chosen carbon's angle sum to the target (to 1e-3 degrees)."""
    p = trans_stilbene().positions
    q = sb.pyramidalise(p, carbon, target)
    assert sb.pyramidalisation(q, carbon) == pytest.approx(target, abs=1e-3)


def test_set_torsion_after_pyramidalise_keeps_the_angle_sum():
    """Twisting a pyramidalised geometry keeps the pyramidalisation of both carbons."""
    p = sb.pyramidalise(trans_stilbene().positions, sb.C2, 315.0)
    q = sb.set_torsion(p, -30.0)
    assert sb.pyramidalisation(q, sb.C2) == pytest.approx(315.0, abs=1e-3)
    assert sb.dihedral(q) == pytest.approx(-30.0)


def test_pyramidalise_rejects_an_angle_sum_above_the_current_one():
    """Asking for a flatter carbon than the current one is an error, not a silent no-op."""
    p = sb.pyramidalise(trans_stilbene().positions, sb.C1, 330.0)
    with pytest.raises(ValueError, match="above the current"):
        sb.pyramidalise(p, sb.C1, 350.0)


def test_cis_builder_has_no_clashes():
    """The cis starting geometry has its central dihedral as asked and no two non-bonded
    atoms closer than 1.0 A (bonded C-H pairs excluded), unlike cis without phenyl twist."""
    cis = sb.cis_stilbene()
    assert sb.dihedral(cis.positions) == pytest.approx(7.0)
    assert sb.closest_nonbonded(cis.positions, cis.numbers) > 1.0
    flat = sb.cis_stilbene(phenyl_twist=0.0)
    assert sb.closest_nonbonded(flat.positions, flat.numbers) < 1.0


def test_hydrogen_bridge_distance_is_the_shorter_h_to_other_carbon_distance():
    """On cis stilbene both central hydrogens are about 2.1 A from the other central carbon;
    moving H2 to 1.2 A from C1 makes that the distance, whichever hydrogen moved."""
    p = sb.cis_stilbene().positions
    d = sb.hydrogen_bridge_distance(p)
    assert 1.9 < d < 2.3
    assert d == pytest.approx(
        min(np.linalg.norm(p[sb.H1] - p[sb.C2]), np.linalg.norm(p[sb.H2] - p[sb.C1]))
    )
    q = p.copy()
    q[sb.H2] = p[sb.C1] + 1.2 * (p[sb.C2] - p[sb.C1]) / np.linalg.norm(p[sb.C2] - p[sb.C1])
    assert sb.hydrogen_bridge_distance(q) == pytest.approx(1.2)


def test_wrong_shape_is_rejected():
    """A geometry that is not 26 atoms is refused with the expected shape in the message."""
    with pytest.raises(ValueError, match="26"):
        sb.set_torsion(np.zeros((25, 3)), 90.0)
