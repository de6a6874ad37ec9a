"""The surface-hopping engine on a molecule-like analytic two-state model of three atoms."""

import dataclasses

import pytest
import torch

from fusionff.dynamics import (
    StateOutputs,
    Status,
    SurfaceHoppingConfig,
    TullyModel,
    initial_state,
    run,
    step,
    total_energy,
    trajectory_seeds,
)
from fusionff.dynamics.diabatic import two_state_adiabatic
from fusionff.dynamics.tully import TULLY_MASS_AU
from fusionff.units import AU_VELOCITY_A_PER_FS, BOHR_ANGSTROM

BONDS = ((0, 1), (1, 2), (0, 2))
MASSES = torch.tensor([12.0, 1.0, 16.0], dtype=torch.float64)


class CoupledTriatomic:
    """Two diabatic harmonic triangles of three atoms (eV, Angstrom), coupled along the
    asymmetric stretch: h11 = sum_bonds k/2 (r - r0)^2, h22 = offset + sum_bonds k2/2
    (r - r0 - shift)^2, h12 = c exp(-((r01 - r12)/w)^2). Gradients by autograd, adiabatic
    states and NACs in closed form."""

    n_states = 2

    def __init__(
        self, coupling=0.15, width=0.4, offset=0.2, shift=0.1, k2=20.0, provides_nacs=True
    ):
        self.coupling, self.width, self.offset, self.shift, self.k2 = (
            coupling,
            width,
            offset,
            shift,
            k2,
        )
        self.provides_nacs = provides_nacs

    def diabatic(self, positions):
        r = torch.stack([(positions[:, i] - positions[:, j]).norm(dim=-1) for i, j in BONDS], 1)
        h11 = (0.5 * 20.0 * (r - 1.2) ** 2).sum(1)
        h22 = self.offset + (0.5 * self.k2 * (r - 1.2 - self.shift) ** 2).sum(1)
        h12 = self.coupling * torch.exp(-(((r[:, 0] - r[:, 1]) / self.width) ** 2))
        return h11, h22, h12

    def evaluate(self, positions):
        with torch.enable_grad():
            x = positions.detach().requires_grad_(True)
            h = self.diabatic(x)
            grads = [torch.autograd.grad(t.sum(), x, retain_graph=True)[0] for t in h]
        energies, gradients, nacs = two_state_adiabatic(*(t.detach() for t in h), *grads)
        return StateOutputs(energies, -gradients, nacs if self.provides_nacs else None)


def _initial(structure, config, b, seed=0, active=1, scale=1.0):
    """B displaced and moving triangles (per-trajectory random, reproducible)."""
    g = torch.Generator().manual_seed(seed)
    side = 1.2
    triangle = torch.tensor(
        [[0.0, 0.0, 0.0], [side, 0.0, 0.0], [side / 2, side * 3**0.5 / 2, 0.0]],
        dtype=torch.float64,
    )
    positions = triangle + 0.12 * scale * torch.randn(b, 3, 3, dtype=torch.float64, generator=g)
    velocities = 0.02 * scale * torch.randn(b, 3, 3, dtype=torch.float64, generator=g)
    velocities -= (MASSES[:, None] * velocities).sum(1, keepdim=True) / MASSES.sum()
    return initial_state(
        structure,
        positions,
        velocities,
        MASSES,
        active=torch.full((b,), active, dtype=torch.int64),
        seeds=trajectory_seeds(seed, torch.arange(b)),
        config=config,
    )


def _max_energy_error(state, structure, config, n_steps):
    worst = torch.zeros(state.batch_size, dtype=torch.float64)
    for _ in range(n_steps):
        state = step(state, structure, config)
        worst = torch.maximum(worst, (total_energy(state) - state.reference_energy).abs())
    return worst, state


def test_adiabatic_energy_error_is_small_and_second_order():
    """Without hops (uncoupled, 2 eV apart), velocity Verlet keeps the total energy within 2 meV
    over 20 fs, and halving dt divides the error by about four."""
    structure = CoupledTriatomic(coupling=0.0, offset=2.0)
    errors = []
    for dt in (0.1, 0.05):
        config = SurfaceHoppingConfig(dt=dt, n_substeps=2)
        state = _initial(structure, config, 4, active=0)
        worst, state = _max_energy_error(state, structure, config, int(round(20 / dt)))
        assert torch.all(state.n_hops == 0)
        errors.append(worst.max().item())
    assert errors[0] < 2e-3
    assert 3.0 < errors[0] / errors[1] < 5.0


