"""Hop selection, momentum adjustment, Landau-Zener probabilities and kappa couplings."""

import math

import pytest
import torch

from fusionff.dynamics.couplings import curvature_couplings, gap_rates, state_gaps
from fusionff.dynamics.hopping import (
    adjust_momentum,
    choose_targets,
    landau_zener_probabilities,
    rescale_direction,
)
from fusionff.dynamics.integrator import kinetic_energy
from fusionff.units import AMU_A2_PER_FS2_EV, HBAR_EV_FS

G = torch.Generator().manual_seed(0)


def _random_system(b=20, n=4):
    velocities = 0.05 * torch.randn(b, n, 3, dtype=torch.float64, generator=G)
    masses = 1.0 + 15.0 * torch.rand(b, n, dtype=torch.float64, generator=G)
    direction = torch.randn(b, n, 3, dtype=torch.float64, generator=G)
    return velocities, masses, direction


def test_allowed_hop_conserves_energy_along_direction():
    """After an allowed hop the kinetic energy changes by -(V_j - V_k), and the velocity only
    changes along u/m (the smaller of the two roots is taken)."""
    v, m, u = _random_system()
    kinetic = kinetic_energy(v, m)
    # downward hops are always allowed; upward ones only with enough energy along u
    change = -0.5 * kinetic * torch.rand(20, generator=G, dtype=torch.float64)
    a = 0.5 * AMU_A2_PER_FS2_EV * (u * u / m[..., None]).sum(dim=(1, 2))
    b = AMU_A2_PER_FS2_EV * (v * u).sum(dim=(1, 2))
    change[::2] = 0.9 * b[::2] ** 2 / (4 * a[::2])
    new_v, allowed = adjust_momentum(v, m, u, change, torch.zeros_like(v), False)
    assert allowed.all()
    _, refused = adjust_momentum(v, m, u, 1.1 * b**2 / (4 * a), torch.zeros_like(v), False)
    assert not refused.any()
    torch.testing.assert_close(kinetic_energy(new_v, m), kinetic - change)
    delta = (new_v - v) * m[..., None]
    ratio = delta / u
    torch.testing.assert_close(ratio, ratio[:, :1, :1].expand_as(ratio))
    # the smaller root: tiny energy change -> tiny velocity change
    tiny_v, _ = adjust_momentum(
        v, m, u, 1e-9 * torch.ones(20, dtype=torch.float64), torch.zeros_like(v), False
    )
    assert (tiny_v - v).abs().max() < 1e-6


def test_frustrated_hop_keeps_velocity_or_reverses_component():
    """Without enough energy along u the hop is refused; the velocity is unchanged, or with
    the Jasper-Truhlar rule its component along u is reversed at constant kinetic energy when
    (F_target . u)(v . u) < 0."""
    v, m, u = _random_system()
    kinetic = kinetic_energy(v, m)
    change = 2.0 * kinetic + 1.0
    kept, allowed = adjust_momentum(v, m, u, change, torch.zeros_like(v), False)
    assert not allowed.any()
    assert torch.equal(kept, v)
    vu = (v * u).sum(dim=(1, 2))
    force = -vu[:, None, None] * u  # opposes v . u everywhere: reversal for all
    reversed_, allowed = adjust_momentum(v, m, u, change, force, True)
    assert not allowed.any()
    torch.testing.assert_close(kinetic_energy(reversed_, m), kinetic)
    assert torch.all((reversed_ * u).sum(dim=(1, 2)) * vu <= 0)
    same, _ = adjust_momentum(v, m, u, change, -force, True)
    assert torch.equal(same, v)


