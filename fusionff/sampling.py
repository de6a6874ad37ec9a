"""Initial conditions by Wigner sampling of harmonic normal modes, and finite-difference Hessians.

For each vibrational normal mode of angular frequency w (mass-weighted coordinate Q, momentum
P), the Wigner distribution of the harmonic oscillator in thermal equilibrium at temperature T
is a product of Gaussians::

    Q ~ N(0, hbar / (2 w) * c),    P ~ N(0, hbar w / 2 * c),    c = coth(hbar w / (2 k T))

(c = 1 at T = 0: the ground state). Translations and rotations are projected out of the
mass-weighted Hessian before it is diagonalised, so sampled velocities carry no linear
momentum and, about the reference geometry, no angular momentum. Units at the interface:
Angstrom, amu, eV, fs; velocities in Angstrom/fs; Hessians in eV/Angstrom^2.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from fusionff.units import (
    AMU_A2_PER_FS2_EV,
    HBAR_AMU_A2_PER_FS,
    HBAR_EV_FS,
    KB_EV_PER_K,
    SPEED_OF_LIGHT_CM_PER_FS,
)


@dataclass(frozen=True)
class NormalModes:
    """Vibrational normal modes of a molecule (translations and rotations projected out).

    Attributes:
        omega_squared: (M,) eigenvalues of the projected mass-weighted Hessian, 1/fs^2,
            ascending; negative for imaginary modes. M = 3N - 6 (3N - 5 if linear).
        vectors: (3N, M) orthonormal mass-weighted mode vectors (columns), dimensionless.
        masses: (N,) amu.
        n_external: number of translations and rotations removed (6, 5 if linear, 3 for
            a single atom).
    """

    omega_squared: np.ndarray
    vectors: np.ndarray
    masses: np.ndarray
    n_external: int

    @property
    def wavenumbers(self) -> np.ndarray:
        """(M,) cm^-1, negative for imaginary modes (-|w| / 2 pi c)."""
        omega = np.sign(self.omega_squared) * np.sqrt(np.abs(self.omega_squared))
        return omega / (2 * np.pi * SPEED_OF_LIGHT_CM_PER_FS)

    def cartesian(self, coordinates: np.ndarray, modes: np.ndarray | None = None) -> np.ndarray:
        """Mass-weighted mode coordinates (..., M) -> Cartesian (..., N, 3) (divided by sqrt(m)).

        ``modes``: boolean (M,) selection of the modes the coordinates belong to (default all).
        """
        vectors = self.vectors if modes is None else self.vectors[:, modes]
        flat = coordinates @ vectors.T
        return flat.reshape(*flat.shape[:-1], -1, 3) / np.sqrt(self.masses)[:, None]


def external_basis(
    positions: np.ndarray, masses: np.ndarray, tolerance: float = 1e-6
) -> np.ndarray:
    """Orthonormal mass-weighted translations and rotations: (3N, k), k = 6, 5 (linear) or 3.

    Args:
        positions: (N, 3) Angstrom.
        masses: (N,) amu.
        tolerance: relative singular value below which a direction counts as absent.
    """
    sqrt_m = np.sqrt(masses)[:, None]
    centred = positions - masses @ positions / masses.sum()
    columns = []
    for axis in np.eye(3):
        columns.append((sqrt_m * axis).ravel())  # translation
        columns.append((sqrt_m * np.cross(axis, centred)).ravel())  # rotation
    basis = np.stack(columns, axis=1)  # (3N, 6)
    u, s, _ = np.linalg.svd(basis, full_matrices=False)
    return u[:, s > tolerance * s.max()]


def normal_modes(positions: np.ndarray, masses: np.ndarray, hessian: np.ndarray) -> NormalModes:
    """Diagonalise the mass-weighted Hessian in the space orthogonal to translations/rotations.

    Args:
        positions: (N, 3) Angstrom, the reference (minimum) geometry.
        masses: (N,) amu.
        hessian: (3N, 3N) eV/Angstrom^2, second derivatives of the energy; symmetrised here.
    """
    positions = np.asarray(positions, dtype=np.float64)
    masses = np.asarray(masses, dtype=np.float64)
    hessian = np.asarray(hessian, dtype=np.float64)
    n = positions.shape[0] if positions.ndim == 2 else -1
    if positions.shape != (n, 3) or n < 1:
        raise ValueError(f"positions must have shape (N, 3), got {positions.shape}")
    if masses.shape != (n,) or np.any(~(masses > 0)):
        raise ValueError(f"masses must be {n} positive numbers (amu), got {masses}")
    if hessian.shape != (3 * n, 3 * n):
        raise ValueError(f"hessian must have shape {(3 * n, 3 * n)}, got {hessian.shape}")
    if not np.all(np.isfinite(hessian)) or not np.all(np.isfinite(positions)):
        raise ValueError("positions and hessian must be finite")
    scale = max(np.abs(hessian).max(), 1e-300)
    asymmetry = np.abs(hessian - hessian.T).max() / scale
    if asymmetry > 1e-2:
        raise ValueError(f"hessian is not symmetric (relative asymmetry {asymmetry:.2g})")
    inv_sqrt_m = np.repeat(1.0 / np.sqrt(masses), 3)
    weighted = 0.5 * (hessian + hessian.T) * np.outer(inv_sqrt_m, inv_sqrt_m)
    external = external_basis(positions, masses)
    u, _, _ = np.linalg.svd(external, full_matrices=True)
    internal = u[:, external.shape[1] :]  # (3N, M) orthonormal complement
    eigenvalues, eigenvectors = np.linalg.eigh(internal.T @ weighted @ internal)
    return NormalModes(
        omega_squared=eigenvalues / AMU_A2_PER_FS2_EV,  # eV/(A^2 amu) -> 1/fs^2
        vectors=internal @ eigenvectors,
        masses=masses,
        n_external=external.shape[1],
    )


def thermal_factor(omega: np.ndarray, temperature: float) -> np.ndarray:
    """coth(hbar w / 2 k T) for angular frequencies w (1/fs); exactly 1 at T = 0."""
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0 K, got {temperature}")
    omega = np.asarray(omega, dtype=np.float64)
    if temperature == 0:
        return np.ones_like(omega)
    x = HBAR_EV_FS * omega / (2 * KB_EV_PER_K * temperature)
    return 1.0 / np.tanh(x)


def wigner_sample(
    positions: np.ndarray,
    masses: np.ndarray,
    hessian: np.ndarray,
    temperature: float,
    n_samples: int,
    rng: np.random.Generator,
    *,
    imaginary_tolerance: float = 10.0,
    zero_angular_momentum: bool = True,
    cold_below: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Sample positions and velocities from the harmonic Wigner distribution at temperature T.

    Args:
        positions: (N, 3) Angstrom, a minimum of the potential.
        masses: (N,) amu.
        hessian: (3N, 3N) eV/Angstrom^2 at ``positions``.
        temperature: K (0 for the vibrational ground state).
        n_samples: number of samples n.
        rng: the random generator (seeded by the caller).
        imaginary_tolerance: cm^-1. An imaginary mode beyond it is an error; modes with
            |wavenumber| below it (numerical noise, e.g. a loosely converged minimum) are
            left unexcited, with a warning.
        zero_angular_momentum: also remove the angular momentum that the sampled velocities
            have about each sampled (displaced) geometry; it is zero about the reference
            geometry by construction, and this correction is of second order.
        cold_below: cm^-1. Modes below this wavenumber are sampled with their ground-state
            (T = 0) width whatever the temperature. Linear (Cartesian) sampling of a very
            soft torsion at finite temperature moves atoms along straight lines by
            amplitudes that stretch bonds far beyond anything thermal (a 20 cm^-1 phenyl
            torsion has coth(hbar w / 2kT) ~ 21 at 300 K); sample such motions in their own
            curvilinear coordinate instead (e.g. a rigid torsion).

    Returns:
        positions (n, N, 3) Angstrom and velocities (n, N, 3) Angstrom/fs.
    """
    if n_samples < 0:
        raise ValueError(f"n_samples must be >= 0, got {n_samples}")
    modes = normal_modes(positions, masses, hessian)
    wavenumbers = modes.wavenumbers
    imaginary = np.flatnonzero(wavenumbers < -imaginary_tolerance)
    if imaginary.size:
        listed = ", ".join(f"mode {k}: {-wavenumbers[k]:.1f}i cm^-1" for k in imaginary)
        raise ValueError(
            f"the Hessian has {imaginary.size} imaginary mode(s) ({listed}); Wigner sampling "
            "needs a minimum: optimise the geometry first"
        )
    soft = np.abs(wavenumbers) < imaginary_tolerance
    if soft.any():
        listed = ", ".join(f"{wavenumbers[k]:.2f}" for k in np.flatnonzero(soft))
        warnings.warn(
            f"{soft.sum()} mode(s) below {imaginary_tolerance} cm^-1 ({listed}) are not excited",
            stacklevel=2,
        )
    omega = np.sqrt(modes.omega_squared[~soft])
    factor = thermal_factor(omega, temperature)
    if cold_below > 0:
        factor = np.where(wavenumbers[~soft] < cold_below, 1.0, factor)
    sigma_q = np.sqrt(HBAR_AMU_A2_PER_FS / (2 * omega) * factor)
    sigma_p = np.sqrt(HBAR_AMU_A2_PER_FS * omega / 2 * factor)
    q = rng.standard_normal((n_samples, omega.size)) * sigma_q
    p = rng.standard_normal((n_samples, omega.size)) * sigma_p
    sampled_positions = np.asarray(positions, dtype=np.float64) + modes.cartesian(q, ~soft)
    velocities = modes.cartesian(p, ~soft)
    if zero_angular_momentum:
        velocities = remove_angular_momentum(sampled_positions, velocities, modes.masses)
    return sampled_positions, velocities


