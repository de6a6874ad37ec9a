"""The stilbene dihedral detector on real geometries (trans_stilbene, cis_stilbene), permuted
atom orders and molecules without the motif; the dihedral values themselves; the ortho carbons
of the phenyl rings (DHP detection) on the R2 cis geometry and their smallest distance."""

from __future__ import annotations

from itertools import product
from pathlib import Path

import numpy as np
import pytest
from ase.io import read

from fusionff.analysis.dihedral import (
    angle_sum,
    central_neighbours,
    detect_stilbene_dihedral,
    detect_stilbene_ortho,
    dihedral_degrees,
    guess_bonds,
    read_topology,
    smallest_ortho_distance,
    topology_dihedral,
    topology_ortho,
)
from fusionff.data import stilbene
from fusionff.data.molecules import trans_stilbene
from tests.fixtures.analysis.synthetic_run import write_topology

CIS_R2 = Path(__file__).resolve().parents[2] / "data" / "stilbene" / "r2" / "cis-r2.xyz"


def test_detector_finds_the_central_dihedral_of_trans_stilbene():
    """On trans_stilbene() the detector returns (ipso1, C1, C2, ipso2) = (2, 0, 13, 15): checked
    here from the geometry, not from the builder's documented order."""
    atoms = trans_stilbene()
    symbols, positions = atoms.get_chemical_symbols(), atoms.get_positions()
    found = detect_stilbene_dihedral(symbols, positions)
    ipso_a, c_a, c_b, ipso_b = found
    bonds = {frozenset(b) for b in guess_bonds(symbols, positions)}
    distance = atoms.get_distance
    assert frozenset((c_a, c_b)) in bonds and distance(c_a, c_b) < 1.40  # the double bond
    for c, ipso in ((c_a, ipso_a), (c_b, ipso_b)):
        neighbours = sorted(j for b in bonds if c in b for j in b if j != c)
        assert sorted(symbols[j] for j in neighbours) == ["C", "C", "H"]
        assert frozenset((c, ipso)) in bonds and distance(c, ipso) > 1.42  # single to ring
        ring_carbons = [j for b in bonds if ipso in b for j in b if j not in (ipso, c)]
        assert len(ring_carbons) == 2 and all(symbols[j] == "C" for j in ring_carbons)
    assert found == stilbene.CENTRAL == (2, 0, 13, 15)
    assert abs(dihedral_degrees(positions[list(found)][None])[0]) == pytest.approx(180.0)


def test_detector_works_on_cis_stilbene_and_permuted_atoms():
    """On cis_stilbene() and on a random permutation of its atoms the detector finds the same
    four atoms (relabelled), and the dihedral is the cis one."""
    atoms = stilbene.cis_stilbene()
    symbols, positions = atoms.get_chemical_symbols(), atoms.get_positions()
    assert detect_stilbene_dihedral(symbols, positions) == stilbene.CENTRAL
    order = np.random.default_rng(0).permutation(len(atoms))  # new index i holds old order[i]
    new_of_old = np.argsort(order)
    found = detect_stilbene_dihedral([symbols[i] for i in order], positions[order])
    expected = tuple(int(new_of_old[i]) for i in stilbene.CENTRAL)
    assert found in (expected, expected[::-1])
    angle = dihedral_degrees(positions[order][list(found)][None])[0]
    assert abs(angle) == pytest.approx(abs(stilbene.dihedral(positions)), abs=1e-6)
    assert abs(angle) < 30.0


def test_detector_uses_the_bonds_it_is_given():
    """Given bonds take precedence over distances (here: the ethylenic bond removed)."""
    atoms = trans_stilbene()
    symbols, positions = atoms.get_chemical_symbols(), atoms.get_positions()
    bonds = [b for b in guess_bonds(symbols, positions) if set(b) != {0, 13}]
    with pytest.raises(ValueError, match="found no stilbene-like"):
        detect_stilbene_dihedral(symbols, positions, bonds)


@pytest.mark.parametrize(
    "symbols, positions",
    [
        (  # ethylene: no phenyl groups
            ["C", "C", "H", "H", "H", "H"],
            [
                [0, 0, 0],
                [1.33, 0, 0],
                [-0.56, 0.93, 0],
                [-0.56, -0.93, 0],
                [1.89, 0.93, 0],
                [1.89, -0.93, 0],
            ],
        ),  # fmt: skip
        (["X"], [[0.0, 0.0, 0.0]]),  # Tully's dummy particle: no radius
    ],
)
def test_molecules_without_the_motif_ask_for_explicit_atoms(symbols, positions):
    """Without a stilbene C=C bond the error asks for --dihedral."""
    with pytest.raises(ValueError, match="--dihedral I J K L"):
        detect_stilbene_dihedral(symbols, np.array(positions, dtype=float))


def test_styrene_like_fragment_is_not_stilbene():
    """Half a stilbene (one phenyl: replace the second phenyl by an H) is not detected."""
    atoms = trans_stilbene()
    keep = list(range(15))  # C1, H1, phenyl 1, C2, H2
    symbols = [atoms.get_chemical_symbols()[i] for i in keep] + ["H"]
    c2 = atoms.positions[13]
    towards = atoms.positions[15] - c2
    positions = np.vstack([atoms.positions[keep], c2 + 1.08 * towards / np.linalg.norm(towards)])
    with pytest.raises(ValueError, match="found no"):
        detect_stilbene_dihedral(symbols, positions)


