"""``fusionff run`` on Tully's model 1: files, MDAnalysis, summary, resume, batching, failures."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import MDAnalysis as mda
import numpy as np
import pytest
import torch

from fusionff.cli import main
from fusionff.dynamics import StateOutputs, TullyModel
from fusionff.dynamics.run_config import RunConfig
from fusionff.dynamics.runner import run_ensemble

from .run_helpers import FailAfter, Interrupted, h5_contents, tully_input

REPO = Path(__file__).resolve().parents[2]


def assert_same_file(a: Path, b: Path) -> None:
    left, right = h5_contents(a), h5_contents(b)
    assert left.keys() == right.keys()
    for key in left:
        np.testing.assert_array_equal(left[key], right[key], err_msg=f"{a.name}: {key}")


def summary_without_clock(out: Path) -> dict:
    summary = json.loads((out / "summary.json").read_text())
    summary.pop("timing")
    summary["config"].pop("output")
    return summary


@pytest.mark.filterwarnings("ignore:Unknown element X")
@pytest.mark.filterwarnings("ignore:Unknown masses")
def test_cli_run_writes_h5md_that_mdanalysis_reads(tmp_path, capsys):
    """A tiny Tully-1 ensemble through ``fusionff run``: one H5MD file per trajectory that
    MDAnalysis opens (frames, positions in Angstrom, time in fs, observables per frame),
    observables with the right shapes and units, normalised populations, hop rows that agree
    with the summary, and a summary whose statuses and final states match the files."""
    config = tully_input(tmp_path)
    assert main(["run", str(config)]) == 0
    assert "trajectory-steps/s" in capsys.readouterr().err
    out = tmp_path / "run"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_traj"] == 6 and len(summary["trajectories"]) == 6
    assert summary["config"]["dynamics"]["kappa_gap_threshold"] == 1.0
    for record in summary["trajectories"]:
        assert record["status"] == "stopped"  # all leave the region within 400 steps
        path = out / record["file"]
        universe = mda.Universe(str(out / "topology.pdb"), str(path))
        try:
            trajectory = universe.trajectory
            assert len(trajectory) == record["n_frames"] >= 2
            with h5py.File(path, "r") as f:
                x = f["particles/molecule/position/value"][:]
                steps = f["particles/molecule/position/step"][:]
                assert f["particles/molecule/position/value"].attrs["unit"] == "Angstrom"
                assert f["particles/molecule/position/time"].attrs["unit"] == "fs"
                assert f["h5md"].attrs["version"].tolist() == [1, 1]
                obs = {k: f[f"observables/{k}/value"] for k in f["observables"]}
                assert obs["energies"].shape == (len(x), 2)
                assert obs["energies"].attrs["unit"] == "eV"
                assert obs["populations"].shape == (len(x), 2)
                assert obs["active_state"].shape == (len(x),)
                for name in ("kinetic_energy", "total_energy"):
                    assert obs[name].shape == (len(x),) and obs[name].attrs["unit"] == "eV"
                np.testing.assert_allclose(obs["populations"][:].sum(1), 1.0, atol=1e-9)
                assert obs["active_state"][-1] == record["final_state"]
                hops = f["parameters/hops"]
                assert int((hops["frustrated"][:] == 0).sum()) == record["n_hops"]
                assert f["parameters"].attrs["status"] == "stopped"
                drift = obs["total_energy"][:] - obs["total_energy"][0]
                assert np.abs(drift).max() < 1e-3
            assert steps[0] == 0 and steps[-1] == record["n_steps"]
            np.testing.assert_array_equal(steps[:-1] % 20, 0)
            for ts, expected in zip(trajectory, x, strict=True):
                np.testing.assert_allclose(ts.positions, expected, rtol=1e-6)
            trajectory[-1]
            # MDAnalysis converts to its units: ps
            assert trajectory.ts.time == pytest.approx(record["final_time_fs"] / 1000)
            assert trajectory.ts.data["populations"].shape == (2,)
        finally:
            universe.trajectory.close()
        assert abs(record["final_time_fs"] - 0.2 * record["n_steps"]) < 1e-9
        assert len(record["hops"]) == record["n_hops"]


@pytest.mark.slow  # about 5 s
def test_interrupted_run_resumes_to_identical_files(tmp_path):
    """Runs interrupted mid-batch (in the first batch after its first checkpoint, and in the
    last batch, whose predecessor is then skipped) and run again give the same H5MD contents
    and summary (wall-clock fields aside) as an uninterrupted run."""
    counter = FailAfter(10**9)
    run_ensemble(RunConfig.from_yaml(tully_input(tmp_path, "whole")), structure=counter, log=None)
    total = 10**9 - counter.calls
    for name, calls, batch in (("first", 250, 0), ("last", total - 30, 1)):
        config = RunConfig.from_yaml(tully_input(tmp_path, name))
        with pytest.raises(Interrupted):
            run_ensemble(config, structure=FailAfter(calls), log=None)
        saved = torch.load(tmp_path / name / "checkpoint.pt", weights_only=True)
        assert saved["batch"] == batch and saved["state"] is not None
        run_ensemble(config, log=None)
        for i in range(6):
            assert_same_file(
                tmp_path / "whole" / f"traj_{i:05d}.h5md", tmp_path / name / f"traj_{i:05d}.h5md"
            )
        assert summary_without_clock(tmp_path / "whole") == summary_without_clock(tmp_path / name)


def test_energy_drift_is_flagged(tmp_path):
    """With a drift threshold below the integrator's error every trajectory is flagged
    'energy-drift' and stopped, in the summary and in its file."""
    config = RunConfig.from_yaml(
        tully_input(tmp_path, dynamics={"dt": 0.2, "max_energy_drift": 1e-12})
    )
    summary = run_ensemble(config, log=None)
    assert summary["status_counts"] == {"energy-drift": 6}
    with h5py.File(tmp_path / "run" / "traj_00003.h5md", "r") as f:
        assert f["parameters"].attrs["status"] == "energy-drift"


def test_trajectories_do_not_depend_on_batch_size(tmp_path):
    """Trajectory i is bit-identical whether it ran in batches of 2 or of 5."""
    two = RunConfig.from_yaml(tully_input(tmp_path, "two", batch_size=2))
    five = RunConfig.from_yaml(tully_input(tmp_path, "five", batch_size=5))
    a, b = run_ensemble(two, log=None), run_ensemble(five, log=None)
    for i in range(6):
        assert_same_file(
            tmp_path / "two" / f"traj_{i:05d}.h5md", tmp_path / "five" / f"traj_{i:05d}.h5md"
        )
    assert a["trajectories"] == b["trajectories"]
    assert len({r["seed"] for r in a["trajectories"]}) == 6


class NaNForFirstRow:
    """Tully model 1 that returns NaN energies for the first row of the batch in one call
    (a potential that fails for one trajectory)."""

    n_states, provides_nacs = 2, True
    mass_amu = TullyModel.mass_amu

    def __init__(self, after: int) -> None:
        self.model, self.after = TullyModel("simple"), after

    def evaluate(self, positions):
        out = self.model.evaluate(positions)
        self.after -= 1
        if self.after == 0:
            energies = out.energies.clone()
            energies[0] = float("nan")
            return StateOutputs(energies=energies, forces=out.forces, nacs=out.nacs)
        return out


def test_failed_potential_trajectory_is_flagged_and_the_others_finish(tmp_path):
    """A trajectory whose potential turns NaN is stopped and flagged 'potential-failed' in the
    summary and in its file (whose last frame is the failing step), while the rest run to the
    end."""
    config = RunConfig.from_yaml(tully_input(tmp_path, batch_size=6))
    summary = run_ensemble(config, structure=NaNForFirstRow(after=30), log=None)
    records = summary["trajectories"]
    assert records[0]["status"] == "potential-failed" and 0 < records[0]["n_steps"] < 40
    assert all(r["status"] == "stopped" for r in records[1:])
    assert summary["status_counts"] == {"potential-failed": 1, "stopped": 5}
    with h5py.File(tmp_path / "run" / "traj_00000.h5md", "r") as f:
        assert f["parameters"].attrs["status"] == "potential-failed"
        assert f["particles/molecule/position/step"][-1] == records[0]["n_steps"]
        assert np.isnan(f["observables/energies/value"][-1]).all()


@pytest.mark.slow
def test_killed_process_resumes_to_identical_files(tmp_path):
    """``fusionff run`` killed with SIGKILL after its first checkpoint and started again on the
    same input gives the files and summary of an uninterrupted run."""
    changes = dict(
        n_traj=40,
        batch_size=20,
        n_steps=600,
        checkpoint_every=50,
        dynamics={"dt": 0.1, "n_substeps": 5},
    )
    whole = tully_input(tmp_path, "whole", **changes)
    killed = tully_input(tmp_path, "killed", **changes)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    command = [sys.executable, "-m", "fusionff.cli", "run"]
    subprocess.run([*command, str(whole)], check=True, env=env, capture_output=True)
    process = subprocess.Popen(
        [*command, str(killed)], env=env, cwd=REPO, stderr=subprocess.DEVNULL
    )
    checkpoint = tmp_path / "killed" / "checkpoint.pt"
    deadline = time.time() + 120
    while not checkpoint.exists() and time.time() < deadline:
        time.sleep(0.01)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert not (tmp_path / "killed" / "summary.json").exists()  # killed mid-run
    subprocess.run([*command, str(killed)], check=True, env=env, capture_output=True)
    for i in range(40):
        assert_same_file(
            tmp_path / "whole" / f"traj_{i:05d}.h5md", tmp_path / "killed" / f"traj_{i:05d}.h5md"
        )
    assert summary_without_clock(tmp_path / "whole") == summary_without_clock(tmp_path / "killed")


def test_changed_config_does_not_resume(tmp_path):
    """A checkpoint written with another config is refused (with a hint to --restart)."""
    with pytest.raises(Interrupted):
        run_ensemble(RunConfig.from_yaml(tully_input(tmp_path)), structure=FailAfter(150), log=None)
    changed = RunConfig.from_yaml(tully_input(tmp_path, seed=4))
    with pytest.raises(ValueError, match="another config"):
        run_ensemble(changed, log=None)
    summary = run_ensemble(changed, restart=True, log=None)
    assert summary["n_traj"] == 6
