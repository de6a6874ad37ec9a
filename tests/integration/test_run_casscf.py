"""``fusionff run`` with direct SA-CASSCF dynamics through OpenMolcas (``potential: {casscf:
...}``), registered in :mod:`fusionff.dynamics.structures` without runner code."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import yaml
from ase.build import molecule
from ase.io import write

from fusionff.cli import main
from fusionff.config_schema import ConfigError
from fusionff.dynamics.run_config import RunConfig, potential_identity
from fusionff.labeling.molcas import find_pymolcas


def _raw(tmp_path, **casscf) -> dict:
    atoms = molecule("C2H4")
    write(tmp_path / "ethylene.xyz", atoms)
    # moderate momenta (amu Angstrom/fs) along a fixed random direction, no net translation
    momenta = np.random.default_rng(3).normal(0.0, 0.05, (6, 3))
    atoms.set_momenta(momenta - momenta.mean(axis=0))
    write(tmp_path / "start.xyz", atoms, format="extxyz")
    return {
        "potential": {"casscf": {"active_atoms": [0, 1], "n_states": 3, **casscf}},
        "structure": str(tmp_path / "ethylene.xyz"),
        "initial_conditions": {"file": str(tmp_path / "start.xyz"), "state": 1},
        "dynamics": {"algorithm": "fssh", "dt": 0.25},
        "n_traj": 1,
        "n_steps": 3,
        "write_every": 1,
        "device": "cpu",
        "output": str(tmp_path / "out"),
    }


def test_casscf_potential_parses_with_workers_outside_the_run_identity(tmp_path):
    """The casscf kind's options are read from the run input; its worker count does not
    change the run's identity (a run resumes with another count); bad options name the key."""
    config = RunConfig.from_dict(_raw(tmp_path, workers=2))
    assert config.potential.kind == "casscf"
    assert config.potential.options.active_atoms == [0, 1]
    resolved = config.as_dict()["potential"]
    assert "workers" in resolved and "workers" not in potential_identity(resolved)
    with pytest.raises(ConfigError, match="active_atoms"):
        RunConfig.from_dict(_raw(tmp_path, active_atoms=[0, 1, 2]))
    with pytest.raises(ConfigError, match="n_states"):
        RunConfig.from_dict(_raw(tmp_path, n_states=4))


def test_both_starts_is_an_option_outside_the_identity_only_at_its_default(tmp_path):
    """``both_starts`` (added after direct R2 runs were made) is off by default and then left
    out of the run identity, so those runs still resume; turned on, it is part of it."""
    plain = RunConfig.from_dict(_raw(tmp_path))
    assert plain.potential.options.both_starts is False
    assert "both_starts" not in potential_identity(plain.as_dict()["potential"])
    screened = RunConfig.from_dict(_raw(tmp_path, both_starts=True))
    assert potential_identity(screened.as_dict()["potential"])["both_starts"] is True


def test_screen_rmsd_defaults_to_screening_far_neighbours_outside_the_identity(tmp_path):
    """``screen_rmsd`` (added after direct R2 runs were made): 0.1 A by default, reaches the
    backend, stays out of the run identity at its default; a negative value names the key."""
    from fusionff.dynamics.structures import structure_kind

    plain = RunConfig.from_dict(_raw(tmp_path))
    assert plain.potential.options.screen_rmsd == 0.1
    assert "screen_rmsd" not in potential_identity(plain.as_dict()["potential"])
    structure = structure_kind("casscf").build(plain.potential.options, molecule("C2H4"), None)
    assert structure.calculator.backend.screen_above_rmsd == 0.1
    wider = RunConfig.from_dict(_raw(tmp_path, screen_rmsd=0.3))
    assert potential_identity(wider.as_dict()["potential"])["screen_rmsd"] == 0.3
    with pytest.raises(ConfigError, match="screen_rmsd"):
        RunConfig.from_dict(_raw(tmp_path, screen_rmsd=-0.1))


@pytest.mark.slow
def test_direct_casscf_dynamics_conserves_energy_and_uses_couplings(tmp_path):
    """Three 0.25 fs FSSH steps of ethylene on S1 of SA-3-CASSCF(2,2)/STO-3G, energies,
    forces and couplings from OpenMolcas at every step: the run finishes, the total energy
    changes by less than 5 meV (velocity Verlet on analytic SA-CASSCF gradients), and the
    electronic populations move off the initial state (only couplings can move them)."""
    if find_pymolcas() is None:
        pytest.skip("OpenMolcas driver 'pymolcas' not found on PATH")
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(_raw(tmp_path)))
    assert main(["run", str(tmp_path / "run.yaml")]) == 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    (record,) = summary["trajectories"]
    assert record["status"] == "ok" and record["n_frames"] == 4
    with h5py.File(tmp_path / "out" / record["file"]) as f:
        total = f["observables/total_energy/value"][:]
        populations = f["observables/populations/value"][:]
    assert np.ptp(total) < 5e-3
    assert populations[0, 1] == pytest.approx(1.0)
    assert populations[-1, 1] < 1.0 - 1e-10  # measured 1 - 1.3e-9; round-off moves 1e-16
    assert populations[-1].sum() == pytest.approx(1.0, abs=1e-12)