def angular_momentum(
    positions: np.ndarray, velocities: np.ndarray, masses: np.ndarray
) -> np.ndarray:
    """(..., 3) amu Angstrom^2/fs about the centre of mass, for (..., N, 3) inputs."""
    com = np.einsum("i,...ij->...j", masses, positions) / masses.sum()
    r = positions - com[..., None, :]
    return np.einsum("i,...ij->...j", masses, np.cross(r, velocities))


def remove_angular_momentum(
    positions: np.ndarray, velocities: np.ndarray, masses: np.ndarray
) -> np.ndarray:
    """Velocities (..., N, 3) minus the rigid rotation w x r that carries their angular momentum.

    The centre-of-mass velocity is unchanged; a linear geometry's inertia about its axis is
    zero, so that axis is handled by a pseudo-inverse.
    """
    masses = np.asarray(masses, dtype=np.float64)
    com = np.einsum("i,...ij->...j", masses, positions) / masses.sum()
    r = positions - com[..., None, :]
    r2 = np.einsum("...ij,...ij->...i", r, r)
    inertia = np.einsum("i,...i->...", masses, r2)[..., None, None] * np.eye(3) - np.einsum(
        "i,...ij,...ik->...jk", masses, r, r
    )
    momentum = angular_momentum(positions, velocities, masses)
    w = np.einsum("...jk,...k->...j", np.linalg.pinv(inertia, rcond=1e-10), momentum)
    return velocities - np.cross(w[..., None, :], r)


def finite_difference_hessian(
    forces: Callable[[np.ndarray], np.ndarray], positions: np.ndarray, step: float = 1e-3
) -> np.ndarray:
    """(3N, 3N) eV/Angstrom^2 by central differences of forces (6N force calls), symmetrised.

    Args:
        forces: positions (N, 3) Angstrom -> forces (N, 3) eV/Angstrom (minus the gradient).
        positions: (N, 3) Angstrom.
        step: displacement, Angstrom.
    """
    x0 = np.asarray(positions, dtype=np.float64)
    n3 = x0.size
    hessian = np.empty((n3, n3))
    for j in range(n3):
        displaced = x0.ravel().copy()
        displaced[j] += step
        plus = np.asarray(forces(displaced.reshape(x0.shape))).ravel()
        displaced[j] -= 2 * step
        minus = np.asarray(forces(displaced.reshape(x0.shape))).ravel()
        hessian[:, j] = -(plus - minus) / (2 * step)
    return 0.5 * (hessian + hessian.T)