@pytest.mark.parametrize("rescale", ["nac", "gradient", "velocity"])
def test_energy_is_conserved_through_hops(rescale):
    """Hopping trajectories (FSSH, decoherence on) keep their total energy within 2 meV over
    20 fs through avoided crossings (gap 0.3 eV), for every momentum-adjustment direction, and
    they do hop (the hop itself conserves energy exactly, see test_dynamics_hopping)."""
    structure = CoupledTriatomic()
    config = SurfaceHoppingConfig(dt=0.05, rescale=rescale, decoherence=True)
    state = _initial(structure, config, 8)
    worst, state = _max_energy_error(state, structure, config, 400)
    assert state.n_hops.sum() > 0
    assert worst.max().item() < 2e-3
    assert torch.all(state.status == Status.RUNNING)
    torch.testing.assert_close(state.populations.sum(1), torch.ones(8, dtype=torch.float64))


def test_trajectory_does_not_depend_on_batch():
    """A trajectory run alone equals the same trajectory (same seed and start) run among six
    others, even though neighbours stop early and are masked out."""
    structure = CoupledTriatomic()
    config = SurfaceHoppingConfig(dt=0.1)
    batch = _initial(structure, config, 7, seed=5)
    alone = batch.select(torch.tensor([3]))

    def stop(state):  # stops some neighbours early, at different times
        return (state.time > 10.0) & (state.seeds % 3 == 0)

    batch = run(batch, structure, config, 200, stop=stop)
    alone = run(alone, structure, config, 200, stop=stop)
    assert batch.n_hops[3] > 0, "choose a trajectory that hops for a meaningful test"
    assert (batch.status == Status.STOPPED).any()
    for field in dataclasses.fields(alone):
        mine, theirs = getattr(alone, field.name), getattr(batch, field.name)
        if mine is not None:
            torch.testing.assert_close(mine[0], theirs[3], rtol=1e-10, atol=1e-12)
    assert torch.equal(alone.active[0], batch.active[3])


class BlowsUp(CoupledTriatomic):
    """Returns NaN energies once atom 1 is more than 3 Angstrom from atom 0."""

    def evaluate(self, positions):
        out = super().evaluate(positions)
        far = (positions[:, 1] - positions[:, 0]).norm(dim=-1) > 3.0
        out.energies[far] = float("nan")
        return out


def test_potential_failure_is_flagged_while_others_finish():
    """A trajectory whose potential returns NaN at a finite geometry is flagged
    POTENTIAL_FAILED and frozen; the others run to the end with the same results as without
    it."""
    structure = BlowsUp()
    config = SurfaceHoppingConfig(dt=0.1, max_energy_drift=1e6)
    state = _initial(structure, config, 4, seed=2)
    state.velocities[1, 1] = torch.tensor([3.0, 0.0, 0.0], dtype=torch.float64)  # H flies off
    reference = run(state.select(torch.tensor([0, 2, 3])), structure, config, 100)
    final = run(state, structure, config, 100)
    expected = [Status.TIME_LIMIT, Status.POTENTIAL_FAILED] + [Status.TIME_LIMIT] * 2
    assert final.status.tolist() == expected
    assert 0 < final.step[1] < 100 and torch.all(final.step[[0, 2, 3]] == 100)
    torch.testing.assert_close(final.positions[[0, 2, 3]], reference.positions)


def test_non_finite_geometry_is_flagged_blew_up():
    """A trajectory whose positions become non-finite (here an infinite velocity) is BLEW_UP,
    not POTENTIAL_FAILED, even though its energies are non-finite too; the others run on."""
    structure = CoupledTriatomic(coupling=0.0, offset=2.0)
    config = SurfaceHoppingConfig(dt=0.1, max_energy_drift=1e6)
    state = _initial(structure, config, 3, seed=2)
    state.velocities[2, 0, 0] = float("inf")
    final = run(state, structure, config, 5)
    assert final.status.tolist() == [Status.TIME_LIMIT, Status.TIME_LIMIT, Status.BLEW_UP]


def _at_rest(structure, positions, config):
    """Trajectories at ``positions`` (B, 3, 3) Angstrom with zero velocities on S0, seeds 0."""
    zeros = torch.zeros(positions.shape[0], dtype=torch.int64)
    return initial_state(
        structure, positions, torch.zeros_like(positions), MASSES, zeros, zeros, config
    )


def test_energy_drift_is_flagged_and_stops_the_trajectory():
    """A trajectory whose total energy drifts beyond the threshold (a time step far too long
    for its vibration) is flagged ENERGY_DRIFT and stopped; one at rest at the minimum runs on."""
    structure = CoupledTriatomic(coupling=0.0, offset=2.0)
    config = SurfaceHoppingConfig(dt=3.0, max_energy_drift=0.05)
    moving = _initial(structure, config, 1, active=0)
    triangle = torch.tensor(
        [[[0.0, 0.0, 0.0], [1.2, 0.0, 0.0], [0.6, 1.2 * 3**0.5 / 2, 0.0]]], dtype=torch.float64
    )
    still = _at_rest(structure, triangle, config)
    final = run(moving.concatenate([moving, still]), structure, config, 50)
    assert final.status.tolist() == [Status.ENERGY_DRIFT, Status.TIME_LIMIT]
    assert final.step[0] < 50 and final.step[1] == 50


