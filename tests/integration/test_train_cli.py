"""`fusionff train` and `fusionff eval` from the command line, and their errors on bad inputs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from fusionff import load_model
from fusionff.cli import main
from fusionff.data.dataset import MultiStateDataset
from fusionff.data.structure import Structure
from fusionff.train.toy import toy_structures

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "data" / "examples" / "train_tiny.yaml"


def write_config(tmp_path, **overrides) -> Path:
    """The example config, with its data path made absolute, output in tmp_path, 2 epochs."""
    raw = yaml.safe_load(EXAMPLE.read_text())
    raw["data"] = str(ROOT / raw["data"])
    raw.update(output=str(tmp_path / "run"), max_epochs=2, device="cpu")
    raw.update(overrides)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The example config trained for 2 epochs through the CLI: (tmp dir, stdout)."""
    tmp = tmp_path_factory.mktemp("cli")
    config = write_config(tmp)
    out = subprocess.run(
        [sys.executable, "-m", "fusionff.cli", "train", str(config)],
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        cwd=tmp,
    )
    assert out.returncode == 0, out.stderr
    return tmp, out


def test_train_cli_prints_progress_and_test_table(trained):
    """`fusionff train` on the example config prints a progress line per epoch (stderr) and
    the test metrics table (stdout), and writes the model."""
    tmp, out = trained
    progress = [line for line in out.stderr.splitlines() if line.startswith("epoch")]
    assert len(progress) == 2 and "val MAE S0 E" in progress[0] and "| S1 E" in progress[0]
    assert out.stdout.startswith("test split (")
    assert "S1-S0" in out.stdout and "model: " in out.stdout
    assert (tmp / "run" / "model.fff").is_file()


def test_eval_cli_prints_metrics_table(trained, capsys):
    """`fusionff eval MODEL DATA` prints the table for the whole dataset and writes --json."""
    tmp, _ = trained
    data = ROOT / "data" / "examples" / "toy_two_state.h5"
    rc = main(
        [
            "eval",
            str(tmp / "run" / "model.fff"),
            str(data),
            "--device",
            "cpu",
            "--batch-size",
            "5",
            "--json",
            str(tmp / "m.json"),
        ]
    )
    text = capsys.readouterr().out
    assert rc == 0
    assert "(39 structures)" in text.splitlines()[0]
    assert "S0 " in text and "S1-S0" in text and "near intersection" in text
    metrics = json.loads((tmp / "m.json").read_text())
    assert metrics["n_structures"] == 39 and len(metrics["states"]) == 2
    assert "by_gap" not in metrics and "by reference gap" not in text
    args = ["eval", str(tmp / "run" / "model.fff"), str(data), "--device", "cpu"]
    assert main([*args, "--gap-bins", "0.5", "2", "--json", str(tmp / "bins.json")]) == 0
    text = capsys.readouterr().out
    bins = json.loads((tmp / "bins.json").read_text())["by_gap"]
    assert [(b["gap_from_eV"], b["gap_to_eV"]) for b in bins] == [(None, 0.5), (0.5, 2), (2, None)]
    assert sum(b["n_structures"] for b in bins) == metrics["gaps"][0]["n"]
    assert "by reference gap E1 - E0 (eV):" in text and "  0.5 <= gap < 2: " in text
    assert main([*args, "--gap-bins", "2", "1"]) == 1
    assert "gap_edges must be increasing" in capsys.readouterr().err


def test_eval_cli_masks_large_force_labels(trained, capsys):
    """`fusionff eval --mask-forces-above X` counts forces only of states whose largest atomic
    force is at most X eV/A, and says how many it left out; a second stage trains from the
    command line with --new-stage."""
    tmp, _ = trained
    data = ROOT / "data" / "examples" / "toy_two_state.h5"
    model = str(tmp / "run" / "model.fff")
    with MultiStateDataset.open(data) as ds:
        a = ds.arrays()
    norms = np.linalg.norm(a["forces"], axis=-1)
    largest = np.maximum.reduceat(norms, a["offsets"][:-1], axis=0)
    usable = a["status"] != "failed"
    limit = round(float(np.median(largest[usable & a["force_mask"].all(axis=1)])), 3)
    kept = (a["force_mask"] & (largest <= limit))[usable].sum(axis=0)
    args = ["eval", model, str(data), "--device", "cpu", "--json"]
    assert main([*args, str(tmp / "all.json")]) == 0
    assert main([*args, str(tmp / "masked.json"), "--mask-forces-above", str(limit)]) == 0
    assert f"force labels left out (above {limit} eV/A)" in capsys.readouterr().out
    everything = json.loads((tmp / "all.json").read_text())["states"]
    masked = json.loads((tmp / "masked.json").read_text())["states"]
    assert [s["n_forces"] for s in masked] == list(kept)
    assert all(m["n_forces"] < e["n_forces"] for m, e in zip(masked, everything, strict=True))
    assert [m["energy_mae"] for m in masked] == [e["energy_mae"] for e in everything]
    (tmp / "stage2").mkdir()
    stage2 = write_config(tmp / "stage2", output=str(tmp / "run"), max_epochs=3)
    raw = yaml.safe_load(stage2.read_text())
    raw["loss"]["kind"] = "huber"
    stage2.write_text(yaml.safe_dump(raw))
    assert main(["train", str(stage2), "--new-stage"]) == 0
    assert "stage 2 from the best weights" in (tmp / "run" / "train.log").read_text()


