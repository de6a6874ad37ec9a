"""Training with ``init_from``: a fresh run starts from a model file's weights with its own
data's statistics, records the file, and a resumed run goes on from its checkpoint."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from fusionff.models.config import ModelConfig
from fusionff.models.io import read_header, save_model
from fusionff.models.multistate_mace import MultiStateMACE
from fusionff.train.config import ConfigError, TrainConfig
from fusionff.train.data import file_sha256
from fusionff.train.statistics import fit_e0s, scale_and_shift
from fusionff.train.toy import write_toy_dataset
from fusionff.train.trainer import Trainer

from .train_helpers import TINY_MODEL, tiny_training


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """30 toy structures (H, C, O; 2 states)."""
    path = tmp_path_factory.mktemp("toy") / "toy.h5"
    write_toy_dataset(path, n=30, seed=0)
    return path


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """A model file of the tiny architecture whose reference energies and scales belong to
    another reference level (energy zero 1000 eV per atom away, scale 7)."""
    torch.manual_seed(123)
    config = ModelConfig(
        elements=["H", "C", "O"],
        n_states=2,
        avg_num_neighbors=3.25,
        e0s={s: [1000.0, 1001.0] for s in ("H", "C", "O")},
        scale=[7.0, 7.0],
        shift=[0.5, 0.5],
        dtype="float32",
        **TINY_MODEL,
    )
    path = tmp_path_factory.mktemp("pre") / "pre.fff"
    save_model(MultiStateMACE(config=config), path)
    return path


def config(data, output, init_from, **overrides) -> TrainConfig:
    """The tiny training config for one epoch, with the default loss and schedule."""
    init_from = None if init_from is None else str(init_from)
    raw = tiny_training(data, output, max_epochs=1, init_from=init_from)
    del raw["loss"], raw["schedule"]
    return TrainConfig.from_dict({**raw, **overrides})


def test_fresh_run_starts_from_the_file_with_statistics_of_its_own_data(toy, pretrained, tmp_path):
    """After construction every parameter equals the file's (float32 -> float64), while e0,
    scale and shift are the fits to this run's training split, not the file's; elements and
    avg_num_neighbors are the file's. The log names the file; metrics.json and the model
    file's metadata record its path and SHA-256."""
    trainer = Trainer(config(toy, tmp_path, pretrained))
    file_model = MultiStateMACE(config=ModelConfig.from_dict(read_header(pretrained)["config"]))
    file_model.load_state_dict(torch.load(pretrained, weights_only=True)["weights"])
    for name, p in trainer.model.named_parameters():
        assert torch.equal(p, dict(file_model.named_parameters())[name].double()), name
    for name, p in trainer.ema.model.named_parameters():  # validation starts from them too
        assert torch.equal(p, dict(trainer.model.named_parameters())[name]), name

    train, elements = trainer.split["train"], ["H", "C", "O"]
    e0 = fit_e0s(trainer.data, train, elements)
    scale, shift = scale_and_shift(trainer.data, train, elements, e0)
    assert trainer.model.elements == elements
    assert trainer.model.config.avg_num_neighbors == 3.25
    np.testing.assert_allclose(trainer.model.e0.numpy(), e0)
    np.testing.assert_allclose(trainer.model.scale.numpy(), scale)
    np.testing.assert_allclose(trainer.model.shift.numpy(), shift)
    assert np.abs(e0).max() > 1000.0 and not np.allclose(e0[:, 0], 1000.0)  # toy zeros

    result = trainer.fit()
    log = (tmp_path / "train.log").read_text()
    assert f"init_from {pretrained} (sha256 {file_sha256(pretrained)[:12]}): copied" in log
    record = json.loads((tmp_path / "metrics.json").read_text())["init_from"]
    assert record["path"] == str(pretrained) and record["sha256"] == file_sha256(pretrained)
    assert record["fresh"] == {} and len(record["copied"]) == len(list(trainer.model.parameters()))
    metadata = read_header(result.model_path)["metadata"]["training"]
    assert metadata["init_from"]["sha256"] == file_sha256(pretrained)