@pytest.mark.parametrize("decoherence", [False, True])
def test_kappa_never_hops_between_surfaces_two_ev_apart(decoherence):
    """kappa-TSH with energies and forces only: on two surfaces at least 2 eV apart whose gap
    is modulated by the vibration, trajectories never hop with the default 1 eV threshold (also
    with decoherence), while without the threshold the vibration alone makes couplings."""
    structure = CoupledTriatomic(coupling=0.0, offset=2.0, shift=0.0, k2=30.0, provides_nacs=False)
    config = SurfaceHoppingConfig(dt=0.1, algorithm="kappa-tsh", decoherence=decoherence)
    state = _initial(structure, config, 16, seed=4, scale=2.0)
    final = run(state, structure, config, 300)
    assert torch.all(final.n_hops == 0) and torch.all(final.n_frustrated == 0)
    assert torch.all(final.active == 1)
    assert final.gaps[..., 0, 1].min() >= 2.0
    unguarded = dataclasses.replace(config, kappa_gap_threshold=float("inf"))
    state = _initial(structure, unguarded, 16, seed=4, scale=2.0)
    largest = 0.0
    for _ in range(100):
        state = step(state, structure, unguarded)
        largest = max(largest, state.couplings.abs().max().item())
    assert largest > 0.05  # 1/fs: the spurious coupling the threshold removes


def test_config_rejects_unknown_keys_types_and_names():
    """from_dict names unknown keys and wrong types; unknown algorithms are errors, and FSSH
    needs an electronic structure with NACs."""
    assert SurfaceHoppingConfig.from_dict({"dt": 1, "algorithm": "lz"}).dt == 1
    with pytest.raises(ValueError, match="timestep"):
        SurfaceHoppingConfig.from_dict({"timestep": 0.5})
    with pytest.raises(TypeError, match="decoherence"):
        SurfaceHoppingConfig.from_dict({"decoherence": "yes"})
    with pytest.raises(ValueError, match="fssh"):
        SurfaceHoppingConfig(algorithm="afssh")
    with pytest.raises(ValueError, match="NACs"):
        _initial(CoupledTriatomic(provides_nacs=False), SurfaceHoppingConfig(), 2)


def test_run_in_chunks_equals_one_run():
    """run(..., final=False) twice (50 + 50 steps) gives the state of one 100-step run."""
    structure = CoupledTriatomic()
    config = SurfaceHoppingConfig(dt=0.1)
    start = _initial(structure, config, 3, seed=8)
    whole = run(start, structure, config, 100)
    half = run(start, structure, config, 50, final=False)
    assert torch.all(half.status == Status.RUNNING)
    chunked = run(half, structure, config, 50)
    torch.testing.assert_close(chunked.positions, whole.positions, rtol=0, atol=0)
    assert torch.equal(chunked.status, whole.status) and torch.equal(chunked.step, whole.step)


class FlippingSigns:
    """Tully's model 2 whose NACs change sign on every other call (free state phases)."""

    n_states = 2
    provides_nacs = True

    def __init__(self):
        self.model, self.calls = TullyModel("dual"), 0

    def evaluate(self, positions):
        out = self.model.evaluate(positions)
        self.calls += 1
        sign = -1.0 if self.calls % 2 else 1.0
        return StateOutputs(out.energies, out.forces, sign * out.nacs)


def test_nac_sign_alignment_recovers_smooth_couplings():
    """With align_nac_signs, FSSH on a model whose NAC signs flip at random gives the same
    amplitudes as on the smooth model, although the true coupling changes sign twice."""
    config = SurfaceHoppingConfig(dt=0.1, align_nac_signs=True)
    states = []
    for structure in (TullyModel("dual"), FlippingSigns()):
        x = torch.zeros(3, 1, 3, dtype=torch.float64)
        x[:, 0, 0] = -8.0 * BOHR_ANGSTROM
        v = torch.zeros_like(x)
        v[:, 0, 0] = torch.tensor([25.0, 30.0, 40.0]) / TULLY_MASS_AU * AU_VELOCITY_A_PER_FS
        masses = torch.tensor([TullyModel.mass_amu], dtype=torch.float64)
        state = initial_state(
            structure, x, v, masses, torch.zeros(3, dtype=torch.int64), torch.arange(3), config
        )
        states.append(run(state, structure, config, 500))
    smooth, flipped = states
    assert smooth.populations[:, 1].min() > 0.05  # transitions happened
    torch.testing.assert_close(flipped.populations, smooth.populations, rtol=0, atol=1e-10)


