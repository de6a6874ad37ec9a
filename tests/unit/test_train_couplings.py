"""Training with couplings: the data read couplings and their masks (files with, without and
mixed), the trainer refuses a coupling weight it cannot honour, and a few epochs with
``loss.nacs > 0`` lower the phase-free coupling error of learned couplings on a toy."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from fusionff.data.dataset import MultiStateDataset
from fusionff.data.structure import Structure
from fusionff.train.config import TrainConfig
from fusionff.train.data import load_training_data
from fusionff.train.evaluate import evaluate
from fusionff.train.toy import _COUPLING, _MORSE_A, _MORSE_D, _OFFSET, _R0, _R1, toy_energies
from fusionff.train.trainer import Trainer
from tests.integration.train_helpers import TINY_MODEL


def _toy_coupling(numbers: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """d_01 (N, 3) 1/Angstrom of the toy's two-state model (:mod:`fusionff.train.toy`): H =
    [[h11, c], [c, h22]] with constant c, so d_01 = -c grad a / (2 (a^2 + c^2)), a = (h11 -
    h22) / 2."""
    x = torch.tensor(positions, requires_grad=True)
    i, j = torch.triu_indices(len(numbers), len(numbers), offset=1)
    r = (x[i] - x[j]).norm(dim=-1)
    morse = lambda r0: (_MORSE_D * (1 - torch.exp(-_MORSE_A * (r - r0))) ** 2 - _MORSE_D).sum()  # noqa: E731
    a = (morse(_R0) - morse(_R1) - _OFFSET) / 2
    (grad_a,) = torch.autograd.grad(a, x)
    return (-_COUPLING * grad_a / (2 * (a**2 + _COUPLING**2))).detach().numpy()


def write_coupling_toy(path, n: int, seed: int, unlabelled_every: int = 5) -> None:
    """Toy molecules (3-5 H/C/O atoms) with energies, forces and couplings d_01 whose sign is
    random per structure (as from a quantum chemistry program); every ``unlabelled_every``-th
    structure has no couplings."""
    rng = np.random.default_rng(seed)
    structures = []
    for k in range(n):
        size = int(rng.integers(3, 6))
        z = rng.choice([1, 6, 8], size=size)
        x = [np.zeros(3)]
        while len(x) < size:
            y = rng.uniform(-1.6, 1.6, 3)
            if min(np.linalg.norm(y - p) for p in x) > 1.0:
                x.append(y)
        x = np.array(x)
        pos = torch.tensor(x, requires_grad=True)
        energies = toy_energies(z, pos)
        forces = -torch.stack([torch.autograd.grad(e, pos, retain_graph=True)[0] for e in energies])
        nacs = None
        if k % unlabelled_every != unlabelled_every - 1:
            d = _toy_coupling(z, x) * rng.choice([-1.0, 1.0])
            nacs = np.zeros((size, 2, 2, 3))
            nacs[:, 0, 1], nacs[:, 1, 0] = d, -d
        structures.append(
            Structure(
                z,
                x,
                energies.detach().numpy(),
                forces.detach().numpy().transpose(1, 0, 2),
                None,
                None,
                nacs=nacs,
            )
        )
    with MultiStateDataset.create(path, 2) as ds:
        ds.extend(structures)


def _write_plain(path, n: int = 3) -> None:
    rng = np.random.default_rng(9)
    structures = [
        Structure(np.array([1, 6]), np.array([[0.0, 0, 0], [1.1, 0, 0]]), rng.normal(size=2),
                  rng.normal(size=(2, 2, 3)), None, None)
        for _ in range(n)
    ]  # fmt: skip
    with MultiStateDataset.create(path, 2) as ds:
        ds.extend(structures)


def test_training_data_read_couplings_and_masks(tmp_path):
    """Couplings and masks load as stored; a file without couplings adds zeros and False
    masks; labels carry the batch's couplings (n, S, S, 3) and mask (B,); data without any
    couplings load as before (nacs None)."""
    write_coupling_toy(tmp_path / "c.h5", n=10, seed=0)
    _write_plain(tmp_path / "p.h5")
    with MultiStateDataset.open(tmp_path / "c.h5") as ds:
        stored = ds.arrays()
    data = load_training_data([tmp_path / "c.h5", tmp_path / "p.h5"], 3.0)
    assert data.has_nacs and data.nacs.shape == (data.n_atoms.sum(), 2, 2, 3)
    assert data.nac_mask.tolist() == [k % 5 != 4 for k in range(10)] + [False] * 3
    first = data.atom_indices(np.arange(10))
    assert np.array_equal(data.nacs[first], stored["nacs"])
    assert np.all(data.nacs[data.atom_offsets[10] :] == 0)
    batch = np.array([12, 1, 4])
    labels = data.labels(batch, torch.float64, torch.device("cpu"))
    assert labels.nac_mask.tolist() == [False, True, False]
    assert torch.equal(labels.nacs, torch.as_tensor(data.nacs[data.atom_indices(batch)]))
    plain = load_training_data([tmp_path / "p.h5"], 3.0)
    assert plain.nacs is None and not plain.has_nacs
    assert plain.labels(np.arange(3), torch.float64, torch.device("cpu")).nacs is None


def _config(data, output, nacs: float, **model) -> TrainConfig:
    return TrainConfig.from_dict(
        {
            "data": str(data),
            "output": str(output),
            "model": {**TINY_MODEL, "readout_hidden": 8, **model},
            "split": {"train": 0.7, "validation": 0.15, "test": 0.15},
            "batch_size": 4,
            "max_epochs": 6,
            "device": "cpu",
            "seed": 1,
            "ema_decay": 0.5,
            "loss": {"energy": 1.0, "forces": 1.0, "nacs": nacs},
            "optimizer": {"lr": 0.02},
            "schedule": {"name": "none"},
        }
    )


def test_coupling_weight_needs_couplings_in_data_and_model(tmp_path):
    """loss.nacs > 0 with data without couplings, or with a model that gives none, is an
    error that says which; loss.nacs = 0 trains as before."""
    _write_plain(tmp_path / "p.h5", n=10)
    with pytest.raises(ValueError, match="no labelled couplings"):
        Trainer(_config(tmp_path / "p.h5", tmp_path / "a", 1.0, couplings=True), log=io.StringIO())
    write_coupling_toy(tmp_path / "c.h5", n=10, seed=1)
    with pytest.raises(ValueError, match="gives no couplings"):
        Trainer(_config(tmp_path / "c.h5", tmp_path / "b", 1.0), log=io.StringIO())
    assert not Trainer(
        _config(tmp_path / "c.h5", tmp_path / "c", 0.0), log=io.StringIO()
    ).train_couplings


def test_a_few_epochs_with_coupling_loss_lower_the_coupling_error(tmp_path):
    """Learned couplings (adiabatic head) trained 10 epochs on 40 toy structures with
    loss.nacs = 100: the phase-free coupling MAE on the test split falls below 0.8 of the
    untrained model's (which predicts about zero: MAE = mean |d_ref|). Measured: 0.156 against
    0.227 1/Angstrom (a run with loss.nacs = 0 stays at 0.227). The history and the final
    metrics table in train.log report it."""
    write_coupling_toy(tmp_path / "c.h5", n=40, seed=2)
    config = _config(tmp_path / "c.h5", tmp_path / "run", 100.0, couplings=True)
    config.max_epochs = 10
    trainer = Trainer(config, log=io.StringIO())
    test = trainer.split["test"]
    (before,) = evaluate(trainer.model, trainer.data, test)["couplings"]
    result = trainer.fit()
    (after,) = result.test_metrics["couplings"]
    assert before["mae"] > 0.95 * before["ref_mae"]
    assert after["mae"] < 0.8 * before["mae"]
    assert all(r["val_nac_mae"][0] is not None for r in result.history)
    assert "(coupling, 1/A, phase-free" in (tmp_path / "run" / "train.log").read_text()
