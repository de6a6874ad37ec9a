"""The shipped stilbene potentials: they load without running code, their model card's test
errors are reproduced from the files, and the fusion model predicts R1's Franck-Condon point.

These tests read ``potentials/`` and ``data/stilbene/`` of this repository; they are what makes
the numbers in ``potentials/stilbene-r1.md`` checkable by anyone with a clone.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from ase.io import read

from fusionff.cli import main
from fusionff.models.io import load_model
from fusionff.potential import Potential
from fusionff.train.data import load_training_data
from fusionff.train.evaluate import evaluate
from fusionff.train.split import read_split

ROOT = Path(__file__).resolve().parents[2]
POTENTIALS = ROOT / "potentials"
STILBENE = ROOT / "data" / "stilbene"
MODELS = {
    "fusion (shipped)": ("stilbene-r1.fff", "training/stilbene-r1"),
    "plain MACE": ("stilbene-r1-plain.fff", "training/stilbene-r1-plain"),
}


@pytest.fixture(scope="module")
def card() -> dict:
    return json.loads((POTENTIALS / "stilbene-r1.metrics.json").read_text())


def test_shipped_models_describe_themselves_and_fusion_is_smaller():
    """Both files load from their header alone (torch.load weights_only): S0 and S1 of H/C,
    fusion on in the shipped model and off in its counterpart, and the fusion model has fewer
    parameters than the plain one (the comparison the model card makes)."""
    fusion = load_model(POTENTIALS / "stilbene-r1.fff")
    plain = load_model(POTENTIALS / "stilbene-r1-plain.fff")
    for model, is_fusion in ((fusion, True), (plain, False)):
        assert model.n_states == 2
        assert sorted(model.elements) == ["C", "H"]
        assert model.config.fusion is is_fusion
    assert fusion.num_parameters() < plain.num_parameters()


@pytest.mark.slow  # 9-12 s per model on two cores
@pytest.mark.parametrize("name", list(MODELS))
def test_model_card_errors_are_reproduced_from_the_files(name, card):
    """Energy and force MAEs per state and the gap MAE on the stored test split, recomputed
    here from the shipped model file and dataset, equal the numbers of the model card."""
    file, run = MODELS[name]
    model = load_model(POTENTIALS / file)
    split = json.loads((POTENTIALS / run / "split.json").read_text())
    data = load_training_data([ROOT / f["path"] for f in split["files"]], model.r_max)
    test = read_split(POTENTIALS / run / "split.json", data)["test"]
    measured = evaluate(model, data, test, batch_size=16)
    stated = card[name]["metrics"]["all"]
    assert measured["n_structures"] == stated["n_structures"] == len(split["test"])
    for s in range(2):
        for key in ("energy_mae", "force_mae"):
            assert measured["states"][s][key] == pytest.approx(
                stated["states"][s][key], rel=1e-3
            ), (name, s, key)
    assert measured["gaps"][0]["mae"] == pytest.approx(stated["gaps"][0]["mae"], rel=1e-3)


def test_fusion_potential_predicts_the_vertical_gap_at_the_trans_minimum():
    """At R1's trans minimum (data/stilbene/trans-r1.xyz) the shipped potential's S1-S0 gap is
    within 0.1 eV of R1's 4.061 eV (minima.json), S1 lies above S0, and the forces on S0 are
    small (the geometry is a minimum of the reference: largest R1 force 0.003 eV/A)."""
    reference = json.loads((STILBENE / "minima.json").read_text())["trans"]
    atoms = read(STILBENE / "trans-r1.xyz")
    out = Potential(POTENTIALS / "stilbene-r1.fff", device="cpu").evaluate(
        atoms.numbers, atoms.positions[None]
    )
    energies = out["energies"][0].double().numpy()
    gap = energies[1] - energies[0]
    assert gap > 0
    assert abs(gap - reference["vertical_gap_eV"]) < 0.1, gap
    s0_forces = out["forces"][0, 0].double().numpy()
    assert np.abs(s0_forces).max() < 0.5, np.abs(s0_forces).max()


@pytest.mark.parametrize("job", ["stilbene_r2_small_cpu.yaml", "stilbene_small_cpu.yaml"])
def test_readme_main_job_input_runs_on_the_shipped_potential(tmp_path, job):
    """md/stilbene_r2_small_cpu.yaml (the README's stilbene main job, level R2) and its R1
    counterpart md/stilbene_small_cpu.yaml, cut to 2 trajectories of 5 fs: the S0
    optimisation on the potential, its Hessian, Wigner sampling and the S1 dynamics run, and
    both trajectories start on S1 with a positive gap and end without a failure flag."""
    raw = yaml.safe_load((ROOT / "md" / job).read_text())
    raw.update(n_traj=2, batch_size=2, time_fs=5.0, output=str(tmp_path / "run"))
    raw["potential"] = str(ROOT / raw["potential"])
    raw["structure"] = str(ROOT / raw["structure"])
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(raw))
    assert main(["run", str(path)]) == 0
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert len(summary["trajectories"]) == 2
    for record in summary["trajectories"]:
        assert record["initial_state"] == 1 and record["initial_gap_ev"] > 0
        assert record["status"] in ("time-limit", "stopped"), record
