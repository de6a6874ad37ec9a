"""Helpers of the run tests: a small Tully-1 run input, the files and input of a small ML run on
ethylene, an electronic structure that crashes mid-run, and the contents of an HDF5 file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
import yaml
from ase.build import molecule
from ase.io import write

from fusionff import MultiStateMACE, save_model
from fusionff.dynamics import TullyModel


def tully_input(tmp_path: Path, name: str = "run", **changes) -> Path:
    """A run input (written to ``tmp_path/<name>.yaml``, output ``tmp_path/<name>``): 6
    trajectories of Tully's model 1 in batches of 4, 400 steps of 0.2 fs, checkpoints every 100
    steps, stopped when they leave [-10, 10] bohr; ``changes`` replace top-level keys."""
    raw = {
        "potential": {"tully": "simple"},
        "initial_conditions": {"x0": -10.0, "k": 20.0},
        "dynamics": {"dt": 0.2, "n_substeps": 5},
        "n_traj": 6,
        "batch_size": 4,
        "n_steps": 400,
        "write_every": 20,
        "checkpoint_every": 100,
        "device": "cpu",
        "seed": 3,
        "output": str(tmp_path / name),
        "stop": {"region_bohr": 10.0},
    }
    raw.update(changes)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def write_random_model(path: Path) -> None:
    """A random two-state float64 model on H and C (4 channels, one layer, correlation 2,
    weights from ``torch.manual_seed(0)``), saved to ``path``."""
    torch.manual_seed(0)
    model = MultiStateMACE(
        elements=["H", "C"], n_states=2, channels=4, num_layers=1, correlation=2, dtype="float64"
    )
    save_model(model, path)


def write_molecule(root: Path, formula: str = "C2H4", name: str = "ethylene") -> None:
    """``root/<name>.xyz`` (ASE's molecule ``formula``) and ``root/harmonic-hessian.npz``: the
    Hessian of an isotropic harmonic model about that geometry, 30 eV/Angstrom^2 on every
    coordinate. A random network has no minimum there (its own Hessian has imaginary modes), so
    the ML runs Wigner-sample from this one: they check the plumbing, not the initial
    conditions."""
    atoms = molecule(formula)
    write(root / f"{name}.xyz", atoms)
    np.savez(
        root / "harmonic-hessian.npz",
        hessian=30.0 * np.eye(3 * len(atoms)),
        positions=atoms.positions,
        numbers=atoms.numbers,
    )


def ml_input(root: Path, name: str, hessian: str | None = None, **changes: Any) -> dict:
    """The raw run input (as read from YAML) of an ML run on the files in ``root``
    (:func:`write_random_model` at ``root/model.fff``, :func:`write_molecule`: ethylene), output
    ``root/<name>``: S1 starts Wigner-sampled at 300 K from ``hessian`` (default the harmonic
    Hessian file), kappa-TSH with decoherence, 0.2 fs steps, 3 trajectories in batches of 2, 6
    steps, frames every 2 steps, checkpoints every 3 steps, CPU, seed 5; ``changes`` replace
    top-level keys."""
    hessian = str(root / "harmonic-hessian.npz") if hessian is None else hessian
    raw = {
        "potential": str(root / "model.fff"),
        "structure": str(root / "ethylene.xyz"),
        "initial_conditions": {"wigner": {"temperature": 300, "hessian": hessian}, "state": 1},
        "dynamics": {"algorithm": "kappa-tsh", "decoherence": True, "dt": 0.2},
        "n_traj": 3,
        "batch_size": 2,
        "n_steps": 6,
        "write_every": 2,
        "checkpoint_every": 3,
        "device": "cpu",
        "seed": 5,
        "output": str(root / name),
    }
    raw.update(changes)
    return raw


class Interrupted(Exception):
    pass


class FailAfter:
    """Tully model 1 that raises after ``calls`` evaluations (a crash mid-run)."""

    n_states, provides_nacs = 2, True
    mass_amu = TullyModel.mass_amu

    def __init__(self, calls: int) -> None:
        self.model, self.calls = TullyModel("simple"), calls

    def evaluate(self, positions):
        self.calls -= 1
        if self.calls < 0:
            raise Interrupted
        return self.model.evaluate(positions)


def h5_contents(path: Path) -> dict[str, np.ndarray]:
    """Every dataset and attribute of an HDF5 file, by path."""
    items: dict[str, np.ndarray] = {}
    with h5py.File(path, "r") as f:

        def visit(name, obj):
            for key, value in obj.attrs.items():
                items[f"{name}@{key}"] = np.asarray(value)
            if isinstance(obj, h5py.Dataset):
                items[name] = obj[()]

        f.visititems(visit)
    return items