def test_eval_cli_on_a_runs_test_split(trained, tmp_path, capsys):
    """`fusionff eval MODEL --run RUN_DIR` evaluates on the run's stored test split: the same
    structures and metrics as the run's own metrics.json; a data file that changed since
    training, or both a dataset and --run, are refused with the reason."""
    tmp, _ = trained
    run, model = tmp / "run", str(tmp / "run" / "model.fff")
    assert main(["eval", model, "--run", str(run), "--json", str(tmp_path / "t.json")]) == 0
    assert capsys.readouterr().out.startswith(f"test split of {run} with {model}")
    measured = json.loads((tmp_path / "t.json").read_text())
    stored = json.loads((run / "metrics.json").read_text())["test"]
    assert measured["n_structures"] == stored["n_structures"] == 7
    for m, s in zip(measured["states"], stored["states"], strict=True):
        assert m["energy_mae"] == pytest.approx(s["energy_mae"], rel=1e-9)
        assert m["force_mae"] == pytest.approx(s["force_mae"], rel=1e-9)
    assert main(["eval", model, "--run", str(run), "--subset", "validation"]) == 0
    assert "validation split of" in capsys.readouterr().out
    data = ROOT / "data" / "examples" / "toy_two_state.h5"
    assert main(["eval", model, str(data), "--run", str(run)]) == 1
    assert "not both" in capsys.readouterr().err
    changed = tmp_path / "changed"
    changed.mkdir()
    split = json.loads((run / "split.json").read_text())
    copy = tmp_path / "toy_copy.h5"
    copy.write_bytes(data.read_bytes() + b"\0")
    split["files"][0]["path"] = str(copy)
    (changed / "split.json").write_text(json.dumps(split))
    assert main(["eval", model, "--run", str(changed)]) == 1
    assert "changed since the run" in capsys.readouterr().err


def _write(path, structures, n_states):
    with MultiStateDataset.create(path, n_states) as ds:
        ds.extend(structures)
    return path


def test_eval_refuses_other_number_of_states(trained, tmp_path, capsys):
    """A 3-state dataset against a 2-state model is a clear error, not a crash."""
    tmp, _ = trained
    s = Structure(
        np.array([6, 1]), np.array([[0, 0, 0], [1.1, 0, 0.0]]), np.zeros(3), None, None, None
    )
    data = _write(tmp_path / "three.h5", [s], 3)
    assert main(["eval", str(tmp / "run" / "model.fff"), str(data), "--device", "cpu"]) == 1
    assert "the data have 3 states, the model 2" in capsys.readouterr().err


def test_eval_refuses_unknown_element(trained, tmp_path, capsys):
    """A dataset with nitrogen against an H/C/O model names the structure, atom and element."""
    tmp, _ = trained
    s = Structure(
        np.array([6, 7]), np.array([[0, 0, 0], [1.1, 0, 0.0]]), np.zeros(2), None, None, None
    )
    data = _write(tmp_path / "n.h5", [s], 2)
    assert main(["eval", str(tmp / "run" / "model.fff"), str(data), "--device", "cpu"]) == 1
    err = capsys.readouterr().err
    assert "n.h5: structure 0: atom 1 is N, which is not among the model's elements" in err


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"data": "/nonexistent/data.h5"}, "dataset file not found: /nonexistent/data.h5"),
        ({"model": {"n_states": 3}}, r"model.n_states is 3 but .*toy_two_state.h5 has 2 states"),
        ({"model": {"elements": ["H", "C"]}}, "is O, which is not among the model's elements"),
        ({"model": {"chanels": 4}}, r"model.chanels: unknown key \(did you mean 'channels'\?\)"),
        ({"loss": {"states": [1.0, 1.0, 1.0]}}, "loss.states has 3 weights for 2 states"),
    ],
)
def test_train_bad_inputs_give_clear_errors(tmp_path, capsys, overrides, message):
    """Missing data, a state count or elements that do not fit the data, and config typos
    end `fusionff train` with status 1 and a message naming the problem."""
    import re

    assert main(["train", str(write_config(tmp_path, **overrides))]) == 1
    assert re.search(message, capsys.readouterr().err)


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_train_on_cuda_without_cuda_is_an_error(tmp_path, capsys):
    """device: cuda without a GPU is an error, not a silent fallback to the CPU."""
    assert main(["train", str(write_config(tmp_path, device="cuda"))]) == 1
    assert "CUDA is not available" in capsys.readouterr().err


