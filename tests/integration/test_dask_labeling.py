"""``fusionff label --dask``: MOPAC labels of ethylene computed on a Dask cluster, one structure
per task, the dataset written by the client.

The input is 16 distorted ethylenes and one with two atoms on top of each other (a failure that
MOPAC reports). The dataset labelled in this process without Dask is the reference: entries
are compared by input index (their order is the order of completion), bit for bit, with the
wall-clock ``seconds`` aside. Needs the ``mopac`` executable (skipped without it) and the
session's LocalCluster of two workers (``dask_address``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np
import pytest
from ase.build import molecule
from ase.io import read, write

from fusionff.cli import main
from fusionff.labeling.mopac import MopacBackend, find_mopac
from fusionff.labeling.runner import label

from .dask_helpers import BackendKillingItsWorkerOnce, assert_same_dataset, dataset_by_source

pytestmark = [pytest.mark.mopac, pytest.mark.slow]

N_OK = 16


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """The input file and its labels computed here without Dask ("local.h5")."""
    if find_mopac() is None:
        pytest.skip("MOPAC executable 'mopac' not found on PATH")
    root = tmp_path_factory.mktemp("dask_label")
    rng = np.random.default_rng(7)
    frames = []
    for _ in range(N_OK):
        atoms = molecule("C2H4")
        atoms.positions += rng.normal(scale=0.05, size=atoms.positions.shape)
        frames.append(atoms)
    broken = molecule("C2H4")
    broken.positions[1] = broken.positions[0]
    frames.insert(5, broken)
    write(root / "in.extxyz", frames)
    frames = read(root / "in.extxyz", index=":")  # the positions the command line labels
    summary = label(frames, MopacBackend(), 2, root / "local.h5", workers=1)
    assert (summary.ok, summary.failed) == (N_OK, 1)
    return root, frames


def test_labels_through_dask_equal_local_ones_despite_a_killed_worker(inputs, dask_address):
    """``label(pool=DaskPool(...))`` with a backend whose first task kills its worker
    (SIGKILL): the task runs again elsewhere and the dataset equals the local one, the
    failed structure included, each input once."""
    from fusionff.executor import DaskPool

    root, frames = inputs
    backend = BackendKillingItsWorkerOnce(MopacBackend(), root / "killed")
    with DaskPool(dask_address) as pool:
        summary = label(frames, backend, 2, root / "dask.h5", pool=pool)
    assert (root / "killed").exists()
    assert (summary.ok, summary.failed) == (N_OK, 1)
    assert_same_dataset(root / "local.h5", root / "dask.h5")


def test_a_killed_dask_labelling_job_resumes_to_the_local_labels(inputs, dask_address):
    """``fusionff label ... --dask ADDRESS`` in a subprocess, killed (SIGKILL) once it has
    written three entries, leaves a dataset of complete entries; the same command again labels
    only the rest, and the result equals the local labels (nothing lost or duplicated)."""
    root, _ = inputs
    out, log_path = root / "killed_job.h5", root / "killed_job.log"
    argv = ["label", str(root / "in.extxyz"), str(out), "--dask", dask_address]
    with open(log_path, "w") as log:
        job = subprocess.Popen(
            [sys.executable, "-m", "fusionff.cli", *argv],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
    try:
        deadline = time.monotonic() + 60
        while log_path.read_text().count(" labelled in ") < 3 and job.poll() is None:
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.02)
        job.kill()
    finally:
        if job.poll() is None:
            job.kill()
        job.wait()
    done = len(dataset_by_source(out))
    assert 3 <= done < N_OK + 1, log_path.read_text()
    assert main(argv) == 0
    assert_same_dataset(root / "local.h5", out)
