"""The stilbene dihedral detector on real geometries (trans_stilbene, cis_stilbene), permuted
atom orders and molecules without the motif; the dihedral values themselves."""

from __future__ import annotations

import numpy as np
import pytest

from fusionff.analysis.dihedral import (
    detect_stilbene_dihedral,
    dihedral_degrees,
    guess_bonds,
    read_topology,
    topology_dihedral,
)
from fusionff.data import stilbene
from fusionff.data.molecules import trans_stilbene
from tests.fixtures.analysis.synthetic_run import write_topology


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
