"""Wigner sampling against harmonic molecules with analytic Hessians and frequencies."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from fusionff.sampling import (
    angular_momentum,
    finite_difference_hessian,
    normal_modes,
    thermal_factor,
    wigner_sample,
)
from fusionff.units import AMU_A2_PER_FS2_EV, HBAR_AMU_A2_PER_FS, HBAR_EV_FS, KB_EV_PER_K

N_SAMPLES = 40_000
REL_TOL = 5 * np.sqrt(2 / N_SAMPLES)  # five standard errors of a sample variance


def diatomic(k: float, m1: float, m2: float, r0: float = 1.0):
    """Two atoms on z joined by a spring k (eV/A^2): positions, masses, analytic Hessian."""
    positions = np.array([[0.0, 0.0, 0.0], [0.0, 0.0, r0]])
    zz = np.zeros((3, 3))
    zz[2, 2] = k
    hessian = np.block([[zz, -zz], [-zz, zz]])
    return positions, np.array([m1, m2]), hessian


def omega_fs(k: float, mass: float) -> float:
    """Angular frequency (1/fs) of a spring k (eV/A^2) on a mass (amu)."""
    return np.sqrt(k / mass / AMU_A2_PER_FS2_EV)


def bent_triatomic():
    """H-O-H with harmonic bonds (k_r) and angle (k_t): geometry, masses, forces, Hessian."""
    k_r, k_t, r0, theta0 = 50.0, 4.0, 0.96, np.deg2rad(104.5)
    masses = np.array([15.995, 1.008, 1.008])
    half = theta0 / 2
    positions = r0 * np.array(
        [[0, 0, 0], [np.sin(half), np.cos(half), 0], [-np.sin(half), np.cos(half), 0]]
    )

    def internals(x):
        d1, d2 = x[1] - x[0], x[2] - x[0]
        r1, r2 = np.linalg.norm(d1), np.linalg.norm(d2)
        u1, u2 = d1 / r1, d2 / r2
        cos = u1 @ u2
        theta = np.arccos(cos)
        sin = np.sin(theta)
        b1, b2, a = np.zeros((3, 3)), np.zeros((3, 3)), np.zeros((3, 3))
        b1[1], b1[0] = u1, -u1
        b2[2], b2[0] = u2, -u2
        a[1] = (cos * u1 - u2) / (r1 * sin)
        a[2] = (cos * u2 - u1) / (r2 * sin)
        a[0] = -a[1] - a[2]
        return (r1, r2, theta), (b1, b2, a)

    def forces(x):
        (r1, r2, theta), (b1, b2, a) = internals(x)
        return -(k_r * (r1 - r0) * b1 + k_r * (r2 - r0) * b2 + k_t * (theta - theta0) * a)

    _, (b1, b2, a) = internals(positions)
    rows = np.stack([b1.ravel(), b2.ravel(), a.ravel()])
    hessian = rows.T @ np.diag([k_r, k_r, k_t]) @ rows  # Wilson B^T K B at the minimum
    return positions, masses, forces, hessian


def test_diatomic_position_and_velocity_variances_match_theory():
    """Bond-length and relative-velocity variances equal hbar/(2 mu w) c and hbar w/(2 mu) c."""
    for k, m1, m2, temperature in [(36.0, 1.008, 1.008, 0.0), (2.0, 12.0, 16.0, 1000.0)]:
        positions, masses, hessian = diatomic(k, m1, m2)
        mu = m1 * m2 / (m1 + m2)
        w = omega_fs(k, mu)
        c = thermal_factor(w, temperature)
        x, v = wigner_sample(
            positions, masses, hessian, temperature, N_SAMPLES, np.random.default_rng(1)
        )
        bond = x[:, 1] - x[:, 0]
        rel_v = v[:, 1] - v[:, 0]
        assert np.var(bond[:, 2]) == pytest.approx(
            HBAR_AMU_A2_PER_FS / (2 * mu * w) * c, rel=REL_TOL
        )
        assert np.var(rel_v[:, 2]) == pytest.approx(
            HBAR_AMU_A2_PER_FS * w / (2 * mu) * c, rel=REL_TOL
        )
        assert np.abs(bond[:, :2]).max() < 1e-12 and np.abs(rel_v[:, :2]).max() < 1e-12
        assert abs(np.mean(bond[:, 2]) - 1.0) < 5 * np.sqrt(np.var(bond[:, 2]) / N_SAMPLES)
        if temperature > 0:
            assert c > 1.5  # the thermal factor matters in this case


def test_linear_triatomic_has_five_external_modes_and_analytic_frequencies():
    """O=C=O with stretch and bend springs: 5 external modes, 4 frequencies as in textbooks."""
    k, kb, m_o, m_c = 100.0, 5.0, 15.995, 12.0
    positions = np.array([[0, 0, -1.16], [0, 0, 0], [0, 0, 1.16]])
    masses = np.array([m_o, m_c, m_o])
    stretch = np.zeros((2, 9))
    stretch[0, [2, 5]] = -1, 1
    stretch[1, [5, 8]] = -1, 1
    bends = np.zeros((2, 9))
    for row, axis in enumerate((0, 1)):
        bends[row, [axis, 3 + axis, 6 + axis]] = -0.5, 1.0, -0.5
    hessian = k * stretch.T @ stretch + kb * bends.T @ bends
    modes = normal_modes(positions, masses, hessian)
    assert modes.n_external == 5
    expected = (
        np.sort(
            [
                kb * (m_c + 2 * m_o) / (2 * m_o * m_c),
                kb * (m_c + 2 * m_o) / (2 * m_o * m_c),
                k / m_o,
                k * (1 / m_o + 2 / m_c),
            ]
        )
        / AMU_A2_PER_FS2_EV
    )
    np.testing.assert_allclose(modes.omega_squared, expected, rtol=1e-10)


def test_finite_difference_hessian_matches_analytic():
    """Central differences of analytic forces reproduce the analytic (Wilson) Hessian."""
    positions, _, forces, hessian = bent_triatomic()
    numeric = finite_difference_hessian(forces, positions, step=1e-4)
    np.testing.assert_allclose(numeric, hessian, atol=1e-5 * np.abs(hessian).max())


def mode_energies(positions, masses, hessian, x, v):
    """Kinetic and potential energy (eV) per mode, from an independent diagonalisation."""
    inv = np.repeat(1 / np.sqrt(masses), 3)
    eigenvalues, vectors = np.linalg.eigh(hessian * np.outer(inv, inv))
    keep = eigenvalues > 1e-6 * eigenvalues.max()
    w2, vectors = eigenvalues[keep] / AMU_A2_PER_FS2_EV, vectors[:, keep]
    sqrt_m = np.repeat(np.sqrt(masses), 3)
    q = ((x - positions).reshape(len(x), -1) * sqrt_m) @ vectors
    p = (v.reshape(len(v), -1) * sqrt_m) @ vectors
    kinetic = 0.5 * p**2 * AMU_A2_PER_FS2_EV
    potential = 0.5 * w2 * q**2 * AMU_A2_PER_FS2_EV
    return np.sqrt(w2), kinetic, potential


@pytest.mark.parametrize("temperature", [0.0, 300.0, 3000.0])
def test_mean_energy_per_mode_is_quarter_hbar_omega_coth(temperature):
    """Mean kinetic and potential energy of each mode of bent H2O equal (hbar w / 4) coth."""
    positions, masses, _, hessian = bent_triatomic()
    x, v = wigner_sample(
        positions,
        masses,
        hessian,
        temperature,
        N_SAMPLES,
        np.random.default_rng(7),
        zero_angular_momentum=False,
    )
    w, kinetic, potential = mode_energies(positions, masses, hessian, x, v)
    expected = HBAR_EV_FS * w / 4 * thermal_factor(w, temperature)
    np.testing.assert_allclose(kinetic.mean(axis=0), expected, rtol=REL_TOL)
    np.testing.assert_allclose(potential.mean(axis=0), expected, rtol=REL_TOL)


def test_sampled_velocities_carry_no_linear_or_angular_momentum():
    """Total momentum is zero, and angular momentum about each sampled geometry too."""
    positions, masses, _, hessian = bent_triatomic()
    x, v = wigner_sample(positions, masses, hessian, 300.0, 1000, np.random.default_rng(3))
    scale = np.abs(masses[:, None] * v).max()
    assert np.abs(np.einsum("i,sij->sj", masses, v)).max() < 1e-12 * scale
    assert np.abs(angular_momentum(x, v, masses)).max() < 1e-12 * scale
    _, v_raw = wigner_sample(
        positions,
        masses,
        hessian,
        300.0,
        1000,
        np.random.default_rng(3),
        zero_angular_momentum=False,
    )
    reference = np.broadcast_to(positions, v_raw.shape)
    assert np.abs(angular_momentum(reference, v_raw, masses)).max() < 1e-12 * scale


def test_zero_temperature_limit_and_classical_limit():
    """coth -> 1 as T -> 0 (exactly 1 at T = 0) and -> 2kT/(hbar w) at high T."""
    w = omega_fs(36.0, 0.504)
    assert thermal_factor(w, 0.0) == 1.0
    assert thermal_factor(w, 1.0) == pytest.approx(1.0, abs=1e-12)
    x = HBAR_EV_FS * w / (2 * KB_EV_PER_K * 1e6)
    assert thermal_factor(w, 1e6) == pytest.approx(1 / x, rel=1e-4)
    positions, masses, hessian = diatomic(36.0, 1.008, 1.008)
    a = wigner_sample(positions, masses, hessian, 0.0, 100, np.random.default_rng(5))
    b = wigner_sample(positions, masses, hessian, 1e-3, 100, np.random.default_rng(5))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


def test_imaginary_modes_are_rejected():
    """A Hessian with a negative curvature (a saddle point) is refused, naming the mode."""
    positions, masses, hessian = diatomic(-5.0, 1.008, 1.008)
    with pytest.raises(ValueError, match=r"1 imaginary mode\(s\) \(mode 0: \d+\.\di cm\^-1\)"):
        wigner_sample(positions, masses, hessian, 0.0, 10, np.random.default_rng(0))


def test_tiny_modes_within_tolerance_are_skipped_with_a_warning():
    """A near-zero mode within the tolerance is left unexcited and reported by a warning."""
    positions, masses, hessian = diatomic(1e-9, 1.008, 1.008)
    with pytest.warns(UserWarning, match="not excited"):
        x, v = wigner_sample(positions, masses, hessian, 300.0, 10, np.random.default_rng(0))
    np.testing.assert_array_equal(x, np.broadcast_to(positions, x.shape))
    assert np.all(v == 0)


def test_sampling_is_reproducible_with_the_same_seed():
    """Two runs with equally seeded generators give identical samples."""
    positions, masses, _, hessian = bent_triatomic()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        a = wigner_sample(positions, masses, hessian, 300.0, 5, np.random.default_rng(11))
        b = wigner_sample(positions, masses, hessian, 300.0, 5, np.random.default_rng(11))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert a[0].shape == a[1].shape == (5, 3, 3)


def test_cold_below_samples_soft_modes_with_ground_state_width():
    """A mode below ``cold_below`` keeps the T = 0 width at 1000 K; a mode above it is thermal."""
    k, m1, m2, temperature = 2.0, 12.0, 16.0, 1000.0
    positions, masses, hessian = diatomic(k, m1, m2)
    mu = m1 * m2 / (m1 + m2)
    w = omega_fs(k, mu)
    wavenumber = w / (2 * np.pi * 2.99792458e-5)
    for cutoff, c in [
        (wavenumber * 1.01, 1.0),
        (wavenumber * 0.99, thermal_factor(w, temperature)),
    ]:
        x, _ = wigner_sample(
            positions,
            masses,
            hessian,
            temperature,
            N_SAMPLES,
            np.random.default_rng(2),
            cold_below=cutoff,
        )
        bond = x[:, 1, 2] - x[:, 0, 2]
        assert np.var(bond) == pytest.approx(HBAR_AMU_A2_PER_FS / (2 * mu * w) * c, rel=REL_TOL)
    assert thermal_factor(w, temperature) > 1.5  # so the two cases differ
