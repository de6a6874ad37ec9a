"""Limits on a committee's spread: the run input's ``dynamics.committee`` key (errors name the
key), the check the engine applies, and the flag a trajectory file keeps or drops on resume."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch

from fusionff.dynamics import SurfaceHoppingConfig, TullyModel, initial_state
from fusionff.dynamics.h5md import TrajectoryFile
from fusionff.dynamics.protocol import StateOutputs
from fusionff.dynamics.run_config import RunConfig, RunConfigError, describe_config
from fusionff.dynamics.spread import CommitteeLimits, spread_exceeded, spread_reason

COMMITTEE_RUN = {
    "potential": {"model": ["a.fff", "b.fff"]},
    "structure": "mol.xyz",
    "initial_conditions": {"wigner": {"temperature": 300, "hessian": "compute"}, "state": 1},
    "output": "out",
    "time_fs": 10,
}


def _with_committee(committee, potential=None) -> dict:
    raw = dict(COMMITTEE_RUN, dynamics={"committee": committee})
    if potential is not None:
        raw["potential"] = potential
    return raw


def test_committee_limits_are_read_with_units():
    """dynamics.committee builds CommitteeLimits; the resolved config and --show-config carry
    it with units; without it the resolved config has no such key (earlier runs' identity)."""
    config = RunConfig.from_dict(_with_committee({"max_force_std": 1, "action": "stop"}))
    assert config.dynamics.committee == CommitteeLimits(None, 1.0, "stop")
    assert config.as_dict()["dynamics"]["committee"]["max_force_std"] == 1.0
    lines = describe_config(config)
    assert any("dynamics.committee.max_force_std" in s and "1.0 eV/Angstrom" in s for s in lines)
    plain = RunConfig.from_dict(COMMITTEE_RUN)
    assert "committee" not in plain.as_dict()["dynamics"]
    assert not any("committee" in line for line in describe_config(plain))


@pytest.mark.parametrize(
    "committee, potential, words",
    [
        ({"max_energy_sd": 0.1}, None, ["dynamics.committee.max_energy_sd", "max_energy_std"]),
        ({"max_force_std": "big"}, None, ["dynamics.committee.max_force_std"]),
        ({"max_force_std": 1.0, "action": "halt"}, None, ["dynamics.committee", "action"]),
        ({"action": "stop"}, None, ["dynamics.committee", "max_energy_std", "max_force_std"]),
        ({"max_energy_std": -0.1}, None, ["dynamics.committee", "max_energy_std", "positive"]),
        ([0.1, 1.0], None, ["dynamics.committee", "mapping"]),
        ({"max_force_std": 1.0}, "one.fff", ["dynamics.committee", "committee potential"]),
        ({"max_force_std": 1.0}, {"model": ["one.fff"]}, ["dynamics.committee", "two models"]),
        ({"max_force_std": 1.0}, {"mopac": {}}, ["dynamics.committee", "'mopac'"]),
    ],
)
def test_committee_errors_name_the_key(committee, potential, words):
    """Unknown keys, wrong types, a bad action, no limit, a non-positive limit, and limits
    without a committee potential of two or more models are errors naming the key."""
    with pytest.raises(RunConfigError) as err:
        RunConfig.from_dict(_with_committee(committee, potential))
    for word in words:
        assert word in str(err.value)


def test_spread_exceeded_uses_the_largest_energy_spread_and_the_active_force_spread():
    """Energy: the largest spread over the states; force: the active state's only."""
    energy = torch.tensor([[0.05, 0.2], [0.05, 0.05], [0.05, 0.05]])
    force = torch.tensor([[0.1, 0.1], [2.0, 0.1], [2.0, 0.1]])
    active = torch.tensor([0, 1, 0])
    limits = CommitteeLimits(max_energy_std=0.1, max_force_std=1.0)
    assert spread_exceeded(energy, force, active, limits).tolist() == [True, False, True]
    only_energy = CommitteeLimits(max_energy_std=0.1)
    assert spread_exceeded(energy, force, active, only_energy).tolist() == [True, False, False]
    reason = spread_reason([0.05, 0.2], 0.1, 0, 12.5)
    assert reason == (
        "committee spread above the limits at 12.5 fs: energy std 0.2 eV (S1), "
        "force std 0.1 eV/Angstrom (active S0)"
    )


def test_state_outputs_check_the_spread_shapes():
    """energy_spread and force_spread are (B, S) and come together."""
    energies, forces = torch.zeros(2, 3), torch.zeros(2, 3, 4, 3)
    StateOutputs(energies, forces, energy_spread=torch.zeros(2, 3), force_spread=torch.zeros(2, 3))
    with pytest.raises(ValueError, match="force_spread must have shape"):
        StateOutputs(energies, forces, energy_spread=torch.zeros(2, 3), force_spread=torch.zeros(2))
    with pytest.raises(ValueError, match="come together"):
        StateOutputs(energies, forces, energy_spread=torch.zeros(2, 3))


def test_limits_on_a_structure_without_spread_are_refused():
    """The engine refuses committee limits for an electronic structure that reports no
    spread (here Tully's model)."""
    config = SurfaceHoppingConfig(committee=CommitteeLimits(max_force_std=1.0))
    x = torch.zeros(2, 1, 3, dtype=torch.float64)
    with pytest.raises(ValueError, match="committee potential"):
        initial_state(
            TullyModel("simple"),
            x,
            x.clone(),
            torch.full((1,), 2000.0, dtype=torch.float64),
            torch.zeros(2, dtype=torch.int64),
            torch.arange(2),
            config,
        )


def _frame(step: int) -> dict:
    return {
        "position": np.zeros((1, 3)),
        "velocity": np.zeros((1, 3)),
        "active_state": 0,
        "energies": np.zeros(2),
        "populations": np.array([1.0, 0.0]),
        "kinetic_energy": 0.0,
        "total_energy": 0.0,
        "energy_std": np.full(2, 0.01 * step),
        "force_std": np.full(2, 0.1 * step),
    }


@pytest.mark.parametrize("frames_kept, flag_kept", [(4, True), (3, False)])
def test_resume_keeps_a_flag_only_with_its_frame(tmp_path, frames_kept, flag_kept):
    """A flag raised at the frame of 1.5 fs survives a resume that keeps that frame and is
    removed by one that cuts it (a kill between the files' flush and the checkpoint); the
    spread series are created with the first frames and cut back with the others."""
    path = tmp_path / "traj.h5md"
    f = TrajectoryFile(path, np.array([1]), np.array([1.0]), n_states=2)
    f.create({"trajectory": 0})
    for step in range(5):
        f.add_frame(step, 0.5 * step, **_frame(step))
    f.set_flag("too far", 1.5)
    f.flush()
    with h5py.File(path, "r") as h5:
        assert h5["observables/force_std/value"].shape == (5, 2)
        assert h5["observables/force_std/value"].attrs["unit"] == "eV Angstrom-1"
        assert h5["parameters"].attrs["flag_time"] == 1.5
    again = TrajectoryFile(path, np.array([1]), np.array([1.0]), n_states=2)
    again.resume(frames_kept, 0)
    assert again.flag == ("too far" if flag_kept else None)
    with h5py.File(path, "r") as h5:
        assert ("flag" in h5["parameters"].attrs) == flag_kept
        assert h5["observables/energy_std/value"].shape == (frames_kept, 2)
        assert h5["observables/energy_std/step"][-1] == frames_kept - 1
