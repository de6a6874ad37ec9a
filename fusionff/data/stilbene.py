"""Geometry of stilbene (C14H12): the central torsion, pyramidalisation, a cis starting point.

Atom order is that of :func:`fusionff.data.molecules.trans_stilbene` (26 atoms): the first
half is C1 (ethylenic), H1, then phenyl 1 with its ipso carbon first and the other five
carbons each followed by their hydrogen; the second half (from index 13) is C2, H2 and
phenyl 2 in the same order. The central dihedral is C(ipso1)-C1=C2-C(ipso2): 180 degrees for
trans, near 0 for cis. Positions are (N, 3) Angstrom; angles are degrees. The functions are
pure: they return new arrays.
"""

from __future__ import annotations

import numpy as np
from ase import Atoms

from fusionff.data.molecules import trans_stilbene

N_ATOMS = 26
HALF = 13
"""Atoms per half: C(ethylenic), H, 6 ring carbons, 5 ring hydrogens."""
C1, H1, IPSO1 = 0, 1, 2
C2, H2, IPSO2 = 13, 14, 15
CENTRAL = (IPSO1, C1, C2, IPSO2)
"""Indices of the central dihedral C(ipso1)-C1=C2-C(ipso2)."""
PHENYL1 = tuple(range(IPSO1, HALF))
PHENYL2 = tuple(range(IPSO2, N_ATOMS))
"""Atoms of each phenyl group (ipso carbon first)."""


def _check(positions: np.ndarray) -> np.ndarray:
    positions = np.asarray(positions, dtype=np.float64)
    if positions.shape != (N_ATOMS, 3):
        raise ValueError(
            f"stilbene positions must have shape ({N_ATOMS}, 3), got {positions.shape}"
        )
    return positions


def ethylenic_neighbours(carbon: int) -> tuple[int, int, int]:
    """The three atoms bonded to ethylenic carbon ``carbon`` (C1 or C2): (other C, H, ipso)."""
    if carbon == C1:
        return C2, H1, IPSO1
    if carbon == C2:
        return C1, H2, IPSO2
    raise ValueError(f"atom {carbon} is not an ethylenic carbon ({C1} or {C2})")


