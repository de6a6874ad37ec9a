"""Helpers of the Dask tests: a potential and a backend that kill their worker once, an
in-process task pool, and comparisons of run directories and datasets. Dask workers import
this module by name (``tests.integration.dask_helpers``), so it must stay importable from the
repository root, and without PyTorch (imported only where a potential needs it), so that
labelling workers start fast."""

from __future__ import annotations

import json
import os
import signal
from concurrent.futures import Future
from pathlib import Path

import numpy as np

from fusionff.data.dataset import MultiStateDataset
from fusionff.labeling.backend import ReferenceBackend
from fusionff.labeling.runner import SOURCE_INDEX


class LazyModel:
    """The ML potential of ``model`` (a model file) for ``numbers``, built on first use in each
    process (it is pickled without the network), for the wrappers below."""

    def __init__(self, model: Path, numbers: np.ndarray) -> None:
        self.model, self.numbers = str(model), np.asarray(numbers)
        self._inner = None
        self.n_states = self._structure().n_states
        self.provides_nacs = self._structure().provides_nacs

    def _structure(self):
        if self._inner is None:
            from fusionff.dynamics.ml import MLElectronicStructure

            self._inner = MLElectronicStructure(self.model, self.numbers, device="cpu")
        return self._inner

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_inner": None}

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._structure(), name)

    def evaluate(self, positions):
        return self._structure().evaluate(positions)


class KillsItsWorkerOnce(LazyModel):
    """The first evaluation in any process other than the one that made it, while ``marker``
    does not exist, creates ``marker`` and kills its own process with SIGKILL (a worker dying
    mid-task); otherwise the model's potential."""

    def __init__(self, model: Path, numbers: np.ndarray, marker: Path) -> None:
        super().__init__(model, numbers)
        self.marker, self.home = Path(marker), os.getpid()

    def evaluate(self, positions):
        if os.getpid() != self.home and not self.marker.exists():
            self.marker.write_text(str(os.getpid()))
            os.kill(os.getpid(), signal.SIGKILL)
        return super().evaluate(positions)


class FailsOnALoneStructure(LazyModel):
    """The model's potential, raising :class:`Interrupted` when asked for one structure (a
    batch of one trajectory sampling its start)."""

    def evaluate(self, positions):
        from .run_helpers import Interrupted

        if positions.shape[0] == 1:
            raise Interrupted
        return super().evaluate(positions)


class BackendKillingItsWorkerOnce(ReferenceBackend):
    """``backend`` (its labels and provenance), except that its first calculation in any
    process other than the one that made it, while ``marker`` does not exist, creates
    ``marker`` and kills its own process with SIGKILL."""

    def __init__(self, backend: ReferenceBackend, marker: Path) -> None:
        self.backend, self.marker, self.home = backend, Path(marker), os.getpid()

    def compute(self, numbers, positions, n_states):
        if os.getpid() != self.home and not self.marker.exists():
            self.marker.write_text(str(os.getpid()))
            os.kill(os.getpid(), signal.SIGKILL)
        return self.backend.compute(numbers, positions, n_states)

    def provenance(self) -> dict:
        return self.backend.provenance()


class SerialPool:
    """A task pool that runs each task at once in this process (the pool protocol of
    :mod:`fusionff.executor` without processes), counting the tasks."""

    description = "this process"

    def __init__(self) -> None:
        self.tasks = 0

    def slots(self) -> int:
        return 1

    def submit(self, fn, *args) -> Future:
        self.tasks += 1
        future = Future()
        try:
            future.set_result(fn(*args))
        except Exception as exc:
            future.set_exception(exc)
        return future

    def share(self, value):
        return value

    def stop(self) -> None:
        pass

    def close(self) -> None:
        pass


def assert_same_run(a: Path, b: Path, n_traj: int) -> None:
    """Every H5MD dataset and attribute of the ``n_traj`` trajectories, and the summary's
    trajectory records, are equal (bit for bit) in run directories ``a`` and ``b``."""
    from .run_helpers import h5_contents

    for i in range(n_traj):
        left, right = h5_contents(a / f"traj_{i:05d}.h5md"), h5_contents(b / f"traj_{i:05d}.h5md")
        assert left.keys() == right.keys()
        for key in left:
            np.testing.assert_array_equal(left[key], right[key], err_msg=f"traj {i}: {key}")
    records = [json.loads((d / "summary.json").read_text())["trajectories"] for d in (a, b)]
    assert records[0] == records[1]


def dataset_by_source(path: Path) -> dict[int, dict]:
    """The entries of a labelled dataset by input index: every label, mask and meta entry
    except the wall-clock ``seconds``."""
    entries = {}
    with MultiStateDataset.open(path) as dataset:
        for entry in dataset:
            meta = {k: v for k, v in entry.meta.items() if k != "seconds"}
            entries[entry.meta[SOURCE_INDEX]] = {
                "numbers": entry.numbers,
                "positions": entry.positions,
                "energies": entry.energies,
                "forces": entry.forces,
                "energy_mask": entry.energy_mask,
                "force_mask": entry.force_mask,
                "status": entry.status,
                "error": entry.error,
                "meta": meta,
            }
    return entries


def assert_same_dataset(a: Path, b: Path) -> None:
    """The same input structures with equal labels (bit for bit), masks, statuses and meta."""
    left, right = dataset_by_source(a), dataset_by_source(b)
    assert sorted(left) == sorted(right)
    for index, entry in left.items():
        for key, value in entry.items():
            if isinstance(value, np.ndarray):
                np.testing.assert_array_equal(value, right[index][key], err_msg=f"{index} {key}")
            else:
                assert value == right[index][key], (index, key)
