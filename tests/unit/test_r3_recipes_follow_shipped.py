"""The R3 inputs that should follow the shipped committee do: each round ships new model files,
and the recipes, the GPU capacity pair and the dynamics inputs are edited by hand after it.
These checks read the shipped files' headers (no weights, no code run) and the YAML inputs, so
an input left on an older snapshot fails here instead of silently running old models (the
fourteenth session's preview ran the previous committee that way)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from fusionff.models.io import read_header

ROOT = Path(__file__).resolve().parents[2]
POTENTIALS = ROOT / "potentials"
SHIPPED = ["stilbene-r3.fff", "stilbene-r3-partner.fff", "stilbene-r3-c12.fff"]


def trained_on(name: str) -> list[str]:
    """The data files a shipped model's header says it trained on, in order."""
    return [f["path"] for f in read_header(POTENTIALS / name)["metadata"]["training"]["data"]]


def recipe(name: str) -> dict:
    return yaml.safe_load((POTENTIALS / name).read_text())


def test_the_shipped_recipe_is_what_the_shipped_wide_model_trained_on():
    """potentials/stilbene-r3.yaml names the data files of stilbene-r3.fff's header, in order,
    and its output directory holds that model (byte for byte) and the split it was scored on."""
    config = recipe("stilbene-r3.yaml")
    assert config["data"] == trained_on("stilbene-r3.fff")
    run = ROOT / config["output"]
    assert (run / "model.fff").read_bytes() == (POTENTIALS / "stilbene-r3.fff").read_bytes()
    split = json.loads((run / "split.json").read_text())
    assert [f["path"] for f in split["files"]] == config["data"]


def run_of(name: str) -> Path:
    """The training run whose model.fff is the shipped file ``name``, byte for byte."""
    shipped = (POTENTIALS / name).read_bytes()
    runs = [p.parent for p in sorted((POTENTIALS / "training").glob("*/model.fff"))]
    matches = [run for run in runs if (run / "model.fff").read_bytes() == shipped]
    assert len(matches) == 1, (name, matches)
    return matches[0]


def test_the_partner_trained_on_the_same_files_and_split_as_the_wide_model():
    """The committee's two C = 48 members share their data files and their split, structure by
    structure (the card scores the committee on the wide run's test split; a member must not
    have trained on its test structures)."""
    assert trained_on("stilbene-r3-partner.fff") == trained_on("stilbene-r3.fff")
    wide = json.loads((run_of("stilbene-r3.fff") / "split.json").read_text())
    partner = json.loads((run_of("stilbene-r3-partner.fff") / "split.json").read_text())
    for subset in ("train", "validation", "test"):
        assert partner[subset] == wide[subset], subset


@pytest.mark.parametrize("name", ["stilbene-r3-l3.yaml", "stilbene-r3-scratchwide.yaml"])
def test_the_gpu_capacity_recipes_train_on_the_shipped_data_with_its_split(name):
    """The l = 3 / l = 2 from-scratch pair trains on the shipped wide model's data files, and
    the split line the GPU stage copies names the shipped run's split.json."""
    text = (POTENTIALS / name).read_text()
    config = yaml.safe_load(text)
    assert config["data"] == trained_on("stilbene-r3.fff")
    shipped_run = recipe("stilbene-r3.yaml")["output"]
    copy = [line for line in text.splitlines() if line.lstrip("# ").startswith("cp ")]
    assert copy == [f"#     cp {shipped_run}/split.json {config['output']}/"], copy


@pytest.mark.parametrize("path", ["data/stilbene/r3/preview-run.yaml", "md/stilbene_cis_r3.yaml"])
def test_r3_dynamics_inputs_run_the_shipped_committee(path):
    """The preview (whose frames become the next labels) and the showcase name the three
    shipped model files, not a training run's."""
    config = yaml.safe_load((ROOT / path).read_text())
    assert config["potential"]["model"] == [f"potentials/{name}" for name in SHIPPED]
