"""Helpers of the run tests: a small Tully-1 run input, an electronic structure that crashes
mid-run, and the contents of an HDF5 file."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import yaml

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
