"""``fusionff run`` options: overrides, --show-config, threads, run identity, the registry."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from dataclasses import dataclass

import pytest
import torch
import yaml

from fusionff.cli import main
from fusionff.device import default_threads, set_threads
from fusionff.dynamics.run_config import OVERRIDES, RunConfig, RunConfigError, with_overrides
from fusionff.dynamics.runner import _config_digest, _potential_fingerprint, build_structure
from fusionff.dynamics.structures import _REGISTRY, register_structure
from fusionff.dynamics.tully import TullyModel

MOLECULE = {
    "potential": "model.fff",
    "structure": "mol.xyz",
    "initial_conditions": {"wigner": {"temperature": 300, "hessian": "compute"}, "state": 1},
    "output": "out",
    "n_steps": 100,
}
OVERRIDE_VALUES = {
    "n_traj": 7,
    "time_fs": 12.5,
    "seed": 42,
    "output": "elsewhere",
    "device": "cpu",
    "threads": 3,
}


def digest(raw: dict) -> str:
    config = RunConfig.from_dict(raw)
    return _config_digest(config.as_dict(), _potential_fingerprint(config))


def changed_keys(a: dict, b: dict, prefix: str = "") -> set[str]:
    """Dotted keys whose values differ between two nested mappings."""
    keys = set()
    for key in a.keys() | b.keys():
        left, right = a.get(key), b.get(key)
        if isinstance(left, dict) and isinstance(right, dict):
            keys |= changed_keys(left, right, f"{prefix}{key}.")
        elif left != right:
            keys.add(prefix + key)
    return keys


@pytest.mark.parametrize("key", OVERRIDES)
def test_each_override_is_the_file_saying_it_and_changes_nothing_else(tmp_path, key):
    """``fusionff run --<key> V`` resolves to the config of the file with ``<key>: V`` and
    differs from the file's own config in that key only (time_fs: in the steps it resolves
    to; n_traj: also in batch_size, which the file leaves to follow n_traj)."""
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(MOLECULE))
    value = OVERRIDE_VALUES[key]
    base = RunConfig.from_yaml(path).as_dict()
    overridden = RunConfig.from_yaml(path, {key: value}).as_dict()
    edited = dict(MOLECULE, **{key: value})
    if key == "time_fs":
        del edited["n_steps"]
    assert overridden == RunConfig.from_dict(edited).as_dict()
    expected = {"time_fs": {"n_steps"}, "n_traj": {"n_traj", "batch_size"}}.get(key, {key})
    assert changed_keys(base, overridden) == expected
    assert RunConfig.from_yaml(path, {k: None for k in OVERRIDES}).as_dict() == base


def test_override_of_an_unknown_key_is_an_error():
    with pytest.raises(RunConfigError, match="^dt: unknown key"):
        with_overrides(MOLECULE, {"dt": 0.1})


def test_threads_output_and_workers_are_not_part_of_the_run_identity():
    """A run resumes with another thread count, output directory or number of MOPAC workers;
    a value that changes results (seed) changes the identity."""
    assert (
        digest(MOLECULE) == digest(dict(MOLECULE, threads=4)) == digest(dict(MOLECULE, threads=1))
    )
    assert digest(MOLECULE) == digest(dict(MOLECULE, output="other"))
    assert digest(MOLECULE) != digest(dict(MOLECULE, seed=1))


@pytest.mark.parametrize(
    "potential, expected",
    [
        ("model.fff", "245af4729657461558073a91e4647f1109bc2d84d4a59fd3b52da707ff9fe927"),
        ({"mopac": {}}, "e16aee8b878fd9408d2cc8df55c9592a81a00dced40f8ab472d824523e099073"),
        (
            {"mopac": {"n_states": 3, "keywords": "AM1", "timeout": 60, "workers": 2}},
            "1c2a0ea2594b7b65867dc7783a50956e574c45f4b50c93d38573f1d3170f65c1",
        ),
    ],
)
def test_run_identity_is_the_one_before_the_registry(potential, expected):
    """Digests recorded before potentials came from the registry (and before ``threads``):
    checkpoints written then still resume."""
    raw = dict(MOLECULE, potential=potential, time_fs=100)
    del raw["n_steps"]
    assert digest(raw) == expected


def test_show_config_prints_every_key_with_units_and_defaults(tmp_path, capsys):
    """--show-config lists every leaf key of the resolved config once, with units and
    defaults, applies the command-line overrides, and runs nothing."""
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(dict(MOLECULE, output=str(tmp_path / "out"))))
    assert main(["run", str(path), "--show-config", "--n-traj", "5"]) == 0
    lines = capsys.readouterr().out.splitlines()
    shown = {line.split()[0]: line for line in lines}
    resolved = RunConfig.from_yaml(path).as_dict()
    expected = {k for k in _leaf_keys(resolved) if not k.startswith("potential.")}
    assert set(shown) == expected | {"potential.kind", "potential.model.path"}
    assert len(lines) == len(shown)
    assert shown["n_traj"].split()[1] == "5"
    assert "K" in shown["initial_conditions.wigner.temperature"].split()
    assert "(= 50 fs)" in shown["n_steps"]
    assert shown["dynamics.dt"].endswith("(default)")
    assert shown["seed"].endswith("(default)") and "(required)" in shown["output"]
    assert f"(here: {default_threads()})" in shown["threads"]
    assert not (tmp_path / "out").exists()


def _leaf_keys(tree: dict, prefix: str = "") -> set[str]:
    keys = set()
    for key, value in tree.items():
        if isinstance(value, dict):
            keys |= _leaf_keys(value, f"{prefix}{key}.")
        else:
            keys.add(prefix + key)
    return keys


def test_set_threads_sets_torch_and_rejects_nonsense(monkeypatch):
    before = torch.get_num_threads()
    try:
        assert set_threads(2) == 2 and torch.get_num_threads() == 2
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
        assert set_threads(None) == 1 and torch.get_num_threads() == 1
        monkeypatch.setenv("OMP_NUM_THREADS", "3")
        assert default_threads() == 3
        with pytest.raises(ValueError, match="threads: must be at least 1"):
            set_threads(0)
    finally:
        torch.set_num_threads(before)
    with pytest.raises(RunConfigError, match="^threads: must be at least 1"):
        RunConfig.from_dict(dict(MOLECULE, threads=0))


@dataclass
class _ShiftedTully:
    model: str = "simple"
    note: str = ""


@pytest.fixture
def shifted_tully_kind():
    entry = register_structure(
        "shifted-tully",
        lambda options, atoms, device: TullyModel(options.model),
        _ShiftedTully,
        shorthand="model",
        molecular=False,
        runtime_options=("note",),
    )
    yield entry
    del _REGISTRY["shifted-tully"]


def test_a_registered_kind_needs_no_runner_code(shifted_tully_kind):
    """A kind registered with its options dataclass is parsed (scalar shorthand or mapping),
    checked (unknown options named), built by the runner, and keeps its runtime options out
    of the run identity; registering a name twice is an error."""
    raw = {
        "potential": {"shifted-tully": {"model": "dual", "note": "a"}},
        "initial_conditions": {"x0": -10, "k": 20},
        "output": "out",
        "n_steps": 10,
    }
    config = RunConfig.from_dict(raw)
    assert config.as_dict()["potential"] == {"kind": "shifted-tully", "model": "dual", "note": "a"}
    structure = build_structure(config, None, torch.device("cpu"))
    assert isinstance(structure, TullyModel) and structure.n_states == 2
    short = RunConfig.from_dict(dict(raw, potential={"shifted-tully": "dual"}))
    assert dataclasses.asdict(short.potential.options) == {"model": "dual", "note": ""}
    assert digest(raw) == digest(dict(raw, potential={"shifted-tully": "dual"}))
    with pytest.raises(RunConfigError, match=r"^potential\.shifted-tully\.nte: unknown key"):
        RunConfig.from_dict(dict(raw, potential={"shifted-tully": {"nte": 1}}))
    with pytest.raises(ValueError, match="already registered"):
        register_structure("shifted-tully", lambda *a: None, _ShiftedTully)


def test_importing_the_runner_imports_no_backend():
    """The runner builds electronic structures through the registry: no model code, no MOPAC
    is imported until a run asks for it."""
    code = (
        "import sys, fusionff.dynamics.runner\n"
        "print(sorted(m for m in sys.modules if m.startswith(('fusionff.labeling', "
        "'fusionff.dynamics.ml', 'fusionff.models', 'fusionff.potential'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