@pytest.mark.parametrize("suffix", ["pdb", "xyz"])
def test_topology_file_detection(tmp_path, suffix):
    """A topology file read by MDAnalysis (PDB or XYZ) gives the same four atoms."""
    atoms = trans_stilbene()
    path = tmp_path / f"topology.{suffix}"
    write_topology(path, atoms.get_chemical_symbols(), atoms.get_positions())
    assert topology_dihedral(read_topology(path)) == stilbene.CENTRAL


def test_dihedral_values_match_the_stilbene_geometry_module():
    """calc_dihedrals through dihedral_degrees agrees with fusionff.data.stilbene.dihedral on
    random quadruples, in (-180, 180]; non-finite positions give NaN."""
    rng = np.random.default_rng(4)
    quads = rng.normal(size=(50, 4, 3)) * 1.5
    ours = dihedral_degrees(quads)
    reference = [stilbene.dihedral(q, (0, 1, 2, 3)) for q in quads]
    np.testing.assert_allclose(ours, reference, atol=1e-3)  # MDAnalysis works in float32
    assert (ours > -180).all() and (ours <= 180).all()
    quads[0, 2] = np.nan
    assert np.isnan(dihedral_degrees(quads[:1])[0])


def test_ortho_carbons_of_the_r2_cis_geometry():
    """On data/stilbene/r2/cis-r2.xyz (central carbons 0 and 13) the ortho carbons are
    (3, 11) on the ring of ipso 2 and (16, 24) on that of ipso 15, checked here from the
    geometry: each is a carbon bonded to its ipso carbon and to one hydrogen, on its ipso's
    six-membered ring; the closest pair across the rings is 3.0-3.5 Angstrom apart (cis, not
    DHP); the reversed dihedral gives the rings in the other order."""
    atoms = read(CIS_R2)
    symbols, positions = atoms.get_chemical_symbols(), atoms.get_positions()
    dihedral = detect_stilbene_dihedral(symbols, positions)
    assert dihedral == (2, 0, 13, 15)
    ortho = detect_stilbene_ortho(symbols, positions, dihedral)
    assert ortho == ((3, 11), (16, 24))
    bonds = {frozenset(b) for b in guess_bonds(symbols, positions)}

    def bonded(i: int) -> list[int]:
        return sorted(j for b in bonds if i in b for j in b if j != i)

    for ipso, ethylenic, pair in ((2, 0, ortho[0]), (15, 13, ortho[1])):
        assert bonded(ipso) == sorted([ethylenic, *pair])
        for o in pair:
            assert symbols[o] == "C"
            assert sorted(symbols[j] for j in bonded(o)) == ["C", "C", "H"]
            assert 1.35 < atoms.get_distance(ipso, o) < 1.45
    ring = {2}
    for _ in range(3):  # the six carbons reached from ipso 2 without crossing C0
        ring |= {j for i in ring for j in bonded(i) if symbols[j] == "C" and j != 0}
    assert len(ring) == 6 and set(ortho[0]) <= ring and not set(ortho[1]) & ring
    closest = min(atoms.get_distance(i, j) for i, j in product(*ortho))
    assert 3.0 < closest < 3.5
    flat = positions[[*ortho[0], *ortho[1]]][None]
    assert smallest_ortho_distance(flat)[0] == pytest.approx(closest)
    assert detect_stilbene_ortho(symbols, positions, dihedral[::-1]) == ortho[::-1]
    assert topology_ortho(read_topology(CIS_R2), dihedral) == ortho


def old_pair(pair: tuple[int, int], order: np.ndarray) -> tuple[int, ...]:
    return tuple(sorted(int(order[i]) for i in pair))


def test_ortho_carbons_follow_permuted_atoms():
    """On a random permutation of the R2 cis geometry the ortho carbons are the same atoms,
    relabelled."""
    atoms = read(CIS_R2)
    symbols, positions = atoms.get_chemical_symbols(), atoms.get_positions()
    order = np.random.default_rng(1).permutation(len(atoms))  # new index i holds old order[i]
    shuffled_symbols, shuffled = [symbols[i] for i in order], positions[order]
    dihedral = detect_stilbene_dihedral(shuffled_symbols, shuffled)
    ortho = detect_stilbene_ortho(shuffled_symbols, shuffled, dihedral)
    old = {old_pair(pair, order) for pair in ortho}
    assert old == {(3, 11), (16, 24)} and all(a < b for a, b in ortho)
    ipso_a = int(order[dihedral[0]])  # the first pair is that of the dihedral's first atom
    assert old_pair(ortho[0], order) == ((3, 11) if ipso_a == 2 else (16, 24))