def substituents(carbon: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The hydrogen and the phenyl group bonded to ethylenic carbon ``carbon``."""
    if carbon == C1:
        return (H1,), PHENYL1
    if carbon == C2:
        return (H2,), PHENYL2
    raise ValueError(f"atom {carbon} is not an ethylenic carbon ({C1} or {C2})")


def dihedral(positions: np.ndarray, indices: tuple[int, int, int, int] = CENTRAL) -> float:
    """Dihedral angle a-b-c-d in degrees, in (-180, 180] (the central one by default)."""
    p = np.asarray(positions, dtype=np.float64)[list(indices)]
    b0, b1, b2 = p[0] - p[1], p[2] - p[1], p[3] - p[2]
    b1 = b1 / np.linalg.norm(b1)
    v = b0 - (b0 @ b1) * b1
    w = b2 - (b2 @ b1) * b1
    angle = float(np.degrees(np.arctan2(np.cross(b1, v) @ w, v @ w)))
    return 180.0 if angle == -180.0 else angle


def angle(positions: np.ndarray, a: int, b: int, c: int) -> float:
    """Bond angle a-b-c in degrees."""
    p = np.asarray(positions, dtype=np.float64)
    u, v = p[a] - p[b], p[c] - p[b]
    cosine = u @ v / (np.linalg.norm(u) * np.linalg.norm(v))
    return float(np.degrees(np.arccos(np.clip(cosine, -1.0, 1.0))))


def pyramidalisation(positions: np.ndarray, carbon: int) -> float:
    """Sum of the three bond angles at ethylenic carbon ``carbon``, degrees (360 = planar)."""
    positions = _check(positions)
    x, y, z = ethylenic_neighbours(carbon)
    return (
        angle(positions, x, carbon, y)
        + angle(positions, y, carbon, z)
        + angle(positions, x, carbon, z)
    )


def hydrogen_bridge_distance(positions: np.ndarray) -> float:
    """The shorter of H1-C2 and H2-C1, Angstrom: how near a central hydrogen has come to the
    other central carbon (about 2.1 normally; the R2 runs stop below 1.45, a bridging hydrogen
    is within 1.3)."""
    p = _check(positions)
    return float(min(np.linalg.norm(p[H1] - p[C2]), np.linalg.norm(p[H2] - p[C1])))


def rotate(
    positions: np.ndarray,
    atoms: tuple[int, ...],
    origin: np.ndarray,
    axis: np.ndarray,
    degrees: float,
) -> np.ndarray:
    """Rotate ``atoms`` by ``degrees`` about ``axis`` through ``origin`` (right-handed)."""
    out = np.array(positions, dtype=np.float64)
    k = np.asarray(axis, dtype=np.float64)
    k = k / np.linalg.norm(k)
    t = np.radians(degrees)
    r = out[list(atoms)] - origin
    rotated = r * np.cos(t) + np.cross(k, r) * np.sin(t) + np.outer(r @ k, k) * (1 - np.cos(t))
    out[list(atoms)] = rotated + origin
    return out


def set_torsion(positions: np.ndarray, target: float) -> np.ndarray:
    """Positions with the central dihedral set to ``target`` degrees by rotating the second
    half (C2, H2, phenyl 2) rigidly about the C1=C2 axis; bond lengths are unchanged."""
    positions = _check(positions)
    change = target - dihedral(positions)
    axis = positions[C2] - positions[C1]
    # rotating the last atom about b->c by +t changes the dihedral by +t (arctan2 convention)
    return rotate(positions, tuple(range(HALF, N_ATOMS)), positions[C1], axis, change)


def twist_phenyl(positions: np.ndarray, carbon: int, degrees: float) -> np.ndarray:
    """Rotate the phenyl on ethylenic carbon ``carbon`` about its C-C(ipso) bond."""
    positions = _check(positions)
    _, phenyl = substituents(carbon)
    ipso = phenyl[0]
    axis = positions[ipso] - positions[carbon]
    return rotate(positions, phenyl, positions[carbon], axis, degrees)


def _plane_normal(positions: np.ndarray, carbon: int) -> np.ndarray:
    """Unit normal of the plane of the three neighbours of ``carbon``."""
    x, y, z = (positions[i] for i in ethylenic_neighbours(carbon))
    n = np.cross(y - x, z - x)
    return n / np.linalg.norm(n)


def bend_substituents(positions: np.ndarray, carbon: int, degrees: float) -> np.ndarray:
    """Pyramidalise ethylenic carbon ``carbon`` by tilting its hydrogen and its phenyl group
    (each rigidly, about an axis through the carbon perpendicular to its bond and to the
    local plane normal) by ``degrees`` to the same side of the plane. The other ethylenic
    carbon and every bond length stay as they are; 0 degrees returns the input."""
    positions = _check(positions)
    normal = _plane_normal(positions, carbon)
    out = positions.copy()
    for group in substituents(carbon):
        bond = positions[group[0]] - positions[carbon]
        axis = np.cross(bond, normal)  # rotating about it by +t tilts the bond towards +normal
        out = rotate(out, group, positions[carbon], axis, degrees)
    return out


def pyramidalise(
    positions: np.ndarray, carbon: int, angle_sum: float, *, tolerance: float = 1e-3
) -> np.ndarray:
    """Positions with the sum of bond angles at ``carbon`` brought to ``angle_sum`` degrees
    (between about 270 and the current sum) by :func:`bend_substituents`, solved by bisection.

    Raises:
        ValueError: ``angle_sum`` above the current sum or below what bending reaches.
    """
    positions = _check(positions)
    current = pyramidalisation(positions, carbon)
    if angle_sum > current + tolerance:
        raise ValueError(f"angle sum {angle_sum} is above the current {current:.2f} degrees")
    low, high = 0.0, 90.0
    if pyramidalisation(bend_substituents(positions, carbon, high), carbon) > angle_sum:
        raise ValueError(f"angle sum {angle_sum} cannot be reached by bending")
    while high - low > 1e-7:
        mid = 0.5 * (low + high)
        if pyramidalisation(bend_substituents(positions, carbon, mid), carbon) > angle_sum:
            low = mid
        else:
            high = mid
    return bend_substituents(positions, carbon, 0.5 * (low + high))


def cis_stilbene(torsion: float = 7.0, phenyl_twist: float = 40.0) -> Atoms:
    """A cis-stilbene starting geometry (not a minimum): the ideal trans geometry with the
    central dihedral set to ``torsion`` and both phenyls rotated about their C-C(ipso) bonds
    by ``phenyl_twist`` degrees in the same sense (a propeller, as in the real minimum), which
    keeps the ortho hydrogens apart."""
    atoms = trans_stilbene()
    positions = set_torsion(atoms.positions, torsion)
    positions = twist_phenyl(positions, C1, phenyl_twist)
    positions = twist_phenyl(positions, C2, phenyl_twist)
    return Atoms(numbers=atoms.numbers, positions=positions)


def closest_nonbonded(
    positions: np.ndarray, numbers: np.ndarray, bond_factor: float = 1.25
) -> float:
    """Shortest distance (Angstrom) between two atoms that are not bonded, where bonded means
    closer than ``bond_factor`` times the sum of covalent radii in the reference trans
    geometry's connectivity (so the topology does not depend on the geometry tested)."""
    from ase.data import covalent_radii

    positions = _check(positions)
    reference = trans_stilbene()
    distances = np.linalg.norm(positions[:, None] - positions[None], axis=-1)
    ref = np.linalg.norm(reference.positions[:, None] - reference.positions[None], axis=-1)
    radii = covalent_radii[np.asarray(numbers)]
    bonded = ref < bond_factor * (radii[:, None] + radii[None])
    np.fill_diagonal(bonded, True)
    return float(distances[~bonded].min())