def test_rescale_directions():
    """'nac' takes d_kj, 'gradient' F_j - F_k, 'velocity' m v; 'auto' is the NAC when known."""
    b, s, n = 3, 3, 2
    v, m, _ = _random_system(b, n)
    forces = torch.randn(b, s, n, 3, dtype=torch.float64, generator=G)
    nacs = torch.randn(b, s, s, n, 3, dtype=torch.float64, generator=G)
    k, j = torch.tensor([0, 1, 2]), torch.tensor([1, 2, 0])
    rows = torch.arange(b)
    assert torch.equal(rescale_direction("nac", v, m, forces, nacs, k, j), nacs[rows, k, j])
    assert torch.equal(rescale_direction("auto", v, m, forces, nacs, k, j), nacs[rows, k, j])
    gradient = forces[rows, j] - forces[rows, k]
    assert torch.equal(rescale_direction("auto", v, m, forces, None, k, j), gradient)
    assert torch.equal(rescale_direction("velocity", v, m, forces, None, k, j), m[..., None] * v)
    with pytest.raises(ValueError):
        rescale_direction("nac", v, m, forces, None, k, j)


def test_choose_targets_stacks_probabilities_in_state_order():
    """The random number selects the state whose probability interval contains it."""
    p = torch.tensor([[0.0, 0.2, 0.3]] * 4, dtype=torch.float64)
    active = torch.zeros(4, dtype=torch.int64)
    xi = torch.tensor([0.1, 0.25, 0.49, 0.6], dtype=torch.float64)
    assert choose_targets(p, active, xi).tolist() == [1, 2, 2, 0]
    # probabilities summing above one are normalised: always a hop
    big = torch.tensor([[0.0, 1.5, 1.5]], dtype=torch.float64)
    assert choose_targets(big, active[:1], torch.tensor([0.99])).item() == 2


def test_landau_zener_probability_at_gap_minimum():
    """P = exp(-(pi/2hbar) sqrt(Delta^3 / Delta'')) at a local minimum of the gap, else 0."""
    dt = 0.5
    energies = [torch.tensor([[0.0, e]], dtype=torch.float64) for e in (0.30, 0.20, 0.26)]
    gaps = torch.stack([state_gaps(e) for e in energies], dim=1)
    p = landau_zener_probabilities(gaps, torch.tensor([0]), dt)
    curvature = (0.30 - 2 * 0.20 + 0.26) / dt**2
    expected = math.exp(-(math.pi / (2 * HBAR_EV_FS)) * math.sqrt(0.2**3 / curvature))
    assert p[0, 1].item() == pytest.approx(expected, rel=1e-12)
    assert p[0, 0].item() == 0
    monotonic = torch.stack(
        [state_gaps(e) for e in reversed(energies[:2])] + [state_gaps(energies[0])], dim=1
    )
    assert landau_zener_probabilities(monotonic, torch.tensor([0]), dt).sum() == 0


def test_curvature_coupling_equals_exact_coupling_for_linear_crossing():
    """For H = [[a t/2, V], [V, -a t/2]] the kappa coupling at the crossing, 1/2 sqrt(D''/D),
    equals the exact time-derivative coupling a/(4V); the gap rate from forces equals dD/dt."""
    a, coupling, dt = 0.8, 0.05, 1e-3
    times = torch.tensor([-dt, 0.0, dt], dtype=torch.float64)
    gap = torch.sqrt((a * times) ** 2 + 4 * coupling**2)
    energies = torch.stack([-gap / 2, gap / 2], dim=1)
    # 1D coordinate x = t with unit velocity: the forces are -dE/dx
    slope = a**2 * times / gap
    forces = torch.stack([slope / 2, -slope / 2], dim=1)[:, :, None, None].expand(3, 2, 1, 3)
    forces = forces * torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)
    velocity = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64).expand(3, 1, 3)
    rates = gap_rates(energies, forces, velocity)
    torch.testing.assert_close(rates[:, 1, 0], slope)
    sigma = curvature_couplings(state_gaps(energies)[1:2], rates[0:1], rates[2:3], 2 * dt, 1.0)
    assert sigma[0, 0, 1].item() == pytest.approx(a / (4 * coupling), rel=1e-4)
    assert sigma[0, 1, 0].item() == pytest.approx(-a / (4 * coupling), rel=1e-4)
    # the same gap above the threshold gives no coupling
    off = curvature_couplings(state_gaps(energies)[1:2], rates[0:1], rates[2:3], 2 * dt, 0.05)
    assert torch.all(off == 0)
