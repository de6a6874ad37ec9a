"""``fusionff run --dask``: batches as tasks on a Dask cluster, files written by the client.

An ML ensemble (run_helpers.ml_input, as in test_run_ml.py: a random two-state model on
ethylene, Wigner starts from a harmonic Hessian; 5 trajectories in batches of 2, 8 steps) runs
without a pool, through an in-process pool, and on the session's LocalCluster of two workers
(``dask_address``); every H5MD dataset and attribute and the summary's records must be equal
bit for bit.
"""

from __future__ import annotations

import json

import pytest
import torch
import yaml
from ase.build import molecule

from fusionff.cli import main
from fusionff.dynamics.run_config import RunConfig
from fusionff.dynamics.runner import run_ensemble

from .dask_helpers import (
    FailsOnALoneStructure,
    KillsItsWorkerOnce,
    SerialPool,
    assert_same_run,
)
from .run_helpers import (
    FailAfter,
    Interrupted,
    ml_input,
    tully_input,
    write_molecule,
    write_random_model,
)

N_TRAJ = 5


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """The model, molecule, Hessian and run input, and the run without a pool ("local")."""
    root = tmp_path_factory.mktemp("dask_run")
    write_random_model(root / "model.fff")
    write_molecule(root)
    raw = ml_input(root, "unused", n_traj=4, n_steps=8)
    (root / "run.yaml").write_text(yaml.safe_dump(raw))
    overrides = ["--n-traj", str(N_TRAJ), "--seed", "11"]
    assert main(["run", str(root / "run.yaml"), "--output", str(root / "local"), *overrides]) == 0
    return root, overrides


def config(root, output: str) -> RunConfig:
    overrides = {"n_traj": N_TRAJ, "seed": 11, "output": str(root / output), "threads": 1}
    return RunConfig.from_yaml(root / "run.yaml", overrides)


def test_batches_through_a_pool_give_the_files_of_a_local_run(inputs):
    """Batches computed as pool tasks (in memory, then written by the caller in batch order)
    give the same files and records as the run without a pool: three tasks, one a batch."""
    root, _ = inputs
    pool = SerialPool()
    run_ensemble(config(root, "serial"), pool=pool)
    assert pool.tasks == 3
    assert_same_run(root / "local", root / "serial", N_TRAJ)
    saved = torch.load(root / "serial" / "checkpoint.pt", weights_only=True)
    assert saved["batch"] == 3 and saved["complete"] and saved["state"] is None


def test_a_pool_run_finishes_the_batch_a_local_run_left_half_done(tmp_path):
    """A run without a pool that crashed mid-batch (Tully model 1, after its first
    checkpoint), continued with a pool, finishes that batch here and the next as a task, and
    equals an uninterrupted run."""
    short = {"n_steps": 100, "checkpoint_every": 25}
    assert run_ensemble(RunConfig.from_yaml(tully_input(tmp_path, "whole", **short)))
    config = RunConfig.from_yaml(tully_input(tmp_path, "resumed", **short))
    with pytest.raises(Interrupted):
        run_ensemble(config, structure=FailAfter(60))
    saved = torch.load(tmp_path / "resumed" / "checkpoint.pt", weights_only=True)
    assert saved["batch"] == 0 and saved["steps_done"] == 50
    pool = SerialPool()
    run_ensemble(config, pool=pool)
    assert pool.tasks == 1  # the second batch
    assert_same_run(tmp_path / "whole", tmp_path / "resumed", 6)


@pytest.mark.slow
def test_ensemble_on_a_local_cluster_equals_the_local_run(inputs, dask_address):
    """``fusionff run CONFIG --dask tcp://...`` with --n-traj, --seed and --output: every
    trajectory file equals the local run's bit for bit (the workers run with the client's
    thread count), and the summary records where the batches ran."""
    root, overrides = inputs
    out = root / "dask"
    argv = ["run", str(root / "run.yaml"), "--output", str(out), "--dask", dask_address]
    assert main([*argv, *overrides]) == 0
    assert_same_run(root / "local", out, N_TRAJ)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["timing"]["executor"] == f"Dask scheduler {dask_address}"
    assert summary["config"]["n_traj"] == N_TRAJ and summary["config"]["seed"] == 11


@pytest.mark.slow
def test_a_stopped_dask_run_resumes_to_the_local_files(inputs, dask_address):
    """A run whose third (last, one-trajectory) batch fails on its worker stops with that
    error once the two batches before it are written; the same command again resumes from
    the checkpoint after them and gives the local run's files."""
    root, overrides = inputs
    run = config(root, "stopped")
    from fusionff.executor import DaskPool

    with pytest.raises(Interrupted), DaskPool(dask_address) as pool:
        structure = FailsOnALoneStructure(root / "model.fff", molecule("C2H4").numbers)
        run_ensemble(run, structure=structure, pool=pool)
    saved = torch.load(root / "stopped" / "checkpoint.pt", weights_only=True)
    assert saved["batch"] == 2 and saved["state"] is None and len(saved["records"]) == 4
    argv = ["run", str(root / "run.yaml"), "--output", str(root / "stopped"), *overrides]
    assert main([*argv, "--dask", dask_address]) == 0
    assert_same_run(root / "local", root / "stopped", N_TRAJ)


@pytest.mark.slow
def test_a_worker_killed_mid_batch_leaves_the_outputs_unchanged(inputs, dask_address):
    """The first batch task to evaluate the potential on a worker kills that worker process
    (SIGKILL, once, noted in a marker file); Dask runs the task again on a live worker and
    the files equal those of the local run."""
    root, _ = inputs
    marker = root / "killed"
    structure = KillsItsWorkerOnce(root / "model.fff", molecule("C2H4").numbers, marker)
    from fusionff.executor import DaskPool

    with DaskPool(dask_address) as pool:
        run_ensemble(config(root, "killed_worker"), structure=structure, pool=pool)
    assert marker.exists()
    assert_same_run(root / "local", root / "killed_worker", N_TRAJ)
