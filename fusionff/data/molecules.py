"""Idealised starting geometries of molecules used in examples, tests and benchmarks."""

from __future__ import annotations

import numpy as np
from ase import Atoms

_CC_DOUBLE, _CC_SINGLE, _CC_RING, _CH = 1.34, 1.47, 1.39, 1.08


def _unit(angle_deg: float) -> np.ndarray:
    a = np.deg2rad(angle_deg)
    return np.array([np.cos(a), np.sin(a), 0.0])


def trans_stilbene() -> Atoms:
    """Planar trans-stilbene (C14H12, 26 atoms) from ideal bond lengths (Angstrom) and 120 degree
    angles; a starting point for optimisation, not a minimum of any method."""
    symbols: list[str] = []
    positions: list[np.ndarray] = []
    ethylenic = [np.array([-_CC_DOUBLE / 2, 0.0, 0.0]), np.array([_CC_DOUBLE / 2, 0.0, 0.0])]
    # (carbon, direction of its phenyl, direction of its H) for the two ethylenic carbons
    for c, phenyl_dir, h_dir in ((ethylenic[0], 120.0, 240.0), (ethylenic[1], -60.0, 60.0)):
        symbols.append("C")
        positions.append(c)
        symbols.append("H")
        positions.append(c + _CH * _unit(h_dir))
        d = _unit(phenyl_dir)
        ipso = c + _CC_SINGLE * d
        centre = ipso + _CC_RING * d
        for k in range(6):
            radial = _unit(phenyl_dir + 180.0 + 60.0 * k)
            symbols.append("C")
            positions.append(centre + _CC_RING * radial)
            if k > 0:
                symbols.append("H")
                positions.append(centre + (_CC_RING + _CH) * radial)
    return Atoms(symbols=symbols, positions=np.array(positions))
