"""Training config: built from YAML; unknown keys, wrong types and bad values name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from fusionff.train.config import ConfigError, TrainConfig

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "data" / "examples" / "train_tiny.yaml"


def build(**overrides):
    return TrainConfig.from_dict({"data": "d.h5", **overrides})


def test_defaults_and_single_data_path_become_a_list():
    """A config with only `data` takes every default; a single path becomes a list."""
    c = build()
    assert c.data == ["d.h5"]
    assert c.ema_decay == 0.99 and c.optimizer.name == "adam" and c.schedule.name == "plateau"
    assert TrainConfig.from_dict(c.to_dict()) == c


@pytest.mark.parametrize("name", sorted(p.name for p in (REPO / "potentials").glob("*.yaml")))
def test_shipped_training_recipes_parse_and_their_stages_change_only_training(name):
    """Every potentials/*.yaml is a valid config, and a later stage's recipe
    (NAME.stageK.yaml) has the same model, data, split and output as the first stage's
    (NAME.yaml): `fusionff train --new-stage` refuses anything else."""
    config = TrainConfig.from_yaml(REPO / "potentials" / name)
    base_name = name.split(".stage")[0].removesuffix(".yaml") + ".yaml"
    base = TrainConfig.from_yaml(REPO / "potentials" / base_name)
    for key in ("model", "split", "output", "seed", "dtype"):
        assert getattr(config, key) == getattr(base, key), (name, key)
    assert config.data[: len(base.data)] == base.data


def test_example_config_parses():
    """data/examples/train_tiny.yaml is a valid config."""
    c = TrainConfig.from_yaml(EXAMPLE)
    assert c.model["channels"] == 8 and c.loss.states == [1.0, 1.0]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"max_epoch": 3}, r"max_epoch: unknown key \(did you mean 'max_epochs'\?\)"),
        ({"model": {"chanels": 8}}, r"model\.chanels: unknown key \(did you mean 'channels'\?\)"),
        ({"split": {"trian": 0.5}}, r"split\.trian: unknown key"),
        ({"optimizer": {"lr": "fast"}}, r"optimizer\.lr: expected float, got 'fast'"),
        ({"batch_size": 2.5}, r"batch_size: expected int"),
        ({"batch_size": True}, r"batch_size: expected int"),
        ({"model": {"fusion": 1}}, r"model\.fusion: expected bool"),
        ({"model": {"radial_mlp": [8, "x"]}}, r"model\.radial_mlp\[1\]: expected int"),
        ({"model": {"e0s": {"H": ["a"]}}}, r"model\.e0s\.H\[0\]: expected float"),
        ({"loss": [1, 2]}, r"loss: expected a mapping"),
        ({"model": {"dtype": "float32"}}, r"model\.dtype: set dtype at the top level"),
    ],
)
def test_unknown_keys_and_wrong_types_name_the_key(raw, message):
    """Each mistake raises ConfigError whose message names the (nested) key."""
    with pytest.raises(ConfigError, match=message):
        build(**raw)


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ({"device": "gpu"}, "device"),
        ({"dtype": "float16"}, "dtype"),
        ({"ema_decay": 1.0}, "ema_decay"),
        ({"batch_size": 0}, "batch_size"),
        ({"optimizer": {"name": "sgd"}}, "optimizer.name"),
        ({"schedule": {"name": "step"}}, "schedule.name"),
        ({"split": {"train": 1.5}}, "split.train"),
        ({"split": {"train": 0.8, "validation": 0.3}}, "split"),
        ({"early_stopping_patience": 0}, "early_stopping_patience"),
        ({"loss": {"kind": "l1"}}, "loss.kind"),
        ({"loss": {"kind": "huber", "huber_delta_forces": 0.0}}, "loss.huber_delta_forces"),
        ({"loss": {"huber_delta_energy": -1.0}}, "loss.huber_delta_energy"),
        ({"mask_forces_above": 0.0}, "mask_forces_above"),
        ({"loss": {"gap_seam_weight": -1.0}}, "loss.gap_seam_weight"),
        ({"loss": {"gap_seam_scale": 0.0}}, "loss.gap_seam_scale"),
    ],
)
def test_invalid_values_name_the_key(raw, key):
    """Values of the right type but outside their range raise ConfigError naming the key."""
    with pytest.raises(ConfigError, match=rf"^{key}: "):
        build(**raw)


def test_loss_kind_gives_the_huber_thresholds():
    """kind mse: no thresholds (squares); kind huber: the configured thresholds."""
    assert build().loss.deltas() == (None, None)
    huber = build(loss={"kind": "huber", "huber_delta_energy": 0.02, "huber_delta_forces": 1.0})
    assert huber.loss.deltas() == (0.02, 1.0)


def test_missing_data_is_an_error():
    """A config without `data` names the missing key."""
    with pytest.raises(ConfigError, match="data: missing required key"):
        TrainConfig.from_dict({"max_epochs": 3})


def test_split_counts_stay_ints_and_fractions_floats():
    """In `split`, 30 is a count and 0.1 a fraction; ints are accepted where floats are."""
    c = build(split={"train": 30, "validation": 0.1}, optimizer={"lr": 1})
    assert c.split.train == 30 and isinstance(c.split.train, int)
    assert isinstance(c.split.validation, float)
    assert c.optimizer.lr == 1.0 and isinstance(c.optimizer.lr, float)


def test_yaml_errors_name_the_file(tmp_path):
    """Errors from a YAML file start with its path; a missing file is FileNotFoundError."""
    path = tmp_path / "c.yaml"
    path.write_text("data: d.h5\nmodel:\n  chanels: 4\n")
    with pytest.raises(ConfigError, match=r"c\.yaml: model\.chanels"):
        TrainConfig.from_yaml(path)
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        TrainConfig.from_yaml(tmp_path / "nope.yaml")
