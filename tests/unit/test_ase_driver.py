"""The ASE surface-hopping driver: one trajectory of the engine behind ASE's dynamics API."""

import io

import ase.io
import numpy as np
import pytest
import torch
from ase import Atoms, units
from ase.build import molecule
from ase.calculators.calculator import Calculator, all_changes

from fusionff.calculator import FusionCalculator
from fusionff.dynamics import (
    ASECalculatorStructure,
    SurfaceHoppingConfig,
    initial_state,
    run,
    trajectory_seeds,
)
from fusionff.dynamics.ase_driver import HopEvent, SurfaceHopping
from fusionff.dynamics.diabatic import two_state_adiabatic
from fusionff.dynamics.ml import MLElectronicStructure
from fusionff.dynamics.spread import CommitteeLimits, spread_reason
from tests.conftest import small_model
from tests.unit.test_potential_diabatic import tiny_model

BONDS = ((0, 1), (1, 2), (0, 2))


class CoupledTriangle(Calculator):
    """Two diabatic harmonic triangles of three atoms (eV, Angstrom), coupled where the bonds
    0-1 and 1-2 are about equal: h11 = sum_b 10 (r_b - 1.2)^2, h22 = 0.2 + sum_b 10
    (r_b - 1.3)^2, h12 = 0.15 exp(-((r01 - r12)/0.4)^2). Adiabatic energies, forces and NACs of
    both states in closed form; ``state`` picks the surface of ``energy``/``forces`` like
    FusionCalculator."""

    implemented_properties = ["energy", "free_energy", "forces", "energies", "state_forces"]
    n_states = 2

    def __init__(self, state=0, nacs=True):
        super().__init__()
        self.nacs = nacs
        self.n_calculations = 0
        self._state = state

    @property
    def state(self):
        return self._state

    @state.setter
    def state(self, value):
        self._state = int(value)
        if "energies" in self.results:
            self.results["energy"] = self.results["free_energy"] = self.results["energies"][value]
            self.results["forces"] = self.results["state_forces"][value]

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        self.n_calculations += 1
        x = self.atoms.positions
        r = np.array([np.linalg.norm(x[i] - x[j]) for i, j in BONDS])
        dr = np.zeros((3, 3, 3))  # d r_b / d x_(atom, axis)
        for b, (i, j) in enumerate(BONDS):
            unit = (x[i] - x[j]) / r[b]
            dr[b, i], dr[b, j] = unit, -unit
        h11 = (10.0 * (r - 1.2) ** 2).sum()
        h22 = 0.2 + (10.0 * (r - 1.3) ** 2).sum()
        h12 = 0.15 * np.exp(-(((r[0] - r[1]) / 0.4) ** 2))
        dh11 = np.einsum("b,bna->na", 20.0 * (r - 1.2), dr)
        dh22 = np.einsum("b,bna->na", 20.0 * (r - 1.3), dr)
        dh12 = -2.0 * (r[0] - r[1]) / 0.4**2 * h12 * (dr[0] - dr[1])
        values = [torch.tensor(np.asarray(h)[None]) for h in (h11, h22, h12, dh11, dh22, dh12)]
        energies, gradients, nacs = (t[0].numpy() for t in two_state_adiabatic(*values))
        self.results = {"energies": energies, "state_forces": -gradients}
        if self.nacs:
            self.results["nacs"] = nacs
        self.state = self._state


def _triangle(seed=0):
    """A displaced triangle (C, H, O) with random momenta (ASE units), zero total momentum."""
    rng = np.random.default_rng(seed)
    side = 1.2
    atoms = Atoms(
        "CHO",
        positions=[[0.0, 0.0, 0.0], [side, 0.0, 0.0], [side / 2, side * 3**0.5 / 2, 0.0]],
    )
    atoms.positions += 0.12 * rng.normal(size=(3, 3))
    velocities = 0.03 * rng.normal(size=(3, 3))  # Angstrom/fs
    velocities -= atoms.get_masses() @ velocities / atoms.get_masses().sum()
    atoms.set_velocities(velocities / units.fs)
    return atoms


def _engine_reference(atoms, structure, algorithm, n_steps, seed=0, **options):
    """Positions, active states and populations of the same trajectory run by the engine."""
    config = SurfaceHoppingConfig(dt=0.1, algorithm=algorithm, **options)
    positions = torch.tensor(atoms.positions, dtype=torch.float64)[None]
    velocities = torch.tensor(atoms.get_velocities() * units.fs, dtype=torch.float64)[None]
    state = initial_state(
        structure,
        positions,
        velocities,
        torch.tensor(atoms.get_masses(), dtype=torch.float64),
        active=torch.tensor([1]),
        seeds=trajectory_seeds(seed, torch.arange(1)),
        config=config,
    )
    frames = []
    run(state, structure, config, n_steps, observer=lambda s: frames.append(s), final=False)
    return frames


