"""Initial conditions of ensembles (Wigner samples, energy window, Hessians) and the stop rule."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase import units
from ase.build import molecule
from ase.io import write

from fusionff.dynamics import StateOutputs, Status
from fusionff.dynamics.initial_conditions import (
    read_starts,
    reference_hessian,
    sample_molecules,
    tully_wave_packet,
)
from fusionff.dynamics.recorder import StopTracker
from fusionff.dynamics.rng import trajectory_seeds
from fusionff.dynamics.run_config import InitialConditionsSpec, StopSpec, WignerSpec
from fusionff.dynamics.tully import TullyModel
from fusionff.units import BOHR_ANGSTROM

CPU = torch.device("cpu")


class Harmonic:
    """Two states: E0 = k/2 |x - x0|^2 and E1 = E0 + gap + slope * (z of atom 0 - its z0)."""

    n_states = 2
    provides_nacs = False

    def __init__(self, x0: np.ndarray, k: float = 30.0, gap: float = 4.0, slope: float = 20.0):
        self.x0 = torch.as_tensor(x0)
        self.k, self.gap, self.slope = k, gap, slope

    def evaluate(self, positions: torch.Tensor) -> StateOutputs:
        d = positions - self.x0
        e0 = 0.5 * self.k * (d * d).sum((1, 2))
        e1 = e0 + self.gap + self.slope * d[:, 0, 2]
        f0 = -self.k * d
        f1 = f0.clone()
        f1[:, 0, 2] -= self.slope
        return StateOutputs(energies=torch.stack([e0, e1], 1), forces=torch.stack([f0, f1], 1))


class Untouchable(Harmonic):
    def evaluate(self, positions):
        raise AssertionError("the cached Hessian should have been used")


def test_computed_hessian_is_exact_for_a_harmonic_model_and_cached(tmp_path):
    """'compute' differentiates the S0 forces: k times the identity for an isotropic harmonic
    model; the result is cached and read back without new evaluations, unless it was computed
    for another potential."""
    atoms = molecule("C2H4")
    spec = WignerSpec(temperature=300, hessian="compute")
    cache = tmp_path / "hessian.npz"
    hessian = reference_hessian(spec, atoms, Harmonic(atoms.positions), CPU, cache, "k=30")
    np.testing.assert_allclose(hessian, 30.0 * np.eye(18), atol=1e-8)
    assert cache.exists()
    again = reference_hessian(spec, atoms, Untouchable(atoms.positions), CPU, cache, "k=30")
    np.testing.assert_array_equal(again, hessian)
    # another potential: the cache is stale and recomputed
    other = reference_hessian(spec, atoms, Harmonic(atoms.positions, k=10.0), CPU, cache, "k=10")
    np.testing.assert_allclose(other, 10.0 * np.eye(18), atol=1e-8)


def test_hessian_file_at_other_positions_is_rejected(tmp_path):
    """A Hessian file whose positions differ from the structure's is an error."""
    atoms = molecule("C2H4")
    path = tmp_path / "h.npz"
    np.savez(path, hessian=np.eye(18), positions=atoms.positions + 0.1, numbers=atoms.numbers)
    spec = WignerSpec(temperature=300, hessian=str(path))
    with pytest.raises(ValueError, match="other positions"):
        reference_hessian(spec, atoms, Harmonic(atoms.positions), CPU, tmp_path / "c.npz")


def test_samples_depend_on_the_trajectory_not_the_batch():
    """Trajectory i gets the same sample alone or in a batch, with an energy window too; every
    kept sample has its gap inside the window and some needed more than one draw."""
    atoms = molecule("C2H4")
    es = Harmonic(atoms.positions)
    spec = InitialConditionsSpec(
        state=1,
        wigner=WignerSpec(temperature=300, hessian="unused"),
        energy_window=[3.9, 4.1],
    )
    hessian = 30.0 * np.eye(18)
    seeds = trajectory_seeds(7, torch.arange(6))
    batch = sample_molecules(spec, atoms, hessian, es, seeds, CPU)
    alone = sample_molecules(spec, atoms, hessian, es, seeds[4:5], CPU)
    assert torch.equal(batch.positions[4], alone.positions[0])
    assert torch.equal(batch.velocities[4], alone.velocities[0])
    assert torch.all((batch.gaps >= 3.9) & (batch.gaps <= 4.1))
    assert max(batch.attempts) > 1
    assert torch.all(batch.active == 1)
    assert not torch.equal(batch.positions[0], batch.positions[1])


def test_energy_window_that_cannot_be_met_says_so():
    """A window no sample reaches raises after max_attempts draws."""
    atoms = molecule("C2H4")
    spec = InitialConditionsSpec(
        state=1,
        wigner=WignerSpec(temperature=0, hessian="unused"),
        energy_window=[10.0, 11.0],
        max_attempts=5,
    )
    with pytest.raises(ValueError, match="5 samples drawn"):
        sample_molecules(
            spec, atoms, 30.0 * np.eye(18), Harmonic(atoms.positions), torch.arange(2), CPU
        )


