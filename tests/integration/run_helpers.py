"""Helpers of the run tests: an electronic structure that crashes mid-run, and the contents
of an HDF5 file."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from fusionff.dynamics import TullyModel


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
