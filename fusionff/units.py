"""Physical constants and unit conversions of fusionff, defined once (CODATA via scipy).

The engine works in eV (energy), Angstrom (length), fs (time) and amu (mass); velocities are
Angstrom/fs. Atomic units appear only inside model systems (Tully's models) and are converted
at their interface with the constants below. Every constant is defined here and nowhere else.
"""

from scipy import constants as _c

_pc = _c.physical_constants

HARTREE_EV: float = _pc["Hartree energy in eV"][0]
"""One hartree in eV."""

BOHR_ANGSTROM: float = _pc["Bohr radius"][0] * 1e10
"""One bohr in Angstrom."""

AU_TIME_FS: float = _pc["atomic unit of time"][0] * 1e15
"""One atomic unit of time in fs."""

ELECTRON_MASS_AMU: float = _pc["electron mass in u"][0]
"""One electron mass in amu (unified atomic mass units)."""

HBAR_EV_FS: float = _c.hbar / _c.e * 1e15
"""Reduced Planck constant in eV fs."""

AMU_A2_PER_FS2_EV: float = _c.atomic_mass * 1e-20 / 1e-30 / _c.e
"""Kinetic-energy unit: 1 amu Angstrom^2 / fs^2 expressed in eV (about 103.6)."""

EV_PER_A_AMU_A_PER_FS2: float = 1.0 / AMU_A2_PER_FS2_EV
"""Acceleration unit: a force of 1 eV/Angstrom on 1 amu gives this many Angstrom/fs^2."""

AU_VELOCITY_A_PER_FS: float = BOHR_ANGSTROM / AU_TIME_FS
"""One atomic unit of velocity (bohr per atomic time unit) in Angstrom/fs."""

KB_EV_PER_K: float = _c.k / _c.e
"""Boltzmann constant in eV/K."""

HBAR_AMU_A2_PER_FS: float = HBAR_EV_FS / AMU_A2_PER_FS2_EV
"""Reduced Planck constant in amu Angstrom^2 / fs (the unit of action of positions x momenta)."""

SPEED_OF_LIGHT_CM_PER_FS: float = _c.c * 100 * 1e-15
"""Speed of light in cm/fs: a wavenumber in cm^-1 is omega / (2 pi c)."""