@pytest.mark.parametrize("algorithm", ["fssh", "kappa-tsh", "lz"])
def test_driver_trajectory_equals_engine_run(algorithm):
    """Step by step, the ASE driver's atoms follow the engine's batch-of-one run with the same
    seed and settings (positions to 1e-12 Angstrom, identical active states and populations):
    the driver runs the engine's step, hops included."""
    n_steps = 150
    atoms = _triangle(seed=4)
    reference = _engine_reference(
        atoms.copy(),
        ASECalculatorStructure(CoupledTriangle(), atoms, 2, provides_nacs=True),
        algorithm,
        n_steps,
    )
    atoms.calc = CoupledTriangle(state=1)
    dyn = SurfaceHopping(atoms, timestep=0.1 * units.fs, state=1, algorithm=algorithm, seed=0)
    seen = []
    dyn.attach(
        lambda: seen.append(
            (atoms.positions.copy(), atoms.get_velocities() * units.fs, dyn.active_state)
        )
    )
    dyn.run(n_steps)
    assert len(seen) == n_steps + 1
    for (positions, velocities, active), expected in zip(seen[1:], reference, strict=True):
        np.testing.assert_allclose(positions, expected.positions[0].numpy(), rtol=0, atol=1e-12)
        np.testing.assert_allclose(velocities, expected.velocities[0].numpy(), atol=1e-12)
        assert active == int(expected.active[0])
    np.testing.assert_allclose(dyn.populations, reference[-1].populations[0].numpy(), atol=1e-12)
    assert len(dyn.hops) == int(reference[-1].n_hops[0]) > 0  # the comparison covers hops
    assert all(isinstance(h, HopEvent) and h.source != h.target for h in dyn.hops)


def test_total_energy_is_conserved_through_hops_and_atoms_see_the_active_surface():
    """Kinetic energy of atoms plus the calculator's energy (the active state, switched at every
    hop) stays within 2 meV of its start over 30 fs with hops; the calculator's surface is the
    driver's active state after every step, and no step calls the calculator twice."""
    atoms = _triangle(seed=1)
    calc = CoupledTriangle(state=1)
    atoms.calc = calc
    dyn = SurfaceHopping(atoms, timestep=0.05 * units.fs, state=1, algorithm="fssh", seed=3)
    start = atoms.get_kinetic_energy() + atoms.get_potential_energy()
    drift, surfaces = [], []

    def observe():
        drift.append(atoms.get_kinetic_energy() + atoms.get_potential_energy() - start)
        surfaces.append((calc.state, dyn.active_state))

    dyn.attach(observe)
    before = calc.n_calculations
    dyn.run(600)
    assert calc.n_calculations - before == 600
    assert len(dyn.hops) > 0
    assert max(abs(d) for d in drift) < 2e-3
    assert all(a == b for a, b in surfaces)
    assert abs(dyn.get_total_energy() - start) < 2e-3


def test_trajectory_file_logfile_and_observers(tmp_path):
    """A trajectory file holds the start and one frame per ``loginterval`` steps with the
    active state's energy; the log has a header and a line per frame; observers attached with
    an interval are called at its multiples."""
    atoms = _triangle()
    atoms.calc = CoupledTriangle(state=1)
    log = io.StringIO()
    path = tmp_path / "sh.traj"
    dyn = SurfaceHopping(
        atoms,
        0.1 * units.fs,
        state=1,
        algorithm="fssh",
        trajectory=str(path),
        logfile=log,
        loginterval=2,
    )
    calls, expected_energies = [], []
    dyn.attach(lambda: calls.append(dyn.nsteps), interval=5)
    dyn.attach(lambda: expected_energies.append(dyn.energies[dyn.active_state]), interval=2)
    dyn.run(20)
    frames = ase.io.read(path, ":")
    assert len(frames) == 11
    np.testing.assert_allclose(frames[-1].positions, atoms.positions)
    np.testing.assert_allclose([f.get_potential_energy() for f in frames], expected_energies)
    assert calls == [0, 5, 10, 15, 20]
    lines = log.getvalue().splitlines()
    assert lines[0].split() == ["Time[fs]", "State", "E0[eV]", "E1[eV]", "Ekin[eV]", "Etot[eV]"]
    assert len(lines) == 12
    last = lines[-1].split()
    assert float(last[0]) == pytest.approx(2.0) and int(last[1]) == dyn.active_state


def test_fusion_calculator_driver_follows_batched_ml_engine():
    """With FusionCalculator (a small random float64 model) the driver reproduces the engine run
    on the batched MLElectronicStructure of the same model (kappa-TSH, 10 steps)."""
    model = small_model(fusion=True, n_states=2)
    atoms = Atoms("CH2O", positions=[[0, 0, 0], [1.1, 0, 0], [-0.4, 1.0, 0], [0.0, -0.4, 1.1]])
    rng = np.random.default_rng(0)
    atoms.set_velocities(0.01 * rng.normal(size=(4, 3)) / units.fs)
    reference = _engine_reference(
        atoms.copy(), MLElectronicStructure(model, atoms.numbers, "cpu"), "kappa-tsh", 10
    )
    atoms.calc = FusionCalculator(model, state=1, device="cpu")
    dyn = SurfaceHopping(atoms, 0.1 * units.fs, state=1, algorithm="kappa-tsh")
    dyn.run(10)
    np.testing.assert_allclose(atoms.positions, reference[-1].positions[0].numpy(), atol=1e-10)
    assert dyn.active_state == int(reference[-1].active[0])


