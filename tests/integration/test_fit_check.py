"""data/stilbene/r3/fit_check.py on a toy run: the structures a run trained on (with
split.train_subsample) and the weights it scores."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import torch

from fusionff.data.dataset import MultiStateDataset
from fusionff.data.structure import Structure
from fusionff.models.io import load_model
from fusionff.train.config import TrainConfig
from fusionff.train.data import load_training_data
from fusionff.train.evaluate import evaluate
from fusionff.train.toy import toy_energies, write_toy_dataset
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


def _one_molecule(path, n=12, seed=3):
    """n jittered copies of one four-atom toy molecule (C, H, O, H), labelled with the toy
    model; structure 4 has no S1 forces."""
    rng = np.random.default_rng(seed)
    numbers = np.array([6, 1, 8, 1])
    base = np.array([[0.0, 0.0, 0.0], [1.1, 0.0, 0.0], [-0.4, 1.3, 0.0], [-0.3, 1.9, 0.8]])
    structures = []
    for k in range(n):
        x = torch.tensor(base + rng.normal(scale=0.05, size=base.shape), requires_grad=True)
        energies = toy_energies(numbers, x)
        forces = torch.stack(
            [-torch.autograd.grad(energies[s], x, retain_graph=True)[0] for s in (0, 1)], dim=1
        )
        structures.append(
            Structure(
                numbers=numbers,
                positions=x.detach().numpy(),
                energies=energies.detach().numpy(),
                forces=forces.numpy(),
                energy_mask=np.array([True, True]),
                force_mask=np.array([True, k != 4]),
            )
        )
    with MultiStateDataset.create(path, 2, method="toy", provenance={}) as ds:
        ds.extend(structures)


def test_per_atom_force_errors_average_to_the_force_mae(half_run, tmp_path):
    """On structures of one molecule, the per-atom force MAEs averaged over the atoms equal
    evaluate()'s force MAE of each state (every structure has the same number of atoms), and a
    structure without S1 forces is left out of S1 only."""
    run, trainer = half_run
    _one_molecule(tmp_path / "mol.h5")
    model = load_model(run / "model.fff")
    data = load_training_data([tmp_path / "mol.h5"], model.r_max)
    everything = np.arange(len(data))
    table = fit_check.per_atom_force_mae(model, data, everything)
    assert table.shape == (4, 2)
    metrics = evaluate(model, data, everything)
    for s in (0, 1):
        assert table[:, s].mean() == pytest.approx(metrics["states"][s]["force_mae"], rel=1e-9)
    assert metrics["states"][1]["n_forces"] == len(data) - 1
    only_unlabelled = fit_check.per_atom_force_mae(model, data, np.array([4]))
    assert np.isfinite(only_unlabelled[:, 0]).all() and np.isnan(only_unlabelled[:, 1]).all()


def test_per_atom_needs_one_atom_order(half_run):
    """The toy run's structures differ in their elements: --per-atom says which one differs."""
    run, _ = half_run
    with pytest.raises(ValueError, match="toy.h5: structure .* per-atom errors need one atom"):
        fit_check.fit_check(run, "best", per_atom=True)
