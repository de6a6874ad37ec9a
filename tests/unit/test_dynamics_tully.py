"""Tully's models: analytic adiabatic quantities against finite differences, and unit handling."""

import numpy as np
import pytest
import torch

from fusionff.dynamics import TullyModel
from fusionff.dynamics.diabatic import mixing_angle
from fusionff.dynamics.integrator import kinetic_energy
from fusionff.dynamics.tully import TULLY_MASS_AU
from fusionff.units import (
    AU_VELOCITY_A_PER_FS,
    BOHR_ANGSTROM,
    ELECTRON_MASS_AMU,
    HARTREE_EV,
)

MODELS = ["simple", "dual", "extended"]
# grid avoiding x = 0, where models 1 and 3 are only once differentiable
X = torch.cat([torch.linspace(-6.0, -0.05, 60), torch.linspace(0.05, 6.0, 60)]).double()


def _eigenvectors(model: TullyModel, x: torch.Tensor) -> np.ndarray:
    """Adiabatic eigenvectors (B, 2, 2) from numpy, columns ordered by energy, smooth signs."""
    h11, h22, h12, *_ = model.diabatic(x)
    h = torch.stack([torch.stack([h11, h12], -1), torch.stack([h12, h22], -1)], -2).numpy()
    _, vectors = np.linalg.eigh(h)
    # the diabatic coupling never vanishes: make the second component of each state positive
    # for the lower state and the first one for the upper state (continuous choice)
    lower, upper = vectors[:, :, 0], vectors[:, :, 1]
    lower *= np.sign(lower[:, 1])[:, None]
    upper *= np.sign(upper[:, 0])[:, None]
    return np.stack([lower, upper], axis=-1)


@pytest.mark.parametrize("name", MODELS)
def test_gradients_equal_finite_differences_of_energies(name):
    """Analytic adiabatic gradients equal central differences of the adiabatic energies."""
    model = TullyModel(name)
    h = 1e-5
    energies, gradients, _ = model.adiabatic_au(X)
    e_plus, _, _ = model.adiabatic_au(X + h)
    e_minus, _, _ = model.adiabatic_au(X - h)
    numeric = (e_plus - e_minus) / (2 * h)
    torch.testing.assert_close(gradients, numeric, atol=1e-9, rtol=1e-6)


@pytest.mark.parametrize("name", MODELS)
def test_energies_equal_numerical_diagonalisation(name):
    """Closed-form adiabatic energies equal numpy eigenvalues of the diabatic matrix."""
    model = TullyModel(name)
    h11, h22, h12, *_ = model.diabatic(X)
    h = torch.stack([torch.stack([h11, h12], -1), torch.stack([h12, h22], -1)], -2)
    energies, _, _ = model.adiabatic_au(X)
    torch.testing.assert_close(energies, torch.linalg.eigvalsh(h), atol=1e-14, rtol=0)


@pytest.mark.parametrize("name", MODELS)
def test_nacs_equal_finite_differences_of_eigenvectors(name):
    """d_01 = <phi_0|d phi_1/dx> equals the overlap with central differences of eigenvectors,
    and the NAC matrix is antisymmetric."""
    model = TullyModel(name)
    h = 1e-5
    _, _, nacs = model.adiabatic_au(X)
    vectors = _eigenvectors(model, X)
    derivative = (_eigenvectors(model, X + h) - _eigenvectors(model, X - h)) / (2 * h)
    numeric = np.einsum("bij,bik->bjk", vectors, derivative)
    np.testing.assert_allclose(nacs.numpy(), numeric, atol=2e-7, rtol=1e-5)
    torch.testing.assert_close(nacs, -nacs.transpose(1, 2))


@pytest.mark.parametrize("name", MODELS)
def test_nac_is_derivative_of_mixing_angle(name):
    """d_01 = d theta/dx for theta = atan2(h12, (h11 - h22)/2) / 2 (Hellmann-Feynman form)."""
    model = TullyModel(name)
    h = 1e-6
    theta_plus = mixing_angle(*model.diabatic(X + h)[:3])
    theta_minus = mixing_angle(*model.diabatic(X - h)[:3])
    _, _, nacs = model.adiabatic_au(X)
    torch.testing.assert_close(
        nacs[:, 0, 1], (theta_plus - theta_minus) / (2 * h), atol=1e-7, rtol=1e-6
    )


@pytest.mark.parametrize("name", MODELS)
def test_evaluate_converts_to_ev_angstrom(name):
    """evaluate() returns eV, eV/Angstrom and 1/Angstrom along x only, with (B, S, N, 3) shapes."""
    model = TullyModel(name)
    positions = torch.zeros(len(X), 1, 3, dtype=torch.float64)
    positions[:, 0, 0] = X * BOHR_ANGSTROM
    positions[:, 0, 1:] = 3.0  # y, z are inert
    out = model.evaluate(positions)
    energies, gradients, nacs = model.adiabatic_au(X)
    assert out.energies.shape == (len(X), 2)
    assert out.forces.shape == (len(X), 2, 1, 3)
    assert out.nacs.shape == (len(X), 2, 2, 1, 3)
    torch.testing.assert_close(out.energies, energies * HARTREE_EV)
    torch.testing.assert_close(out.forces[:, :, 0, 0], -gradients * HARTREE_EV / BOHR_ANGSTROM)
    torch.testing.assert_close(out.nacs[:, :, :, 0, 0], nacs / BOHR_ANGSTROM)
    assert torch.all(out.forces[..., 1:] == 0) and torch.all(out.nacs[..., 1:] == 0)


def test_kinetic_energy_units_match_atomic_units():
    """k^2 / 2M hartree equals the engine's kinetic energy of the converted velocity and mass."""
    k = 20.0
    v = torch.zeros(1, 1, 3, dtype=torch.float64)
    v[0, 0, 0] = k / TULLY_MASS_AU * AU_VELOCITY_A_PER_FS
    masses = torch.tensor([[TULLY_MASS_AU * ELECTRON_MASS_AMU]], dtype=torch.float64)
    expected = k**2 / (2 * TULLY_MASS_AU) * HARTREE_EV
    assert kinetic_energy(v, masses).item() == pytest.approx(expected, rel=1e-9)


def test_unknown_model_is_an_error():
    """An unknown model name raises ValueError naming the choices."""
    with pytest.raises(ValueError, match="simple"):
        TullyModel("quadruple")