def test_other_head_keeps_fresh_readouts_and_logs_them(toy, pretrained, tmp_path):
    """An adiabatic file into a diabatic run: the readout's parameters keep the seed's fresh
    initialisation (equal to a run without init_from) and the log and record name them."""
    diabatic = {**TINY_MODEL, "head": "diabatic"}
    scratch = Trainer(config(toy, tmp_path / "a", None, model=diabatic))
    tuned = Trainer(config(toy, tmp_path / "b", pretrained, model=diabatic))
    fresh = tuned.init_from["fresh"]
    assert fresh and all(n.startswith("readouts.") for n in fresh)
    ours, theirs = dict(tuned.model.named_parameters()), dict(scratch.model.named_parameters())
    assert all(torch.equal(ours[n], theirs[n]) for n in fresh)
    assert any(not torch.equal(ours[n], theirs[n]) for n in tuned.init_from["copied"])
    line = next(
        s for s in (tmp_path / "b" / "train.log").read_text().splitlines() if "init_from" in s
    )
    assert "freshly initialised: readouts.0." in line and "in the file" in line


@pytest.mark.parametrize(
    ("model", "key"),
    [
        ({**TINY_MODEL, "r_max": 3.5}, "model.r_max"),
        ({**TINY_MODEL, "elements": ["C", "H", "O"]}, "model.elements"),
    ],
)
def test_architecture_mismatch_is_refused_naming_the_key(toy, pretrained, tmp_path, model, key):
    """A run whose r_max or elements differ from the file's stops with a ConfigError naming
    the key before any training."""
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        Trainer(config(toy, tmp_path, pretrained, model=model))
    assert not (tmp_path / "checkpoint.pt").exists()


def test_resumed_run_continues_from_its_checkpoint_not_the_file(toy, pretrained, tmp_path):
    """A run started with init_from and continued (the file is gone by then) restores the
    checkpoint's weights, does not read the file, keeps the file's record in its metrics;
    adding init_from to a run begun without it is refused (start afresh instead)."""
    path = tmp_path / "pre.fff"
    path.write_bytes(pretrained.read_bytes())
    Trainer(config(toy, tmp_path / "run", path)).fit()
    sha = file_sha256(path)
    path.unlink()

    resumed = Trainer(config(toy, tmp_path / "run", path, max_epochs=2))
    state = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    assert resumed.epoch == 1
    assert all(torch.equal(v, state["model"][k]) for k, v in resumed.model.state_dict().items())
    resumed.fit()
    record = json.loads((tmp_path / "run" / "metrics.json").read_text())["init_from"]
    assert record["sha256"] == sha and record["path"] == str(path)

    Trainer(config(toy, tmp_path / "plain", None)).fit()
    with pytest.raises(ValueError, match="init_from: None -> "):
        Trainer(config(toy, tmp_path / "plain", pretrained, max_epochs=2))


def test_a_deeper_run_starts_from_the_file_it_grows(toy, tmp_path):
    """A two-layer run, then a fresh three-layer run with init_from its model file on the same
    data and split (so the same e0, scale and shift): before any step the grown model's
    energies and forces on the validation structures equal the file's to round-off, its log
    names the inserted layer, and after training it has moved away from the file."""
    two = {**TINY_MODEL, "num_layers": 2, "fusion": True}
    first = Trainer(TrainConfig.from_dict(tiny_training(toy, tmp_path / "two", model=two)))
    file = first.fit().model_path
    (tmp_path / "three").mkdir()
    (tmp_path / "three" / "split.json").write_text((tmp_path / "two" / "split.json").read_text())
    raw = tiny_training(toy, tmp_path / "three", model={**two, "num_layers": 3}, max_epochs=2)
    grown = Trainer(TrainConfig.from_dict({**raw, "init_from": str(file)}))

    source = MultiStateMACE(config=ModelConfig.from_dict(read_header(file)["config"]))
    source.load_state_dict(torch.load(file, weights_only=True)["weights"])
    graph = grown.data.graph(np.asarray(grown.split["validation"]), torch.float64, "cpu")
    theirs, ours = source.double()(graph), grown.model(graph)
    torch.testing.assert_close(ours["energies"], theirs["energies"], rtol=0, atol=1e-9)
    torch.testing.assert_close(ours["forces"], theirs["forces"], rtol=0, atol=1e-9)
    log = (tmp_path / "three" / "train.log").read_text()
    assert "layer 1 inserted, starts as the identity" in log

    grown.fit()
    after = grown.model(graph)["energies"]
    assert not torch.allclose(after, theirs["energies"])
