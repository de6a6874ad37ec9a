"""Data-parallel training: `fusionff train` under torchrun with 2 CPU ranks (gloo) against one
process, and a torchrun job killed mid-run and started again.

What a 2-rank run must equal, and how closely: ``batch_size`` is the global batch; each rank
evaluates its shard, the outputs of the whole batch are gathered, every rank computes the
one-process loss of the whole batch, and the gradients of the ranks are summed. So the
gradient of every step is the one-process gradient except for the order of floating-point sums
(each parameter's gradient is the sum of the two ranks' parts instead of one sum over the
batch): a relative difference of order 1e-16 per step in float64. Over the 16 Adam steps here
(4 epochs of 4 batches) that grows to no more than about 1e-14 relative, so the final weights
must agree to 1e-10 (absolute; the weights are of order 1) and the validation errors to a
relative 1e-9: four orders of magnitude of slack above rounding, and far below what any
mistake in the sharding or the gradient sum gives (a gradient off by a factor of 2, a shard
counted twice or dropped: differences of order lr = 1e-2 in the weights after one step).

The batches are split unevenly on purpose: 25 training structures in batches of 8 leave a last
batch of one structure, so one rank has nothing of its own in it; 7 validation structures are
split 4 + 3.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from fusionff import load_model
from fusionff.train.config import TrainConfig
from fusionff.train.toy import write_toy_dataset
from fusionff.train.trainer import Trainer

from .train_helpers import tiny_training

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
WEIGHT_ATOL = 1e-10  # see the module docstring
METRIC_RTOL = 1e-9


def write_config(data: Path, output: Path) -> Path:
    """A tiny float64 model on the toy data, 4 epochs, global batch 8; returns the YAML path."""
    path = output.with_suffix(".yaml")
    path.write_text(yaml.safe_dump(tiny_training(data, output)))
    return path


def torchrun(config: Path, **popen) -> subprocess.Popen:
    """`fusionff train CONFIG` on 2 ranks (torchrun --standalone, gloo on the CPU)."""
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2"]
    command += ["--standalone", "-m", "fusionff.cli", "train", str(config)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, **popen
    )


def finish(process: subprocess.Popen) -> str:
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err[-3000:]
    return out


def kill_after_first_checkpoint(job: subprocess.Popen, checkpoint: Path) -> None:
    """SIGKILL a torchrun job and its workers once ``checkpoint`` exists, as a batch system
    ending the job would (torchrun starts each worker in a session of its own)."""
    deadline = time.monotonic() + 120
    while not checkpoint.exists() and job.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    workers = Path(f"/proc/{job.pid}/task/{job.pid}/children").read_text().split()
    for pid in map(int, workers):
        os.killpg(pid, signal.SIGKILL)
    job.kill()
    job.communicate()


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One config trained by one process and by a 2-rank torchrun job that is killed after its
    first checkpoint and started again (torchrun starts take most of this test's time, so the
    uninterrupted 2-rank run is left out: the resumed one must equal the single process all the
    same). Returns (tmp dir, whether the job was killed before its end, stdout of the resumed
    job)."""
    tmp = tmp_path_factory.mktemp("ddp")
    write_toy_dataset(tmp / "toy.h5", n=40, seed=0)
    config = write_config(tmp / "toy.h5", tmp / "ddp")
    job = torchrun(config)
    single = Trainer(TrainConfig.from_yaml(write_config(tmp / "toy.h5", tmp / "single")))
    single.log = io.StringIO()
    single.fit()
    kill_after_first_checkpoint(job, tmp / "ddp" / "checkpoint.pt")
    killed_early = not (tmp / "ddp" / "model.fff").exists()
    return tmp, killed_early, finish(torchrun(config))


def test_two_ranks_write_one_model_equal_to_one_process(runs):
    """2 ranks write one model file, one checkpoint and one metrics table (rank 0's), and
    train the weights, validation errors and per-epoch history of one process with the same
    global batch: weights within 1e-10, validation metrics and losses within 1e-9 relative."""
    tmp, _, stdout = runs
    ddp, single = tmp / "ddp", tmp / "single"
    assert sorted(p.name for p in ddp.glob("*.fff")) == ["model.fff"]
    assert sorted(p.name for p in ddp.glob("checkpoint*")) == ["checkpoint.pt"]
    assert stdout.count("model: ") == 1 and stdout.count("test split (") == 1
    assert "data-parallel over 2 ranks" in (ddp / "train.log").read_text()
    a, b = load_model(ddp / "model.fff"), load_model(single / "model.fff")
    for key, x in a.state_dict().items():
        assert torch.allclose(x, b.state_dict()[key], rtol=0, atol=WEIGHT_ATOL), key
    ma, mb = (json.loads((d / "metrics.json").read_text()) for d in (ddp, single))
    assert ma["epochs"] == mb["epochs"] == 4 and ma["best_epoch"] == mb["best_epoch"]
    for split in ("validation", "test"):
        for sa, sb in zip(ma[split]["states"], mb[split]["states"], strict=True):
            for key in ("energy_mae", "force_mae", "energy_rmse", "force_rmse"):
                assert sa[key] == pytest.approx(sb[key], rel=METRIC_RTOL), (split, key)
    ha, hb = (
        [json.loads(line) for line in (d / "history.jsonl").read_text().splitlines()]
        for d in (ddp, single)
    )
    assert [r["lr"] for r in ha] == [r["lr"] for r in hb]  # the same schedule decisions
    for ra, rb in zip(ha, hb, strict=True):
        assert ra["val_loss"] == pytest.approx(rb["val_loss"], rel=METRIC_RTOL)
        assert ra["train_loss"] == pytest.approx(rb["train_loss"], rel=METRIC_RTOL)


def test_killed_torchrun_job_resumes_from_its_checkpoint(runs):
    """The 2-rank job killed (SIGKILL to torchrun and its workers) after its first checkpoint
    had written no model; started again it resumed from that checkpoint, and its history holds
    each epoch once (the weights it ended with are checked against one process above)."""
    tmp, killed_early, _ = runs
    assert killed_early
    log = (tmp / "ddp" / "train.log").read_text()
    resumed = [int(line.split()[-1]) for line in log.splitlines() if line.startswith("resuming")]
    assert len(resumed) == 1 and 1 <= resumed[0] < 4
    history = (tmp / "ddp" / "history.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in history] == [1, 2, 3, 4]