@pytest.mark.slow
def test_killed_process_resumes_to_the_same_model(tmp_path):
    """SIGKILL a `fusionff train` process after its second checkpoint, run it again: the final
    model equals an uninterrupted run's, bit for bit (float64, CPU)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "fusionff.cli", "train"]
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    straight = write_config(tmp_path / "a", max_epochs=6)
    subprocess.run([*cmd, str(straight)], check=True, capture_output=True, env=env)
    config = write_config(tmp_path / "b", max_epochs=6)
    proc = subprocess.Popen([*cmd, str(config)], stderr=subprocess.PIPE, text=True, env=env)
    history = tmp_path / "b" / "run" / "history.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if history.exists() and len(history.read_text().splitlines()) >= 3:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "b" / "run" / "model.fff").exists(), "killed too late"
    subprocess.run([*cmd, str(config)], check=True, capture_output=True, env=env)
    a = load_model(tmp_path / "a" / "run" / "model.fff").state_dict()
    b = load_model(tmp_path / "b" / "run" / "model.fff").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_toy_structures_match_the_example_dataset():
    """data/examples/toy_two_state.h5 holds toy_structures(40, seed=0): same structures and
    status, positions to float64 round-off (numpy's vectorised math may differ in the last bit
    between versions: up to 9e-16 Angstrom measured with numpy 2.4)."""
    with MultiStateDataset.open(ROOT / "data" / "examples" / "toy_two_state.h5") as ds:
        stored = list(ds)
    for a, b in zip(stored, toy_structures(40, 0), strict=True):
        assert np.array_equal(a.numbers, b.numbers) and a.status == b.status
        np.testing.assert_allclose(a.positions, b.positions, rtol=0, atol=1e-12)
        if b.energies is not None:
            np.testing.assert_allclose(a.energies[a.energy_mask], b.energies[b.energy_mask])


def test_eval_cli_scores_a_committee_by_its_mean(trained, tmp_path, capsys):
    """`fusionff eval A.fff B.fff DATA` scores the mean of the members' energies and forces:
    its energy and force MAE per state equal those computed here with numpy from each
    member's predictions, the members' own metrics equal single-model evals, the same model
    twice scores as that model alone, and members with another cutoff are refused."""
    from fusionff.models.io import save_model
    from fusionff.train.data import load_training_data
    from fusionff.train.evaluate import predict

    tmp, _ = trained
    data = ROOT / "data" / "examples" / "toy_two_state.h5"
    a = str(tmp / "run" / "model.fff")
    model = load_model(a, device="cpu")
    torch.manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    b = str(tmp_path / "b.fff")
    save_model(model, b)
    jsons = {}
    for name, files in (("a", [a]), ("b", [b]), ("ab", [a, b]), ("aa", [a, a])):
        jsons[name] = tmp_path / f"{name}.json"
        assert main(["eval", *files, str(data), "--device", "cpu", "--json", str(jsons[name])]) == 0
    out = capsys.readouterr().out
    assert "with the mean of 2 models" in out and f"member {b}: energy MAE" in out
    got = {k: json.loads(v.read_text()) for k, v in jsons.items()}
    for member, alone in zip(got["ab"]["members"], (got["a"], got["b"]), strict=True):
        assert member["states"] == alone["states"] and member["gaps"] == alone["gaps"]
    assert got["aa"]["states"] == got["a"]["states"] and got["aa"]["gaps"] == got["a"]["gaps"]
    members = [load_model(f, device="cpu") for f in (a, b)]
    train = load_training_data([str(data)], members[0].r_max)
    rows = np.arange(len(train))
    preds = [predict(m, train, rows, 8, couplings=False) for m in members]
    energies = (preds[0].energies + preds[1].energies).numpy() / 2
    forces = (preds[0].forces + preds[1].forces).numpy() / 2
    atoms = train.atom_indices(rows)
    for s, state in enumerate(got["ab"]["states"]):
        labelled = train.energy_mask[rows, s]
        e = np.abs(energies[labelled, s] - train.energies[rows][labelled, s]).mean() * 1000
        assert state["energy_mae"] == pytest.approx(e, rel=1e-9)
        with_forces = np.repeat(train.force_mask[rows, s], train.n_atoms[rows])
        f = np.abs(forces[with_forces, s] - train.forces[atoms][with_forces, s]).mean() * 1000
        assert state["force_mae"] == pytest.approx(f, rel=1e-9)
    assert got["ab"]["states"][0]["energy_mae"] != got["a"]["states"][0]["energy_mae"]
    far = load_model(a, device="cpu")
    far.config.r_max += 1.0
    save_model(far, tmp_path / "far.fff")
    assert main(["eval", a, str(tmp_path / "far.fff"), str(data), "--device", "cpu"]) == 1
    assert "same cutoff" in capsys.readouterr().err
