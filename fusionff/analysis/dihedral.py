"""The central dihedral of a trajectory (MDAnalysis) and its automatic detection for stilbene.

The series is computed with :func:`MDAnalysis.lib.distances.calc_dihedrals` on the frames of
an H5MD trajectory (the four atoms read in one slice; MDAnalysis' own H5MD reader gives the
same numbers, :func:`universe_dihedral_series`, but copies every observable on every frame,
milliseconds per frame). For stilbene the four atoms can be found from the
topology alone (:func:`detect_stilbene_dihedral`): the C=C bond whose two carbons each carry
exactly one hydrogen and one phenyl ipso carbon (a carbon bonded to three carbons in a
six-membered carbon ring). Bonds come from the topology when it has them, otherwise from
distances (covalent radii, :data:`BOND_TOLERANCE`). Angles are degrees in (-180, 180].

The same bonds give the ortho carbons of the two phenyl rings (:func:`detect_stilbene_ortho`),
whose smallest ring-to-ring distance (:func:`ortho_distance_series`, Angstrom) tells the
photocyclisation product 4a,4b-dihydrophenanthrene (DHP), where one pair is bonded, from
cis-stilbene (see :mod:`fusionff.analysis.products`).

The pyramidalisation of the two central atoms b and c of a dihedral (a, b, c, d) is the sum of
the three bond angles at each between its three bonded neighbours (:func:`angle_sum`, degrees:
360 planar sp2, 3 x 109.47 tetrahedral); the neighbours come from the same bonds
(:func:`central_neighbours`), and a central atom without exactly three is not measured.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

COVALENT_RADII = {
    "H": 0.31, "B": 0.84, "C": 0.76, "N": 0.71, "O": 0.66, "F": 0.57,
    "Si": 1.11, "P": 1.07, "S": 1.05, "Cl": 1.02, "Br": 1.20, "I": 1.39,
}  # fmt: skip
"""Angstrom (Cordero et al. 2008)."""
BOND_TOLERANCE = 1.2
"""Atoms are bonded when closer than this factor times the sum of their covalent radii."""
Dihedral = tuple[int, int, int, int]
Ortho = tuple[tuple[int, int], tuple[int, int]]
"""The two ortho carbons of each phenyl ring: (those of ipso_a, those of ipso_b)."""
CentralNeighbours = tuple[tuple[int, int, int], tuple[int, int, int]]
"""The three atoms bonded to each central atom of a dihedral (a, b, c, d): (those of b, those
of c), each in increasing order."""


def guess_bonds(elements: Sequence[str], positions: np.ndarray) -> list[tuple[int, int]]:
    """Bonds (i < j) from distances. elements: (N,) symbols; positions: (N, 3) Angstrom."""
    positions = np.asarray(positions, dtype=np.float64)
    unknown = sorted({e for e in elements if e not in COVALENT_RADII})
    if unknown:
        raise ValueError(f"no covalent radius for element(s) {', '.join(map(repr, unknown))}")
    radii = np.array([COVALENT_RADII[e] for e in elements])
    distance = np.linalg.norm(positions[:, None] - positions[None], axis=-1)
    bonded = distance < BOND_TOLERANCE * (radii[:, None] + radii[None])
    i, j = np.nonzero(np.triu(bonded, k=1))
    return list(zip(i.tolist(), j.tolist(), strict=True))


def _neighbours(n_atoms: int, bonds: Sequence[tuple[int, int]]) -> list[set[int]]:
    neighbours: list[set[int]] = [set() for _ in range(n_atoms)]
    for i, j in bonds:
        neighbours[i].add(j)
        neighbours[j].add(i)
    return neighbours


def _in_carbon_ring(start: int, size: int, neighbours: list[set[int]], carbon: set[int]) -> bool:
    """Whether ``start`` lies on a ring of ``size`` carbons."""

    def walk(atom: int, path: list[int]) -> bool:
        for nxt in neighbours[atom] & carbon:
            if nxt == start and len(path) == size:
                return True
            if nxt not in path and len(path) < size and walk(nxt, path + [nxt]):
                return True
        return False

    return walk(start, [start])


def detect_stilbene_dihedral(
    elements: Sequence[str],
    positions: np.ndarray,
    bonds: Sequence[tuple[int, int]] | None = None,
) -> Dihedral:
    """The central dihedral (ipso_a, C_a, C_b, ipso_b) of a stilbene, C_a < C_b.

    elements: (N,) symbols; positions: (N, 3) Angstrom (used when ``bonds`` is None).
    Raises ValueError when there is not exactly one such C=C bond.
    """
    elements = [str(e).capitalize() for e in elements]
    hint = "give the four atoms of the dihedral with --dihedral I J K L (or --no-dihedral)"
    if bonds is None:
        try:
            bonds = guess_bonds(elements, positions)
        except ValueError as err:
            raise ValueError(f"cannot find stilbene's dihedral: {err}; {hint}") from None
    neighbours = _neighbours(len(elements), bonds)
    carbon = {i for i, e in enumerate(elements) if e == "C"}

    def ipso_of(c: int, partner: int) -> int | None:
        others = neighbours[c] - {partner}
        hydrogens = [i for i in others if elements[i] == "H"]
        carbons = [i for i in others if i in carbon]
        if len(neighbours[c]) != 3 or len(hydrogens) != 1 or len(carbons) != 1:
            return None
        ipso = carbons[0]
        if neighbours[ipso] - carbon or len(neighbours[ipso]) != 3:
            return None
        return ipso if _in_carbon_ring(ipso, 6, neighbours, carbon - {c}) else None

    found = []
    for i, j in sorted((min(b), max(b)) for b in bonds):
        if i in carbon and j in carbon:
            ipso_i, ipso_j = ipso_of(i, j), ipso_of(j, i)
            if ipso_i is not None and ipso_j is not None:
                found.append((ipso_i, i, j, ipso_j))
    if len(found) != 1:
        what = "no" if not found else f"{len(found)} candidate"
        raise ValueError(
            f"found {what} stilbene-like C=C bond(s) (each carbon bearing one H and one phenyl) "
            f"in the topology; {hint}"
        )
    return found[0]


def detect_stilbene_ortho(
    elements: Sequence[str],
    positions: np.ndarray,
    dihedral: Dihedral,
    bonds: Sequence[tuple[int, int]] | None = None,
) -> Ortho:
    """The ortho carbons of a stilbene: for ``dihedral`` (ipso_a, C_a, C_b, ipso_b), the two
    ring carbons bonded to ipso_a other than C_a, then those of ipso_b, each pair in
    increasing order.

    elements: (N,) symbols; positions: (N, 3) Angstrom (used when ``bonds`` is None).
    Raises ValueError when an ipso atom is not a carbon bonded to its ethylenic carbon and to
    exactly two other carbons of a six-membered carbon ring, or when the rings share an atom.
    """
    elements = [str(e).capitalize() for e in elements]
    if bonds is None:
        bonds = guess_bonds(elements, positions)
    if not all(0 <= int(i) < len(elements) for i in dihedral):
        raise ValueError(f"dihedral atoms {tuple(dihedral)} outside the {len(elements)} atoms")
    neighbours = _neighbours(len(elements), bonds)
    carbon = {i for i, e in enumerate(elements) if e == "C"}

    def ortho_of(ipso: int, ethylenic: int) -> tuple[int, int]:
        where = f"ipso atom {ipso} ({elements[ipso]})"
        if ethylenic not in neighbours[ipso]:
            raise ValueError(f"{where} is not bonded to atom {ethylenic} of the dihedral")
        others = sorted(neighbours[ipso] - {ethylenic})
        if ipso not in carbon or len(others) != 2 or not set(others) <= carbon:
            found = ", ".join(f"{i} ({elements[i]})" for i in others) or "none"
            raise ValueError(
                f"{where} has the neighbours {found} besides atom {ethylenic}; a phenyl's "
                "ipso carbon has two ring carbons"
            )
        if not _in_carbon_ring(ipso, 6, neighbours, carbon - {ethylenic}):
            raise ValueError(f"{where} is not on a six-membered carbon ring")
        return others[0], others[1]

    ipso_a, c_a, c_b, ipso_b = (int(i) for i in dihedral)
    ortho = (ortho_of(ipso_a, c_a), ortho_of(ipso_b, c_b))
    if set(ortho[0]) & set(ortho[1]):
        raise ValueError(f"the two rings share ortho carbons {ortho[0]} and {ortho[1]}")
    return ortho


def central_neighbours(
    elements: Sequence[str],
    positions: np.ndarray,
    dihedral: Dihedral,
    bonds: Sequence[tuple[int, int]] | None = None,
) -> CentralNeighbours:
    """The atoms bonded to each central atom (b, c) of ``dihedral`` (a, b, c, d).

    elements: (N,) symbols; positions: (N, 3) Angstrom (used when ``bonds`` is None).
    Raises ValueError when b or c does not have exactly three bonded neighbours: its angle
    sum would be a guess.
    """
    elements = [str(e).capitalize() for e in elements]
    if not all(0 <= int(i) < len(elements) for i in dihedral):
        raise ValueError(f"dihedral atoms {tuple(dihedral)} outside the {len(elements)} atoms")
    if bonds is None:
        bonds = guess_bonds(elements, positions)
    neighbours = _neighbours(len(elements), bonds)
    found = []
    for centre in (int(dihedral[1]), int(dihedral[2])):
        bonded = sorted(neighbours[centre])
        if len(bonded) != 3:
            listed = ", ".join(f"{i} ({elements[i]})" for i in bonded) or "none"
            raise ValueError(
                f"central atom {centre} ({elements[centre]}) has {len(bonded)} bonded "
                f"neighbour(s) in the topology ({listed}), not 3"
            )
        found.append(tuple(bonded))
    return found[0], found[1]


def read_topology(path: str | Path):
    """The molecule of a topology file as an MDAnalysis Universe."""
    import MDAnalysis as mda

    return mda.Universe(str(path))


def _topology_molecule(universe) -> tuple[list[str], np.ndarray, list[tuple[int, int]] | None]:
    """Element symbols, positions (N, 3) Angstrom and bonds (None when the topology has none)."""
    try:
        bonds = [tuple(int(i) for i in b) for b in universe.bonds.indices]
    except AttributeError:  # topology without bond information
        bonds = []
    try:
        elements = list(universe.atoms.elements)
    except AttributeError:
        raise ValueError("the topology has no element symbols") from None
    return elements, universe.atoms.positions, bonds or None


def topology_dihedral(universe) -> Dihedral:
    """:func:`detect_stilbene_dihedral` on a Universe (its bonds when it has any)."""
    try:
        molecule = _topology_molecule(universe)
    except ValueError as err:
        raise ValueError(f"{err}; give --dihedral I J K L (or --no-dihedral)") from None
    return detect_stilbene_dihedral(*molecule)


def topology_ortho(universe, dihedral: Dihedral) -> Ortho:
    """:func:`detect_stilbene_ortho` on a Universe (its bonds when it has any)."""
    elements, positions, bonds = _topology_molecule(universe)
    return detect_stilbene_ortho(elements, positions, dihedral, bonds)


def topology_central_neighbours(universe, dihedral: Dihedral) -> CentralNeighbours:
    """:func:`central_neighbours` on a Universe (its bonds when it has any)."""
    elements, positions, bonds = _topology_molecule(universe)
    return central_neighbours(elements, positions, dihedral, bonds)


def dihedral_degrees(positions: np.ndarray) -> np.ndarray:
    """Dihedral angles of (n, 4, 3) positions (Angstrom) with MDAnalysis' ``calc_dihedrals``:
    (n,) degrees in (-180, 180], NaN where positions are not finite."""
    from MDAnalysis.lib.distances import calc_dihedrals

    p = np.asarray(positions, dtype=np.float64).reshape(-1, 4, 3)
    with np.errstate(invalid="ignore"):
        angle = np.degrees(calc_dihedrals(p[:, 0], p[:, 1], p[:, 2], p[:, 3]))
    angle = np.atleast_1d(angle)
    angle[angle <= -180.0] += 360.0
    return angle


def dihedral_series(trajectory: str | Path, indices: Dihedral) -> tuple[np.ndarray, np.ndarray]:
    """Dihedral ``indices`` over the frames of an H5MD trajectory: time (n,) fs and angle (n,)
    degrees. The four atoms are sliced from the file in one read
    (:func:`fusionff.analysis.run.read_positions`); :func:`universe_dihedral_series` gives the
    same numbers through an MDAnalysis Universe, frame by frame."""
    from fusionff.analysis.run import read_positions

    time, positions = read_positions(trajectory, list(indices))
    return time, dihedral_degrees(positions)


def smallest_ortho_distance(positions: np.ndarray) -> np.ndarray:
    """The smallest of the four distances between an ortho carbon of one ring and one of the
    other: positions (n, 4, 3) Angstrom of (a1, a2, b1, b2), an :data:`Ortho` flattened;
    returns (n,) Angstrom, NaN where positions are not finite."""
    p = np.asarray(positions, dtype=np.float64).reshape(-1, 4, 3)
    distance = np.linalg.norm(p[:, :2, None] - p[:, None, 2:], axis=-1)  # (n, 2, 2)
    return distance.reshape(len(p), 4).min(axis=1)


def ortho_distance_series(trajectory: str | Path, ortho: Ortho) -> tuple[np.ndarray, np.ndarray]:
    """The smallest ortho-ortho distance over the frames of an H5MD trajectory: time (n,) fs
    and distance (n,) Angstrom; the four atoms are sliced from the file in one read, as in
    :func:`dihedral_series`."""
    from fusionff.analysis.run import read_positions

    time, positions = read_positions(trajectory, [*ortho[0], *ortho[1]])
    return time, smallest_ortho_distance(positions)


def angle_sum(positions: np.ndarray, centre: int, neighbours: Sequence[int]) -> np.ndarray:
    """The pyramidalisation of atom ``centre``: the sum of the three bond angles between its
    three ``neighbours`` (atom indices), 360 degrees when planar (sp2), 3 x 109.47 when
    tetrahedral. positions: (..., N, 3) Angstrom; returns (...) degrees, NaN where positions
    are not finite."""
    if len(neighbours) != 3:
        raise ValueError(f"an angle sum needs three neighbours, got {len(neighbours)}")
    p = np.asarray(positions, dtype=np.float64)
    bond = p[..., list(neighbours), :] - p[..., [centre], :]  # (..., 3, 3)
    u, v = bond[..., [0, 0, 1], :], bond[..., [1, 2, 2], :]
    sine = np.linalg.norm(np.cross(u, v), axis=-1)
    return np.degrees(np.arctan2(sine, np.sum(u * v, axis=-1))).sum(axis=-1)


def central_angle_sums(
    trajectory: str | Path,
    dihedral: Dihedral,
    neighbours: CentralNeighbours,
    frames: Sequence[int],
) -> np.ndarray:
    """The angle sums at the central atoms b and c of ``dihedral`` (a, b, c, d) in ``frames``
    (indices into the position frames) of an H5MD trajectory: (len(frames), 2) degrees, b
    then c. Only those frames of the eight atoms are read."""
    from fusionff.analysis.run import read_positions

    if not len(frames):
        return np.empty((0, 2))
    atoms = [int(dihedral[1]), *neighbours[0], int(dihedral[2]), *neighbours[1]]
    _, positions = read_positions(trajectory, atoms, frames)
    return np.stack([angle_sum(positions, 0, (1, 2, 3)), angle_sum(positions, 4, (5, 6, 7))], -1)


def universe_dihedral_series(
    topology: str | Path, trajectory: str | Path, indices: Dihedral
) -> tuple[np.ndarray, np.ndarray]:
    """As :func:`dihedral_series`, through ``mda.Universe(topology, trajectory)``."""
    import MDAnalysis as mda

    universe = mda.Universe(str(topology), str(trajectory), format="H5MD")
    group = universe.atoms[list(indices)]
    try:
        time_ps, positions = [], []
        for ts in universe.trajectory:
            time_ps.append(ts.time)
            positions.append(group.positions.astype(np.float64))
    finally:
        universe.trajectory.close()
    time_fs = mda.units.convert(np.array(time_ps, dtype=np.float64), "ps", "fs")
    return time_fs, dihedral_degrees(np.array(positions))
