"""TDSE propagation, fewest-switches probabilities and energy-based decoherence."""

import math

import pytest
import torch

from fusionff.dynamics.decoherence import energy_based_decoherence
from fusionff.dynamics.electronic import (
    fewest_switches_rate,
    local_propagator,
    propagate_coefficients,
)
from fusionff.units import HBAR_EV_FS


def _random_problem(b: int, s: int, seed: int = 0):
    """Random normalised amplitudes, energies (eV) and antisymmetric couplings (1/fs)."""
    g = torch.Generator().manual_seed(seed)
    c = torch.randn(b, s, dtype=torch.complex128, generator=g)
    c = c / c.abs().pow(2).sum(1, keepdim=True).sqrt()
    energies = [torch.randn(b, s, dtype=torch.float64, generator=g) for _ in range(2)]
    couplings = []
    for _ in range(2):
        a = torch.randn(b, s, s, dtype=torch.float64, generator=g)
        couplings.append(a - a.transpose(1, 2))
    return c, energies, couplings


@pytest.mark.parametrize("s", [2, 3])
def test_populations_stay_normalised(s):
    """Propagating over many steps with random energies and couplings keeps sum |c|^2 = 1."""
    c, energies, couplings = _random_problem(64, s)
    active = torch.zeros(64, dtype=torch.int64)
    for _ in range(200):
        c, _ = propagate_coefficients(c, energies, couplings, active, dt=0.1, n_substeps=5)
    torch.testing.assert_close(
        c.abs().pow(2).sum(1), torch.ones(64, dtype=torch.float64), atol=1e-12, rtol=0
    )


def test_two_state_closed_form_equals_matrix_exponential():
    """The closed-form 2x2 propagator equals torch.linalg.matrix_exp(-i H tau)."""
    _, energies, couplings = _random_problem(32, 2, seed=1)
    h = torch.diag_embed(energies[0]).to(torch.complex128) - 1j * couplings[0]
    expected = torch.linalg.matrix_exp(-1j * 0.37 * h)
    torch.testing.assert_close(local_propagator(h, 0.37), expected, atol=1e-13, rtol=0)


def test_uncoupled_states_only_acquire_phases():
    """Without couplings |c_j| is constant and the phase of c_j advances by -V_j t / hbar."""
    c = torch.tensor([[0.6 + 0j, 0.8j]], dtype=torch.complex128)
    e = torch.tensor([[0.0, 1.3]], dtype=torch.float64)
    zero = torch.zeros(1, 2, 2, dtype=torch.float64)
    out, prob = propagate_coefficients(c, (e, e), (zero, zero), torch.tensor([0]), 2.0, 4)
    relative = (out[0, 1] / out[0, 0]) / (c[0, 1] / c[0, 0])
    expected = complex(math.cos(1.3 * 2.0 / HBAR_EV_FS), -math.sin(1.3 * 2.0 / HBAR_EV_FS))
    assert abs(relative.item() - expected) < 1e-12
    assert torch.all(prob == 0)


def test_hop_probability_equals_population_transfer_for_a_short_step():
    """Starting in state 0, the summed fewest-switches probability of one short step equals
    the population that flowed into state 1 (to first order in the transfer)."""
    c = torch.tensor([[1.0 + 0j, 0.0 + 0j]], dtype=torch.complex128)
    e = torch.tensor([[0.0, 0.2]], dtype=torch.float64)
    sigma = torch.tensor([[[0.0, -0.05], [0.05, 0.0]]], dtype=torch.float64)
    out, prob = propagate_coefficients(c, (e, e), (sigma, sigma), torch.tensor([0]), 0.2, 20)
    transferred = out[0, 1].abs().item() ** 2
    assert transferred > 0
    assert prob[0, 1].item() == pytest.approx(transferred, rel=2e-3)
    assert prob[0, 0].item() == 0.0


def test_fewest_switches_rate_is_nonnegative_and_zero_on_active_state():
    """Rates are >= 0, vanish for the active state, and equal -2 Re(c_j* c_k sigma_jk)/|c_k|^2."""
    c, _, couplings = _random_problem(50, 3, seed=2)
    active = torch.randint(0, 3, (50,), generator=torch.Generator().manual_seed(3))
    rate = fewest_switches_rate(c, couplings[0], active)
    assert torch.all(rate >= 0)
    assert torch.all(rate[torch.arange(50), active] == 0)
    b, k, j = 7, int(active[7]), (int(active[7]) + 1) % 3
    flux = -2 * (c[b, j].conj() * c[b, k] * couplings[0][b, j, k]).real / c[b, k].abs() ** 2
    assert rate[b, j].item() == pytest.approx(max(0.0, flux.item()), abs=1e-14)


def test_decoherence_damps_coherences_and_keeps_norm():
    """Energy-based decoherence shrinks inactive populations, grows the active one, keeps the
    norm, and converges to the active state after many steps."""
    c = torch.tensor(
        [[0.6 + 0j, 0.8 * math.cos(1.0) + 0.8j * math.sin(1.0)]] * 2, dtype=torch.complex128
    )
    energies = torch.tensor([[0.0, 2.0], [0.0, 2.0]], dtype=torch.float64)
    active = torch.tensor([0, 1])
    kinetic = torch.tensor([0.5, 0.5], dtype=torch.float64)
    out = energy_based_decoherence(c, energies, active, kinetic, dt=0.5)
    pops = out.abs() ** 2
    torch.testing.assert_close(pops.sum(1), torch.ones(2, dtype=torch.float64))
    assert pops[0, 1] < 0.64 and pops[0, 0] > 0.36
    assert pops[1, 0] < 0.36 and pops[1, 1] > 0.64
    # the phase of the active amplitude is kept
    assert torch.angle(out[1, 1]).item() == pytest.approx(1.0, abs=1e-12)
    for _ in range(200):
        out = energy_based_decoherence(out, energies, active, kinetic, dt=0.5)
    torch.testing.assert_close(out.abs() ** 2, torch.eye(2, dtype=torch.float64), atol=1e-8, rtol=0)


def test_decoherence_time_follows_granucci_persico():
    """One step damps |c_j| by exp(-dt/tau), tau = hbar/|dV| (1 + C/E_kin)."""
    c = torch.tensor([[0.8 + 0j, 0.6 + 0j]], dtype=torch.complex128)
    energies = torch.tensor([[0.0, 1.5]], dtype=torch.float64)
    kinetic = torch.tensor([0.7], dtype=torch.float64)
    out = energy_based_decoherence(c, energies, torch.tensor([0]), kinetic, dt=0.3, constant=2.0)
    tau = HBAR_EV_FS / 1.5 * (1 + 2.0 / 0.7)
    assert out[0, 1].abs().item() == pytest.approx(0.6 * math.exp(-0.3 / tau), rel=1e-12)
