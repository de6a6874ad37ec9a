"""Files that grow while a job runs survive the job being killed at any moment.

A child process appends to a dataset (or a trajectory) as fast as it can, printing the row
count after each append returns, and is killed with SIGKILL at a random moment after a random
number of appends, again and again. After every kill the file must open, every row it holds
must be exactly what was appended (each row's values encode its index), and no row the child
saw committed may be missing. Datasets written in place (before
transactions) fail this within a few kills: a compressed chunk caught mid-rewrite no longer
decompresses ("filter returned failure", as CI saw after a killed labelling job). Trajectory
files are uncompressed and survived 60 kills written in place; their test guards the
transaction all the same, since HDF5 promises nothing about a killed writer.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest

from fusionff.data.dataset import MultiStateDataset
from fusionff.dynamics.h5md import FRAME_SERIES, TrajectoryFile

N_ATOMS = 30
KILLS = 12

DATASET_WRITER = f"""
import sys
import numpy as np
from fusionff.data.dataset import MultiStateDataset
from fusionff.data.structure import Structure
with MultiStateDataset.open(sys.argv[1], "a") as ds:
    print("ready", flush=True)
    while True:
        i = float(len(ds))
        ds.append(Structure(
            numbers=np.full({N_ATOMS}, 6), positions=np.full(({N_ATOMS}, 3), i),
            energies=np.array([i, i + 1.0]), forces=np.full(({N_ATOMS}, 2, 3), -i),
            energy_mask=np.ones(2, bool), force_mask=np.ones(2, bool)))
        print(len(ds), flush=True)
"""

TRAJECTORY_WRITER = f"""
import sys
import numpy as np
from fusionff.dynamics.h5md import TrajectoryFile
n = int(sys.argv[2])
traj = TrajectoryFile(sys.argv[1], np.full({N_ATOMS}, 6), np.full({N_ATOMS}, 12.0), 2)
traj.resume(n, 0)
print("ready", flush=True)
while True:
    for step in range(n, n + 5):
        x = float(step)
        traj.add_frame(step, x, position=np.full(({N_ATOMS}, 3), x),
                       velocity=np.full(({N_ATOMS}, 3), -x), active_state=step % 2,
                       energies=np.array([x, x + 1]), populations=np.array([0.5, 0.5]),
                       kinetic_energy=x, total_energy=x)
    traj.flush()
    n += 5
    print(n, flush=True)
"""


def _run_and_kill(argv: list[str], rng: np.random.Generator) -> int:
    """Start a writer, let it commit 1-4 appends and a random few milliseconds more (so the
    kill lands anywhere in an append), kill it; return the last count it reported."""
    child = subprocess.Popen(
        [sys.executable, "-c", *argv],
        stdout=subprocess.PIPE,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    last = 0
    try:
        assert child.stdout.readline().strip() == b"ready"
        for _ in range(rng.integers(1, 5)):
            last = int(child.stdout.readline())
        time.sleep(rng.uniform(0.0, 0.03))
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    reported = [last] + [int(line) for line in child.stdout.read().split()]
    return reported[-1]


def _dataset_rows(path) -> int:
    """Rows in the dataset, after checking every row's values against its index."""
    with MultiStateDataset.open(path) as ds:
        arrays = ds.arrays()
        n = len(ds)
    index = np.repeat(np.arange(n, dtype=float), N_ATOMS)
    np.testing.assert_array_equal(arrays["positions"], index[:, None] * np.ones(3))
    np.testing.assert_array_equal(arrays["forces"], -index[:, None, None] * np.ones((2, 3)))
    np.testing.assert_array_equal(arrays["energies"], np.arange(n)[:, None] + [0.0, 1.0])
    return n


@pytest.mark.slow  # kills real processes, about 7 s
def test_a_dataset_killed_while_appending_keeps_every_committed_row(tmp_path):
    """Dozens of SIGKILLs mid-append: each time the dataset opens for appending, every row is
    intact and the count never falls."""
    path = tmp_path / "labels.h5"
    MultiStateDataset.create(path, n_states=2).close()
    rng = np.random.default_rng(7)
    counts = [0]
    for _ in range(KILLS):
        committed = _run_and_kill([DATASET_WRITER, str(path)], rng)
        counts.append(_dataset_rows(path))
        assert counts[-1] >= max(committed, counts[-2]), (committed, counts)
    assert counts[-1] >= KILLS, counts


def test_a_trajectory_killed_while_flushing_resumes_with_every_flushed_frame(tmp_path):
    """Dozens of SIGKILLs mid-flush: each time the trajectory file reads back, every frame
    holds its own step's values, and the writer resumes from all of them."""
    path = tmp_path / "traj.h5md"
    TrajectoryFile(path, np.full(N_ATOMS, 6), np.full(N_ATOMS, 12.0), 2).create({})
    rng = np.random.default_rng(11)
    counts = [0]
    for _ in range(KILLS):
        committed = _run_and_kill([TRAJECTORY_WRITER, str(path), str(counts[-1])], rng)
        with h5py.File(path, "r") as f:
            steps = f[FRAME_SERIES["position"][0]]["step"][:]
            positions = f[FRAME_SERIES["position"][0]]["value"][:]
            energies = f[FRAME_SERIES["energies"][0]]["value"][:]
        n = len(steps)
        np.testing.assert_array_equal(steps, np.arange(n))
        expected = np.arange(n)[:, None, None] * np.ones((N_ATOMS, 3))
        np.testing.assert_array_equal(positions, expected)
        np.testing.assert_array_equal(energies, np.arange(n)[:, None] + [0.0, 1.0])
        assert n >= max(committed, counts[-1]), (committed, counts)
        counts.append(n)
    assert counts[-1] >= 5 * KILLS, counts


def test_a_second_writer_to_a_dataset_is_refused_by_name(tmp_path):
    """Two jobs appending to one file would each replace the other's rows; the second is
    refused with an error naming the file."""
    from fusionff.atomic_files import FileLockedError

    path = tmp_path / "labels.h5"
    first = MultiStateDataset.create(path, n_states=2)
    try:
        with pytest.raises(FileLockedError, match="labels.h5: another process is writing"):
            MultiStateDataset.open(path, "a")
        MultiStateDataset.open(path).close()  # readers are welcome
    finally:
        first.close()
    MultiStateDataset.open(path, "a").close()  # the claim ended with close