def test_invalid_arguments_are_errors():
    """Unknown engine options, a dt option, FSSH without NACs, a state out of range and atoms
    changed behind the driver's back are errors."""
    atoms = _triangle()
    atoms.calc = CoupledTriangle()
    with pytest.raises(ValueError, match="unknown surface-hopping option"):
        SurfaceHopping(atoms, substeps=3)
    with pytest.raises(TypeError, match="timestep"):
        SurfaceHopping(atoms, dt=0.5)
    with pytest.raises(ValueError, match="state 2 out of range"):
        SurfaceHopping(atoms, state=2)
    atoms.calc = CoupledTriangle(nacs=False)
    with pytest.raises(ValueError, match="needs NACs"):
        SurfaceHopping(atoms, algorithm="fssh")
    dyn = SurfaceHopping(atoms, algorithm="kappa-tsh")
    dyn.run(2)
    atoms.positions[0, 0] += 0.01
    with pytest.raises(ValueError, match="changed outside"):
        dyn.run(1)


def test_flagged_trajectory_stops_the_run_with_its_status():
    """A trajectory the engine flags (here ENERGY_DRIFT at a tiny threshold) raises, naming the
    status, instead of running on."""
    atoms = _triangle(seed=4)
    atoms.calc = CoupledTriangle(state=1)
    dyn = SurfaceHopping(atoms, 0.5 * units.fs, algorithm="fssh", max_energy_drift=1e-9)
    with pytest.raises(RuntimeError, match="ENERGY_DRIFT"):
        dyn.run(20)


def _committee_ethylene():
    """Ethylene with small random velocities on a committee of two tiny adiabatic models."""
    models = [tiny_model(2, head="adiabatic", seed=seed) for seed in (0, 1)]
    atoms = molecule("C2H4")
    rng = np.random.default_rng(1)
    atoms.set_velocities(0.02 * rng.normal(size=(len(atoms), 3)) / units.fs)
    return models, atoms


@pytest.mark.parametrize("action", ["flag", "stop"])
def test_committee_limits_flag_or_stop_like_the_engine(action):
    """With a committee FusionCalculator the driver takes the run input's committee limits:
    a force limit between the start's spread and the largest along the engine's run flags the
    trajectory at the same step and with the same reason as the engine's batched committee;
    with action flag (a warning) it runs on along the same path, with stop it raises."""
    models, atoms = _committee_ethylene()
    n_steps = 12
    engine = MLElectronicStructure(models, atoms.numbers, "cpu")
    free = _engine_reference(atoms.copy(), engine, "kappa-tsh", n_steps)
    spread = [float(s.force_spread[0, int(s.active[0])]) for s in free]
    start = engine.evaluate(torch.tensor(atoms.positions, dtype=torch.float64)[None])
    limit = 0.5 * (float(start.force_spread[0, 1]) + max(spread))
    first = next(k for k, value in enumerate(spread) if value > limit)
    committee = {"max_force_std": limit, "action": action}
    limits = CommitteeLimits(max_force_std=limit, action=action)
    reference = _engine_reference(atoms.copy(), engine, "kappa-tsh", n_steps, committee=limits)
    flagged = reference[first]
    assert float(flagged.flag_time[0]) == pytest.approx(0.1 * (first + 1))
    reason = spread_reason(
        flagged.energy_spread[0].tolist(), spread[first], 1, float(flagged.flag_time[0])
    )
    atoms.calc = FusionCalculator(models, state=1, device="cpu")
    dyn = SurfaceHopping(atoms, 0.1 * units.fs, algorithm="kappa-tsh", committee=committee)
    assert dyn.flag is None
    if action == "stop":
        with pytest.raises(RuntimeError, match="COMMITTEE_SPREAD") as err:
            dyn.run(n_steps)
        assert reason in str(err.value) and dyn.nsteps == first
    else:
        with pytest.warns(RuntimeWarning, match="committee spread above the limits"):
            dyn.run(n_steps)
        np.testing.assert_allclose(atoms.positions, free[-1].positions[0].numpy(), atol=1e-10)
    assert dyn.flag == reason and dyn.flag_time == pytest.approx(0.1 * (first + 1))


def test_committee_limits_need_a_committee_calculator():
    """Committee limits on a calculator without energies_std/forces_std are an error naming
    the key; a malformed committee option names its key too."""
    atoms = _triangle()
    atoms.calc = CoupledTriangle()
    with pytest.raises(ValueError, match="committee: .*energies_std"):
        SurfaceHopping(atoms, committee={"max_force_std": 1.0})
    with pytest.raises(ValueError, match="committee.max_force_sd"):
        SurfaceHopping(atoms, committee={"max_force_sd": 1.0})
