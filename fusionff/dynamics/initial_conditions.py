"""Initial conditions of an ensemble: Wigner samples excited vertically, or Tully's wave packet.

Trajectory i draws its sample from its own generator, ``numpy.random.default_rng(seed_i)`` with
``seed_i = trajectory_seeds(run_seed, i)`` read as an unsigned 64-bit integer, so trajectory i
starts the same whatever batch it runs in. With an energy window, trajectory i keeps drawing
from its generator until a sample's gap E_state - E_0 lies in [emin, emax].

With ``wigner.optimize`` the samples are drawn about the S0 minimum of the run's own potential
(:func:`optimize_structure`) rather than about the input structure.

With ``initial_conditions.file`` (:func:`read_starts`) trajectory i starts from frame i of a
file, or where trajectory i of an earlier run started: one ensemble on two potentials.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import h5py
import numpy as np
import torch
from ase import Atoms, units
from ase.calculators.calculator import Calculator, all_changes
from ase.io import read, write
from ase.optimize import BFGS
from torch import Tensor

from fusionff.dynamics.protocol import ElectronicStructure
from fusionff.dynamics.run_config import InitialConditionsSpec, WignerSpec
from fusionff.dynamics.tully import TULLY_MASS_AU, TullyModel
from fusionff.sampling import finite_difference_hessian, wigner_sample
from fusionff.units import AU_VELOCITY_A_PER_FS, BOHR_ANGSTROM

__all__ = [
    "InitialConditions",
    "OptimizedStructure",
    "optimize_structure",
    "read_starts",
    "reference_hessian",
    "sample_molecules",
    "tully_wave_packet",
]


@dataclass
class InitialConditions:
    """A batch of B starting points (float64, on the run's device).

    Attributes:
        positions: (B, N, 3) Angstrom.
        velocities: (B, N, 3) Angstrom/fs.
        masses: (N,) amu.
        active: (B,) int64 initial state.
        gaps: (B,) eV E_state - E_0 at the start (0 for the ground state).
        attempts: (B,) samples drawn per trajectory (1 without an energy window).
    """

    positions: Tensor
    velocities: Tensor
    masses: Tensor
    active: Tensor
    gaps: Tensor
    attempts: list[int]


def _generator(seed: int) -> np.random.Generator:
    return np.random.default_rng(int(seed) & 0xFFFFFFFFFFFFFFFF)


def _cache_is_current(path: Path, source: str, positions: np.ndarray) -> bool:
    """A computed Hessian in ``path`` is for this potential and these positions."""
    with np.load(path) as data:
        if "source" not in data or str(data["source"]) != source or "positions" not in data:
            return False
        return data["positions"].shape == positions.shape and bool(
            np.abs(data["positions"] - positions).max() <= 1e-4
        )


@dataclass
class OptimizedStructure:
    """The S0 minimum of the run's potential near the input structure.

    Attributes:
        atoms: the optimised structure (positions as read back from the cache file).
        start_energy: eV, S0 energy of the input structure.
        energy: eV, S0 energy of the optimised structure.
        max_force: eV/Angstrom, largest S0 force on an atom there.
        steps: optimiser steps taken.
        cached: read from the cache file instead of computed.
    """

    atoms: Atoms
    start_energy: float
    energy: float
    max_force: float
    steps: int
    cached: bool


class _S0Calculator(Calculator):
    """The S0 energy and forces of an electronic structure as an ASE calculator."""

    implemented_properties = ["energy", "forces"]

    def __init__(self, structure: ElectronicStructure, device: torch.device) -> None:
        super().__init__()
        self.structure = structure
        self.device = device

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        x = torch.as_tensor(self.atoms.positions[None], dtype=torch.float64, device=self.device)
        out = self.structure.evaluate(x)
        self.results = {
            "energy": float(out.energies[0, 0]),
            "forces": out.forces[0, 0].detach().double().cpu().numpy(),
        }


def _optimization_key(spec: WignerSpec, atoms: Atoms, source: str) -> str:
    """Identifies an optimisation: potential, input structure and fmax."""
    start = {
        "source": source,
        "numbers": atoms.numbers.tolist(),
        "positions": np.round(atoms.positions, 6).tolist(),
        "fmax": spec.fmax,
    }
    return hashlib.sha256(json.dumps(start, sort_keys=True).encode()).hexdigest()


def _read_optimized(cache: Path, key: str) -> OptimizedStructure | None:
    """The optimisation cached in ``cache`` if it has ``key``, else None."""
    if not cache.exists():
        return None
    found = read(cache, format="extxyz")
    info, found.info = found.info, {}
    if info.get("key") != key:
        return None
    return OptimizedStructure(
        atoms=found,
        start_energy=float(info["s0_start_energy"]),
        energy=float(info["s0_energy"]),
        max_force=float(info["max_force"]),
        steps=int(info["steps"]),
        cached=True,
    )


def optimize_structure(
    spec: WignerSpec,
    atoms: Atoms,
    structure: ElectronicStructure,
    device: torch.device,
    cache: Path,
    source: str = "",
) -> OptimizedStructure:
    """Minimise the S0 energy of ``atoms`` with ``structure`` (ASE BFGS) until no atom's force
    exceeds ``spec.fmax``; the result is cached in ``cache`` (extended xyz, energies in eV in
    its comment line) and read back from there while the potential (``source``), the input
    structure and fmax are the same. The positions returned are those of the file, so a run
    that reads the cache samples about exactly the same geometry as the run that wrote it.

    Not converging within ``spec.max_steps`` steps is an error.
    """
    key = _optimization_key(spec, atoms, source)
    cached = _read_optimized(cache, key)
    if cached is not None:
        return cached
    moving = Atoms(numbers=atoms.numbers, positions=atoms.positions)
    moving.calc = _S0Calculator(structure, device)
    start_energy = moving.get_potential_energy()
    optimizer = BFGS(moving, logfile=None)
    converged = optimizer.run(fmax=spec.fmax, steps=spec.max_steps)
    max_force = float(np.linalg.norm(moving.get_forces(), axis=1).max())
    if not converged:
        raise RuntimeError(
            f"initial_conditions.wigner: the S0 optimisation did not reach fmax = {spec.fmax} "
            f"eV/Angstrom in max_steps = {spec.max_steps} steps (max force {max_force:.3g} "
            "eV/Angstrom); raise max_steps or fmax, or check the potential near the structure"
        )
    result = Atoms(numbers=atoms.numbers, positions=moving.positions)
    result.info = {
        "key": key,
        "s0_start_energy": start_energy,
        "s0_energy": moving.get_potential_energy(),
        "max_force": max_force,
        "steps": optimizer.get_number_of_steps(),
    }
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_name(cache.name + ".tmp")
    write(tmp, result, format="extxyz")
    tmp.replace(cache)
    return replace(_read_optimized(cache, key), cached=False)


def reference_hessian(
    spec: WignerSpec,
    atoms: Atoms,
    structure: ElectronicStructure,
    device: torch.device,
    cache: Path,
    source: str = "",
) -> np.ndarray:
    """(3N, 3N) eV/Angstrom^2 at ``atoms``: read from ``spec.hessian``, or computed by central
    differences of the S0 forces of ``structure`` (6N evaluations) and cached in ``cache``
    together with ``source`` (a description of the potential: a cache from another source or
    for other positions is recomputed).

    A file whose ``numbers`` or ``positions`` do not match ``atoms`` (1e-4 Angstrom) is an error.
    """
    path = cache if spec.hessian == "compute" else Path(spec.hessian)
    n = len(atoms)
    compute = spec.hessian == "compute"
    if path.exists() and not (compute and not _cache_is_current(path, source, atoms.positions)):
        data = np.load(path)
        if "hessian" not in data:
            raise ValueError(f"{path}: no 'hessian' array (keys: {sorted(data)})")
        hessian = np.asarray(data["hessian"], dtype=np.float64)
        if hessian.shape != (3 * n, 3 * n):
            raise ValueError(f"{path}: hessian has shape {hessian.shape}, expected {(3 * n,) * 2}")
        if "numbers" in data and not np.array_equal(data["numbers"], atoms.numbers):
            raise ValueError(f"{path}: atomic numbers differ from the structure's")
        if "positions" in data:
            shift = np.abs(np.asarray(data["positions"]) - atoms.positions).max()
            if shift > 1e-4:
                raise ValueError(
                    f"{path}: computed at other positions (max difference {shift:.2g} Angstrom)"
                )
        return hessian
    if not compute:
        raise FileNotFoundError(f"initial_conditions.wigner.hessian: no file {path}")

    def s0_forces(x: np.ndarray) -> np.ndarray:
        positions = torch.as_tensor(x[None], dtype=torch.float64, device=device)
        return structure.evaluate(positions).forces[0, 0].double().cpu().numpy()

    hessian = finite_difference_hessian(s0_forces, atoms.positions, step=spec.step)
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(".tmp.npz")
    np.savez(
        tmp,
        hessian=hessian,
        positions=atoms.positions,
        numbers=atoms.numbers,
        step=spec.step,
        source=source,
    )
    tmp.replace(cache)
    return hessian


def _check_state(spec: InitialConditionsSpec, structure: ElectronicStructure) -> None:
    if spec.state >= structure.n_states:
        raise ValueError(
            f"initial_conditions.state: {spec.state}, but the potential has "
            f"{structure.n_states} states"
        )


def sample_molecules(
    spec: InitialConditionsSpec,
    atoms: Atoms,
    hessian: np.ndarray,
    structure: ElectronicStructure,
    seeds: Tensor,
    device: torch.device,
) -> InitialConditions:
    """Wigner samples (one per seed) excited vertically to ``spec.state``, within the energy
    window if one is given. seeds: (B,) int64 trajectory seeds."""
    if spec.wigner is None:
        raise ValueError("initial_conditions.wigner is required for molecules")
    _check_state(spec, structure)
    generators = [_generator(s) for s in seeds.tolist()]
    b, n = len(generators), len(atoms)
    positions = np.empty((b, n, 3))
    velocities = np.empty((b, n, 3))
    gaps = np.zeros(b)
    attempts = [0] * b
    pending = list(range(b))
    masses = atoms.get_masses()
    window = spec.energy_window
    with warnings.catch_warnings():
        warnings.simplefilter("once")
        while pending:
            for i in pending:
                x, v = wigner_sample(
                    atoms.positions,
                    masses,
                    hessian,
                    spec.wigner.temperature,
                    1,
                    generators[i],
                    imaginary_tolerance=spec.wigner.imaginary_tolerance,
                    cold_below=spec.wigner.cold_below,
                )
                positions[i], velocities[i] = x[0], v[0]
                attempts[i] += 1
            if window is None and spec.state == 0:
                break
            x = torch.as_tensor(positions[pending], dtype=torch.float64, device=device)
            energies = structure.evaluate(x).energies.double().cpu().numpy()
            gaps[pending] = energies[:, spec.state] - energies[:, 0]
            if window is None:
                break
            inside = (gaps[pending] >= window[0]) & (gaps[pending] <= window[1])
            pending = [i for i, ok in zip(pending, inside, strict=True) if not ok]
            for i in pending:
                if attempts[i] >= spec.max_attempts:
                    raise ValueError(
                        f"initial_conditions.energy_window: {spec.max_attempts} samples drawn "
                        f"and none has its gap in {window} eV (last {gaps[i]:.3f} eV)"
                    )

    def tensor(a: np.ndarray) -> Tensor:
        return torch.as_tensor(a, dtype=torch.float64, device=device)

    return InitialConditions(
        positions=tensor(positions),
        velocities=tensor(velocities),
        masses=tensor(masses),
        active=torch.full((b,), spec.state, dtype=torch.int64, device=device),
        gaps=tensor(gaps),
        attempts=attempts,
    )


def _check_atoms(numbers: np.ndarray, atoms: Atoms, where: str) -> None:
    if len(numbers) != len(atoms) or np.any(numbers != atoms.numbers):
        raise ValueError(
            f"{where}: atoms {np.asarray(numbers).tolist()} do not match the run's structure "
            f"{atoms.numbers.tolist()}"
        )


def _run_starts(run: Path, atoms: Atoms, indices: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Frame 0 (step 0) of traj_<i>.h5md of an earlier run, for each i."""
    positions, velocities = [], []
    for i in indices:
        path = run / f"traj_{i:05d}.h5md"
        if not path.exists():
            raise FileNotFoundError(
                f"initial_conditions.file: run {run} has no trajectory {i} ({path.name})"
            )
        with h5py.File(path, "r") as f:
            group = f["particles/molecule"]
            _check_atoms(group["species"][()], atoms, str(path))
            if group["position/value"].shape[0] == 0 or int(group["position/step"][0]) != 0:
                raise ValueError(f"{path}: no frame at step 0 to start from")
            positions.append(group["position/value"][0])
            velocities.append(group["velocity/value"][0])
    return np.stack(positions), np.stack(velocities)


def _file_starts(path: Path, atoms: Atoms, indices: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Frame i of an ASE-readable file with momenta, for each i (velocities in Angstrom/fs)."""
    if not path.exists():
        raise FileNotFoundError(f"initial_conditions.file: no file {path}")
    frames = read(path, ":")
    positions, velocities = [], []
    for i in indices:
        if i >= len(frames):
            raise ValueError(
                f"initial_conditions.file: {path} has {len(frames)} frames; trajectory {i} "
                f"starts from frame {i}"
            )
        frame = frames[i]
        _check_atoms(frame.numbers, atoms, f"{path} frame {i}")
        if "momenta" not in frame.arrays:
            raise ValueError(f"{path} frame {i}: no velocities (momenta) to start from")
        positions.append(frame.positions)
        velocities.append(frame.get_velocities() * units.fs)
    return np.stack(positions), np.stack(velocities)


def read_starts(
    spec: InitialConditionsSpec,
    atoms: Atoms,
    structure: ElectronicStructure,
    indices: list[int],
    device: torch.device,
) -> InitialConditions:
    """Trajectories ``indices`` start from ``spec.file`` (see :class:`InitialConditionsSpec`),
    on state ``spec.state``; masses are those of ``atoms``. Positions Angstrom, velocities
    Angstrom/fs."""
    if spec.file is None:
        raise ValueError("initial_conditions.file is not set")
    _check_state(spec, structure)
    path = Path(spec.file)
    reader = _run_starts if path.is_dir() else _file_starts
    positions, velocities = reader(path, atoms, list(indices))
    x = torch.as_tensor(positions, dtype=torch.float64, device=device)
    if spec.state == 0:
        gaps = torch.zeros(len(indices), dtype=torch.float64, device=device)
    else:
        energies = structure.evaluate(x).energies.double()
        gaps = energies[:, spec.state] - energies[:, 0]
    return InitialConditions(
        positions=x,
        velocities=torch.as_tensor(velocities, dtype=torch.float64, device=device),
        masses=torch.as_tensor(atoms.get_masses(), dtype=torch.float64, device=device),
        active=torch.full((len(indices),), spec.state, dtype=torch.int64, device=device),
        gaps=gaps,
        attempts=[1] * len(indices),
    )


def tully_wave_packet(
    spec: InitialConditionsSpec, model: TullyModel, b: int, device: torch.device
) -> InitialConditions:
    """B identical particles at x0 (bohr) with momentum k (a.u.) on state ``spec.state``."""
    if spec.x0 is None or spec.k is None:
        raise ValueError("initial_conditions: Tully models need x0 and k")
    if not 0 <= spec.state < model.n_states:
        raise ValueError(f"initial_conditions.state: {spec.state} is not a state of the model")
    positions = torch.zeros(b, 1, 3, dtype=torch.float64, device=device)
    positions[:, 0, 0] = spec.x0 * BOHR_ANGSTROM
    velocities = torch.zeros_like(positions)
    velocities[:, 0, 0] = spec.k / TULLY_MASS_AU * AU_VELOCITY_A_PER_FS
    energies = model.evaluate(positions).energies
    return InitialConditions(
        positions=positions,
        velocities=velocities,
        masses=torch.full((1,), model.mass_amu, dtype=torch.float64, device=device),
        active=torch.full((b,), spec.state, dtype=torch.int64, device=device),
        gaps=energies[:, spec.state] - energies[:, 0],
        attempts=[1] * b,
    )
