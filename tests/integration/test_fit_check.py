"""data/stilbene/r3/fit_check.py on a toy run: the structures a run trained on (with
split.train_subsample) and the weights it scores."""

from __future__ import annotations

import io
import json

import pytest

from fusionff.train.config import TrainConfig
from fusionff.train.toy import write_toy_dataset
from fusionff.train.trainer import Trainer
from tests.conftest import load_script

from .train_helpers import tiny_training

fit_check = load_script("data/stilbene/r3/fit_check.py")


@pytest.fixture(scope="module")
def half_run(tmp_path_factory):
    """Three epochs of the tiny model on half the training split of 40 toy structures."""
    root = tmp_path_factory.mktemp("fit")
    data = root / "toy.h5"
    write_toy_dataset(data, n=40, seed=0)
    split = {"train": 0.6, "validation": 0.2, "test": 0.2, "train_subsample": 0.5}
    raw = tiny_training(data, root / "run", split=split, max_epochs=3)
    trainer = Trainer(TrainConfig.from_dict(raw), log=io.StringIO())
    trainer.fit()
    return root / "run", trainer


def test_best_weights_reproduce_the_runs_own_training_and_test_metrics(half_run):
    """With --weights best (model.fff) the errors on the part trained on and on the test split
    equal those the run wrote to metrics.json; the part is half the stored training split."""
    run, trainer = half_run
    result = fit_check.fit_check(run, "best")
    metrics = json.loads((run / "metrics.json").read_text())
    assert result["trained"]["n_structures"] == len(trainer.split["train"])
    stored = json.loads((run / "split.json").read_text())
    assert result["trained"]["n_structures"] == len(stored["train"]) // 2
    for ours, theirs in ((result["trained"], metrics["train"]), (result["test"], metrics["test"])):
        for a, b in zip(ours["states"], theirs["states"], strict=True):
            assert a["force_mae"] == pytest.approx(b["force_mae"], rel=1e-9)
            assert a["energy_mae"] == pytest.approx(b["energy_mae"], rel=1e-9)


def test_last_weights_are_the_checkpoints_last_epoch(half_run):
    """--weights last scores the checkpoint's EMA weights and names their epoch (the last)."""
    run, trainer = half_run
    result = fit_check.fit_check(run, "last")
    assert result["epoch"] == trainer.epoch == 3
    assert result["trained"]["n_structures"] == len(trainer.split["train"])