def _ethylene_frames(n: int) -> list:
    """n displaced ethylene frames with random velocities (momenta set), ASE units."""
    rng = np.random.default_rng(3)
    frames = []
    for _ in range(n):
        atoms = molecule("C2H4")
        atoms.positions += 0.05 * rng.normal(size=atoms.positions.shape)
        atoms.set_velocities(0.01 * rng.normal(size=atoms.positions.shape) / units.fs)
        frames.append(atoms)
    return frames


def test_starts_from_an_extended_xyz_file(tmp_path):
    """Trajectory i starts from frame i of an extended XYZ file: positions (Angstrom) and
    velocities (from the momenta, in Angstrom/fs) as written, to the file's 8 decimals; the
    gap E1 - E0 is that of the structure at the start."""
    frames = _ethylene_frames(4)
    write(tmp_path / "starts.extxyz", frames)
    atoms = molecule("C2H4")
    es = Harmonic(atoms.positions)
    spec = InitialConditionsSpec(state=1, file=str(tmp_path / "starts.extxyz"))
    start = read_starts(spec, atoms, es, [1, 3], CPU)
    for row, i in enumerate([1, 3]):
        np.testing.assert_allclose(start.positions[row].numpy(), frames[i].positions, atol=1e-7)
        v = frames[i].get_velocities() * units.fs
        np.testing.assert_allclose(start.velocities[row].numpy(), v, atol=1e-7)
    gaps = es.evaluate(start.positions).energies
    assert torch.allclose(start.gaps, gaps[:, 1] - gaps[:, 0])
    assert torch.all(start.active == 1) and start.attempts == [1, 1]


def test_bad_start_files_are_named(tmp_path):
    """Too few frames, other atoms, missing velocities, a missing file and a run directory
    without the trajectory are each reported with the file and the frame or trajectory."""
    atoms = molecule("C2H4")
    es = Harmonic(atoms.positions)
    frames = _ethylene_frames(2)
    write(tmp_path / "two.extxyz", frames)
    spec = InitialConditionsSpec(state=1, file=str(tmp_path / "two.extxyz"))
    with pytest.raises(ValueError, match="two.extxyz has 2 frames; trajectory 2"):
        read_starts(spec, atoms, es, [0, 2], CPU)
    with pytest.raises(ValueError, match="frame 0: atoms .* do not match"):
        read_starts(spec, molecule("CH4"), es, [0], CPU)
    still = molecule("C2H4")
    write(tmp_path / "still.extxyz", still)
    spec = InitialConditionsSpec(state=1, file=str(tmp_path / "still.extxyz"))
    with pytest.raises(ValueError, match="still.extxyz frame 0: no velocities"):
        read_starts(spec, atoms, es, [0], CPU)
    spec = InitialConditionsSpec(state=1, file=str(tmp_path / "absent.xyz"))
    with pytest.raises(FileNotFoundError, match="absent.xyz"):
        read_starts(spec, atoms, es, [0], CPU)
    (tmp_path / "run").mkdir()
    spec = InitialConditionsSpec(state=1, file=str(tmp_path / "run"))
    with pytest.raises(FileNotFoundError, match="has no trajectory 4 .traj_00004.h5md"):
        read_starts(spec, atoms, es, [4], CPU)
    spec = InitialConditionsSpec(state=2, file=str(tmp_path / "two.extxyz"))
    with pytest.raises(ValueError, match="the potential has 2 states"):
        read_starts(spec, atoms, es, [0], CPU)


def test_tully_wave_packet():
    """Particles start at x0 (bohr) with momentum k / 2000 (a.u. of velocity) on the state."""
    spec = InitialConditionsSpec(x0=-10.0, k=20.0, state=1)
    start = tully_wave_packet(spec, TullyModel("simple"), 3, CPU)
    assert torch.allclose(start.positions[:, 0, 0], torch.tensor(-10.0 * BOHR_ANGSTROM).double())
    assert torch.all(start.active == 1) and torch.all(start.gaps > 0)


class _State:
    """The fields StopTracker reads."""

    def __init__(self, seeds, active, time, status=None):
        self.seeds, self.active = seeds, torch.tensor(active)
        self.time = torch.tensor(time, dtype=torch.float64)
        self.batch_size, self.device = len(active), CPU
        self.status = torch.full((len(active),), int(Status.RUNNING))


def test_stop_after_reaching_the_state_uses_the_first_arrival():
    """A trajectory stops after_fs after it first became active on the state, even if it left
    it again; rows of a running subset are matched by their seeds."""
    seeds = trajectory_seeds(0, torch.arange(3))
    tracker = StopTracker(StopSpec(state=0, after_fs=10.0), seeds)
    tracker.start(_State(seeds, [1, 0, 1], [0.0, 0.0, 0.0]))
    assert tracker(_State(seeds, [0, 0, 1], [5.0, 5.0, 5.0])).tolist() == [False, False, False]
    # subset: trajectories 2 and 0 (order of the engine's subset need not be the batch order)
    sub = _State(seeds[[2, 0]], [1, 1], [15.0, 15.0])
    assert tracker(sub).tolist() == [False, True]
    assert tracker(_State(seeds, [1, 0, 1], [10.0, 10.0, 10.0])).tolist() == [False, True, False]