def test_smallest_ortho_distance_of_every_pair_and_nan():
    """The smallest of the four ring-to-ring distances (never within a ring), per frame; a
    non-finite position gives NaN."""
    rng = np.random.default_rng(3)
    positions = rng.normal(size=(20, 4, 3)) * 2.0
    expected = [
        min(np.linalg.norm(p[i] - p[j]) for i, j in product((0, 1), (2, 3))) for p in positions
    ]
    np.testing.assert_allclose(smallest_ortho_distance(positions), expected)
    within_a_ring = np.array([[[0, 0, 0], [0.1, 0, 0], [5, 0, 0], [9, 0, 0]]], dtype=float)
    assert smallest_ortho_distance(within_a_ring)[0] == pytest.approx(4.9)
    positions[0, 3] = np.nan
    assert np.isnan(smallest_ortho_distance(positions[:1])[0])


@pytest.mark.parametrize(
    "dihedral, message",
    [
        ((1, 0, 13, 15), "ipso atom 1 \\(H\\) has the neighbours none besides atom 0"),
        ((3, 0, 13, 15), "ipso atom 3 \\(C\\) is not bonded to atom 0"),
        ((2, 0, 0, 2), "the two rings share ortho carbons"),
        ((2, 0, 13, 99), "outside the 26 atoms"),
    ],
)
def test_ortho_detection_refuses_atoms_that_are_not_a_stilbene(dihedral, message):
    """A dihedral whose ipso atoms are not phenyl carbons bonded to the ethylenic ones is a
    ValueError that names the atom."""
    atoms = read(CIS_R2)
    with pytest.raises(ValueError, match=message):
        detect_stilbene_ortho(atoms.get_chemical_symbols(), atoms.get_positions(), dihedral)


def test_ortho_detection_needs_a_six_membered_carbon_ring():
    """With the para carbon of one ring turned into nitrogen (a pyridyl, not a phenyl) the ipso
    atom of that ring is refused."""
    atoms = read(CIS_R2)
    symbols, positions = atoms.get_chemical_symbols(), atoms.get_positions()
    symbols[7] = "N"  # para carbon of the ring of ipso 2
    with pytest.raises(ValueError, match="ipso atom 2 \\(C\\) is not on a six-membered carbon"):
        detect_stilbene_ortho(symbols, positions, (2, 0, 13, 15))


def test_angle_sum_is_360_when_planar_and_three_tetrahedral_angles_when_tetrahedral():
    """angle_sum: 360 degrees for an sp2 centre (three neighbours in a plane, unequal bond
    lengths and angles), 3 x 109.4712... (arccos(-1/3)) for a tetrahedral one, to 1e-9, with
    the centre and neighbours anywhere in the atom list and frames stacked in front."""
    tetrahedral = 3.0 * np.degrees(np.arccos(-1.0 / 3.0))
    assert tetrahedral == pytest.approx(3 * 109.47, abs=1e-2)
    planar = np.zeros((5, 3))
    planar[[0, 2, 4]] = [[1.1, 0.0, 0.0], [-0.7, 1.2, 0.0], [-0.4, -1.5, 0.0]]
    planar[3] = [7.0, 7.0, 7.0]  # not a neighbour
    tetra = np.zeros((5, 3))
    tetra[[0, 2, 4]] = np.array([[1.0, 1.0, 1.0], [1.0, -1.0, -1.0], [-1.0, 1.0, -1.0]])
    tetra[[0, 2, 4]] *= np.array([[1.09], [1.5], [0.8]])  # bond lengths do not matter
    shift = np.array([3.0, -2.0, 0.5])
    sums = angle_sum(np.stack([planar, tetra]) + shift, 1, (0, 2, 4))
    assert sums.shape == (2,)
    assert sums[0] == pytest.approx(360.0, abs=1e-9)
    assert sums[1] == pytest.approx(tetrahedral, abs=1e-9)
    assert np.isnan(angle_sum(np.where(np.arange(5)[:, None] == 2, np.nan, planar), 1, (0, 2, 4)))


def test_central_neighbours_of_stilbene_and_agreement_with_the_stilbene_module():
    """The atoms bonded to the central carbons 0 and 13 of trans_stilbene() are (C2, H1, ipso1)
    and (C1, H2, ipso2); with them angle_sum equals fusionff.data.stilbene.pyramidalisation on
    a pyramidalised geometry; a central carbon without its hydrogen is refused, naming it."""
    atoms = trans_stilbene()
    symbols, positions = atoms.get_chemical_symbols(), atoms.get_positions()
    found = central_neighbours(symbols, positions, (2, 0, 13, 15))
    assert found == ((1, 2, 13), (0, 14, 15))
    bent = stilbene.pyramidalise(positions, 13, 330.0)
    for centre, neighbours in zip((0, 13), found, strict=True):
        expected = stilbene.pyramidalisation(bent, centre)
        assert angle_sum(bent, centre, neighbours) == pytest.approx(expected, abs=1e-9)
    assert stilbene.pyramidalisation(bent, 13) == pytest.approx(330.0, abs=1e-2)
    positions[14] += 10.0  # H2 away: C2 keeps two neighbours
    with pytest.raises(ValueError, match=r"central atom 13 \(C\) has 2 bonded neighbour"):
        central_neighbours(symbols, positions, (2, 0, 13, 15))
