"""The run input of ``fusionff run``: parsing, defaults and errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from fusionff.dynamics.run_config import RunConfig, RunConfigError

REPO = Path(__file__).resolve().parents[2]

TULLY = {
    "potential": {"tully": "simple"},
    "initial_conditions": {"x0": -10, "k": 20},
    "output": "out",
    "n_steps": 10,
}
MOLECULE = {
    "potential": "model.fff",
    "structure": "mol.xyz",
    "initial_conditions": {"wigner": {"temperature": 300, "hessian": "compute"}, "state": 1},
    "output": "out",
    "time_fs": 100,
}


def _with(base: dict, **changes) -> dict:
    raw = dict(base)
    raw.update(changes)
    return raw


def test_defaults_and_resolved_steps():
    """time_fs is turned into n_steps with the dynamics time step; batch_size defaults to
    n_traj; a bare string is a model path."""
    config = RunConfig.from_dict(_with(MOLECULE, dynamics={"dt": 0.5}, n_traj=8))
    assert config.n_steps == 200 and config.time_fs is None
    assert config.batch_size == 8
    assert config.potential.kind == "model" and config.potential.options.path == "model.fff"
    assert config.as_dict()["dynamics"]["kappa_gap_threshold"] == 1.0


@pytest.mark.parametrize(
    "changes, key",
    [
        ({"dynamics": {"dtt": 0.5}}, "dynamics.dtt"),
        ({"dynamics": {"dt": "fast"}}, "dynamics.dt"),
        ({"dynamics": {"decoherence": 1}}, "dynamics.decoherence"),
        ({"n_traj": 2.5}, "n_traj"),
        ({"n_trajectories": 2}, "n_trajectories"),
        ({"stop": {"stat": 0}}, "stop.stat"),
        ({"stop": {"region_bohr": "far"}}, "stop.region_bohr"),
        ({"initial_conditions": {"x0": -10, "k": 20, "sate": 1}}, "initial_conditions.sate"),
        ({"potential": {"tully": "quadruple"}}, "potential.tully"),
        ({"potential": {"mopac": {"n_state": 2}}}, "potential.mopac.n_state"),
        ({"potential": {"orca": {}}}, "potential.orca"),
        ({"n_steps": 0}, "n_steps"),
        ({"time_fs": 50}, "n_steps, time_fs"),
        ({"dynamics": {"algorithm": "ehrenfest"}}, "dynamics"),
    ],
)
def test_errors_name_the_key(changes, key):
    """Unknown keys, wrong types and invalid values raise RunConfigError starting with the key."""
    with pytest.raises(RunConfigError) as err:
        RunConfig.from_dict(_with(TULLY, **changes))
    assert str(err.value).startswith(f"{key}:"), str(err.value)


def test_missing_required_key():
    """A missing required key is named."""
    raw = dict(TULLY)
    del raw["output"]
    with pytest.raises(RunConfigError, match="^output: missing required key"):
        RunConfig.from_dict(raw)


@pytest.mark.parametrize(
    "base, changes, key",
    [
        (TULLY, {"initial_conditions": {"k": 20}}, "initial_conditions"),
        (TULLY, {"structure": "mol.xyz"}, "initial_conditions.wigner, file, structure"),
        (
            MOLECULE,
            {"initial_conditions": {"state": 1}},
            "initial_conditions.wigner, file",
        ),
        (
            MOLECULE,
            {
                "initial_conditions": {
                    "wigner": {"temperature": 0, "hessian": "h.npz"},
                    "file": "runs/earlier",
                }
            },
            "initial_conditions.wigner, file",
        ),
        (
            MOLECULE,
            {"initial_conditions": {"file": "starts.extxyz", "energy_window": [4, 5]}},
            "initial_conditions.energy_window",
        ),
        (MOLECULE, {"potential": {"mopac": {"workers": 0}}}, "potential.mopac.workers"),
        (MOLECULE, {"potential": {"mopac": {"threads": 2}}}, "potential.mopac.threads"),
        (MOLECULE, {"structure": None}, "structure"),
        (MOLECULE, {"stop": {"region_bohr": 10}}, "stop.region_bohr"),
        (
            MOLECULE,
            {"initial_conditions": {"wigner": {"temperature": 0, "hessian": "h.npz"}, "x0": 1}},
            "initial_conditions.x0, k",
        ),
        (
            MOLECULE,
            {
                "initial_conditions": {
                    "wigner": {"temperature": 0, "hessian": "h.npz"},
                    "energy_window": [5, 4],
                }
            },
            "initial_conditions.energy_window",
        ),
    ],
)
def test_inconsistent_inputs_are_rejected(base, changes, key):
    """Tully-only and molecule-only options are rejected in the wrong kind of run."""
    with pytest.raises(RunConfigError) as err:
        RunConfig.from_dict(_with(base, **changes))
    assert str(err.value).startswith(f"{key}:"), str(err.value)


def test_yaml_errors_name_the_file(tmp_path):
    """Errors from a file start with its path."""
    path = tmp_path / "run.yaml"
    path.write_text("potential: {tully: simple}\noutput: x\nn_steps: 3\nbogus: 1\n")
    with pytest.raises(RunConfigError, match=r"run\.yaml: bogus: unknown key"):
        RunConfig.from_yaml(path)


@pytest.mark.parametrize("name", sorted(p.name for p in (REPO / "md").glob("*.yaml")))
def test_shipped_run_inputs_parse(name):
    """Every md/*.yaml is a valid run input."""
    config = RunConfig.from_yaml(REPO / "md" / name)
    assert config.n_steps >= 1


def test_mopac_workers_do_not_change_the_run_identity():
    """A run may be resumed with another number of MOPAC workers (they do not change results),
    but not with another number of states; a run input without initial_conditions.file has
    the identity it had before that option existed (checkpoints of older runs still resume)."""
    from fusionff.dynamics.runner import _config_digest, _potential_fingerprint

    def digest(mopac):
        config = RunConfig.from_dict(_with(MOLECULE, potential={"mopac": mopac}))
        return _config_digest(config.as_dict(), _potential_fingerprint(config))

    assert digest({"workers": 1}) == digest({"workers": 4}) == digest({})
    assert digest({"n_states": 3}) != digest({})
    config = RunConfig.from_dict(MOLECULE)
    resolved = config.as_dict()
    assert resolved["initial_conditions"].pop("file") is None
    assert _config_digest(resolved, "x") == _config_digest(config.as_dict(), "x")