def test_landau_zener_has_no_amplitudes_to_decohere():
    """Asking for decoherence with Landau-Zener hopping is an error, not silently ignored."""
    with pytest.raises(ValueError, match="decohere"):
        SurfaceHoppingConfig(algorithm="lz", decoherence=True)


def test_config_module_breaks_the_engine_algorithms_cycle():
    """The settings live in their own module; the algorithms import neither it nor the engine
    (they read the settings through a protocol), and the engine re-exports the same class."""
    import ast
    import inspect

    from fusionff.dynamics import algorithms, engine, sh_config

    tree = ast.parse(inspect.getsource(algorithms))
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert not imported & {"fusionff.dynamics.engine", "fusionff.dynamics.sh_config"}
    assert engine.SurfaceHoppingConfig is sh_config.SurfaceHoppingConfig
    assert SurfaceHoppingConfig is sh_config.SurfaceHoppingConfig


def test_couplings_follow_the_velocity_changed_by_a_hop():
    """The stored FSSH coupling is sigma = v . d of the stored velocity after every step, also
    after hops and Jasper-Truhlar reversals (the next step's electronic propagation starts from
    it; a reversal flips its sign)."""
    from fusionff.dynamics.couplings import nac_couplings

    structure = CoupledTriatomic(offset=0.6)
    config = SurfaceHoppingConfig(dt=0.05, reverse_frustrated=True)
    state = _initial(structure, config, 16, seed=3, active=0)
    for _ in range(400):
        state = step(state, structure, config)
        expected = nac_couplings(state.velocities, state.nacs)
        torch.testing.assert_close(state.couplings, expected, rtol=0, atol=1e-14)
    assert state.n_hops.sum() > 0 and state.n_frustrated.sum() > 0, "no hop was tested"


class OutOfOrderReadouts:
    """Two independent per-state surfaces of the triatomic (as an adiabatic ML head has),
    E0 = sum_bonds 10 (r - 1.2)^2 and E1 = E0 + 0.5 - 5 (r01 - 1.2) eV: S1 falls below S0
    where the first bond is stretched beyond 1.3 Angstrom. No couplings."""

    n_states = 2
    provides_nacs = False

    def evaluate(self, positions):
        with torch.enable_grad():
            x = positions.detach().requires_grad_(True)
            r = torch.stack([(x[:, i] - x[:, j]).norm(dim=-1) for i, j in BONDS], 1)
            e0 = (10.0 * (r - 1.2) ** 2).sum(1)
            e1 = e0 + 0.5 - 5.0 * (r[:, 0] - 1.2)
            g0 = torch.autograd.grad(e0.sum(), x, retain_graph=True)[0]
            g1 = torch.autograd.grad(e1.sum(), x)[0]
        energies = torch.stack([e0, e1], 1).detach()
        return StateOutputs(energies, -torch.stack([g0, g1], 1), None)


@pytest.mark.parametrize("limit", [None, 0.1])
def test_states_out_of_order_are_flagged_and_stopped(limit):
    """With max_state_inversion = 0.1 eV, a trajectory started with its first bond stretched
    to 1.5 A (S1 1.0 eV below S0 there) is flagged STATE_ORDER and stopped at its first step,
    while one at rest at the minimum (S1 0.5 eV above S0) runs to the time limit; without the
    limit (None, the default) both run to the end."""
    structure = OutOfOrderReadouts()
    config = SurfaceHoppingConfig(dt=0.5, algorithm="kappa-tsh", max_state_inversion=limit)
    height = 1.2 * 3**0.5 / 2
    minimum = [[0.0, 0.0, 0.0], [1.2, 0.0, 0.0], [0.6, height, 0.0]]
    stretched = [[0.0, 0.0, 0.0], [1.5, 0.0, 0.0], [0.6, height, 0.0]]
    positions = torch.tensor([stretched, minimum], dtype=torch.float64)
    state = _at_rest(structure, positions, config)
    assert float(state.energies[0, 1] - state.energies[0, 0]) == pytest.approx(-1.0, abs=1e-9)
    final = run(state, structure, config, 20)
    if limit is None:
        assert final.status.tolist() == [Status.TIME_LIMIT, Status.TIME_LIMIT]
    else:
        assert final.status.tolist() == [Status.STATE_ORDER, Status.TIME_LIMIT]
        assert final.step.tolist() == [1, 20]


def test_max_state_inversion_must_be_positive():
    """A zero or negative max_state_inversion is refused with a message naming it."""
    with pytest.raises(ValueError, match="max_state_inversion"):
        SurfaceHoppingConfig(max_state_inversion=0.0)
