"""``fusionff run`` on a committee of two tiny models: the spread is recorded per frame, and
trajectories whose spread exceeds the run's ``dynamics.committee`` limits are flagged (and stopped)
while the others run on.

The models are random float64 networks with different seeds (tests/unit/
test_potential_diabatic.tiny_model), the molecule ethylene, Wigner-sampled from an isotropic
harmonic Hessian written to a file (run_helpers.write_molecule and ml_input, as in
test_run_ml.py). The thresholds are chosen from the spreads a run without limits records at
every step, between the trajectories' largest ones, so that exactly one trajectory crosses
them.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
import yaml
from ase.build import molecule
from ase.io import read

from fusionff import save_model
from fusionff.analysis import AnalysisOptions, analyze_run, format_report, read_run
from fusionff.analysis.run import read_records
from fusionff.analysis.selection import select_frames
from fusionff.dynamics.ml import MLElectronicStructure
from fusionff.dynamics.run_config import RunConfig
from fusionff.dynamics.runner import run_ensemble
from fusionff.dynamics.spread import spread_reason
from fusionff.potential import Potential
from tests.integration.run_helpers import Interrupted, h5_contents, ml_input, write_molecule
from tests.unit.test_potential_diabatic import tiny_model

N_TRAJ, N_STEPS, DT = 4, 24, 0.5


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("committee")
    for seed in (0, 1):
        save_model(tiny_model(2, head="adiabatic", seed=seed), root / f"m{seed}.fff")
    write_molecule(root)
    return root


def committee_input(root, name: str, committee: dict | None = None, **changes) -> RunConfig:
    dynamics = {"algorithm": "kappa-tsh", "dt": DT}
    if committee is not None:
        dynamics["committee"] = committee
    run = {
        "potential": {"model": [str(root / "m0.fff"), str(root / "m1.fff")]},
        "dynamics": dynamics,
        "n_traj": N_TRAJ,
        "batch_size": None,  # all in one batch
        "n_steps": N_STEPS,
        "write_every": 1,
        "checkpoint_every": 5,
        "seed": 3,
    }
    return RunConfig.from_dict(ml_input(root, name, **{**run, **changes}))


def read_series(path) -> dict[str, np.ndarray]:
    with h5py.File(path, "r") as f:
        return {
            "time": f["particles/molecule/position/time"][()],
            "position": f["particles/molecule/position/value"][()],
            "active": f["observables/active_state/value"][()],
            "energy_std": f["observables/energy_std/value"][()],
            "force_std": f["observables/force_std/value"][()],
            "energy_unit": f["observables/energy_std/value"].attrs["unit"],
            "force_unit": f["observables/force_std/value"].attrs["unit"],
            "attrs": dict(f["parameters"].attrs),
        }


@pytest.fixture(scope="module")
def reference(inputs):
    """The run without limits (every step a frame): summary and per-trajectory series."""
    summary = run_ensemble(committee_input(inputs, "reference"))
    out = inputs / "reference"
    return summary, [read_series(out / r["file"]) for r in summary["trajectories"]]


def _spread(series: dict, kind: str) -> np.ndarray:
    """(F,) the spread the limit of ``kind`` applies to: the largest energy std over the
    states, or the force std of the active state."""
    if kind == "energy":
        return series["energy_std"].max(axis=1)
    return series["force_std"][np.arange(len(series["time"])), series["active"]]


def _threshold(reference, kind: str) -> tuple[float, int, int]:
    """A limit between the largest and the second largest trajectory maximum of the spread,
    the trajectory above it and the first step where it is above."""
    _, series = reference
    maxima = np.array([_spread(s, kind).max() for s in series])
    order = np.argsort(maxima)
    limit = float(0.5 * (maxima[order[-1]] + maxima[order[-2]]))
    assert maxima[order[-1]] - maxima[order[-2]] > 1e-6 * limit  # clear of round-off
    flagged = int(order[-1])
    first = int(np.flatnonzero(_spread(series[flagged], kind) > limit)[0])
    # Mid-run, for the tests below: a stop cuts the flagged trajectory short and the others
    # run on without it. The energy spread of these random models drifts slowly: in 12 steps
    # its largest maximum came at the last frame only (2026-12-03, ase 3.29, numpy 2.4), hence
    # 24 steps.
    assert 0 < first < N_STEPS - 1
    return limit, flagged, first


def test_recorded_spread_is_the_std_of_the_members_one_by_one(inputs, reference):
    """Every frame's energy_std (F, S) eV is np.std over the two members, evaluated one by one
    on the recorded positions, of each state's energy; force_std (F, S) eV/Angstrom is, per
    state, the largest over atoms of the norm of the per-component force std; both with unit
    attributes; without limits no trajectory is flagged."""
    summary, series = reference
    numbers = molecule("C2H4").numbers
    members = [Potential(str(inputs / f"m{seed}.fff"), device="cpu") for seed in (0, 1)]
    for record, s in zip(summary["trajectories"], series, strict=True):
        assert record["status"] == "ok" and record["flag"] is None
        assert "flag" not in s["attrs"]
        assert len(s["time"]) == N_STEPS + 1
        outs = [m.evaluate(numbers, torch.as_tensor(s["position"])) for m in members]
        energies = np.stack([o["energies"].numpy() for o in outs])  # (M, F, S)
        forces = np.stack([o["forces"].numpy() for o in outs])  # (M, F, S, N, 3)
        force_std = np.linalg.norm(forces.std(axis=0), axis=-1).max(axis=-1)
        np.testing.assert_allclose(s["energy_std"], energies.std(axis=0), rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(s["force_std"], force_std, rtol=1e-12, atol=1e-14)
        assert s["energy_std"].min() > 0
        assert s["energy_unit"] == "eV" and s["force_unit"] == "eV Angstrom-1"


def test_the_summary_names_each_member_file_by_its_content(inputs, reference):
    """summary.json's potential_files lists the committee's files in order, each with the
    SHA-256 of the bytes the run read: what ran, even after a path is overwritten."""
    summary, _ = reference
    files = summary["potential_files"]
    assert [f["path"] for f in files] == [str(inputs / f"m{seed}.fff") for seed in (0, 1)]
    for f in files:
        assert f["sha256"] == hashlib.sha256(Path(f["path"]).read_bytes()).hexdigest()
    assert files[0]["sha256"] != files[1]["sha256"]


@pytest.mark.parametrize("kind, action", [("force", "flag"), ("force", "stop"), ("energy", "stop")])
def test_a_limit_below_the_spread_flags_that_trajectory_only(inputs, reference, kind, action):
    """A limit between the largest and second-largest trajectory maximum of the spread flags
    exactly the trajectory above it, at the first step its spread exceeds the limit, with the
    reason in its file, the summary and the analysis report. With action flag it runs to the
    end like the run without limits (same frames, status ok); with stop it ends there (status
    committee-spread, excluded from the statistics) while the others run to the end, frame
    for frame as in the run without limits."""
    limit, flagged, first = _threshold(reference, kind)
    key = {"force": "max_force_std", "energy": "max_energy_std"}[kind]
    name = f"{kind}-{action}"
    summary = run_ensemble(committee_input(inputs, name, {key: limit, "action": action}))
    ref_summary, ref_series = reference
    s = ref_series[flagged]
    flag_time = float(s["time"][first])
    active = int(s["active"][first])
    reason = spread_reason(
        s["energy_std"][first].tolist(), float(s["force_std"][first, active]), active, flag_time
    )
    for k, record in enumerate(summary["trajectories"]):
        mine = read_series(inputs / name / record["file"])
        if k != flagged:
            assert record["flag"] is None and record["status"] == "ok"
            assert record["final_time_fs"] == pytest.approx(N_STEPS * DT)
            # after a stop the others run in a smaller batch: float64 round-off apart
            np.testing.assert_allclose(mine["position"], ref_series[k]["position"], rtol=1e-12)
            continue
        assert record["flag"] == reason and mine["attrs"]["flag"] == reason
        assert mine["attrs"]["flag_time"] == pytest.approx(flag_time)
        assert record["flag_time_fs"] == mine["attrs"]["flag_time"]
        if action == "flag":
            assert record["status"] == "ok"
            np.testing.assert_array_equal(mine["position"], s["position"])
        else:
            assert record["status"] == "committee-spread"
            assert record["final_time_fs"] == pytest.approx(flag_time)
            np.testing.assert_array_equal(mine["position"], s["position"][: first + 1])
    assert ref_summary["trajectories"][flagged]["status"] == "ok"
    run = read_run(inputs / name)
    excluded = [t.index for t in run.excluded]
    assert excluded == ([] if action == "flag" else [flagged])
    # the summary alone gives the same records (flag time included) as the files
    full = sorted(run.trajectories + run.excluded, key=lambda t: t.index)
    for record, t in zip(read_records(inputs / name), full, strict=True):
        assert all(getattr(record, f) == getattr(t, f) for f in record.__dataclass_fields__)
    report = format_report(analyze_run(run, AnalysisOptions(products=False)))
    assert f"committee-spread: {flagged}" in report
    assert f"trajectory {flagged}: {reason}" in report
    assert f"committee limits: {key} {limit:g}" in report


def test_limits_above_the_spread_flag_nothing(inputs, reference):
    """Limits above every recorded spread flag no trajectory, and the files equal those of the
    run without limits."""
    _, series = reference
    energy = max(s["energy_std"].max() for s in series)
    force = max(s["force_std"].max() for s in series)
    committee = {"max_energy_std": 2 * energy, "max_force_std": 2 * force, "action": "stop"}
    summary = run_ensemble(committee_input(inputs, "above", committee))
    for record, s in zip(summary["trajectories"], series, strict=True):
        assert record["status"] == "ok" and record["flag"] is None
        mine = read_series(inputs / "above" / record["file"])
        assert "flag" not in mine["attrs"]
        np.testing.assert_array_equal(mine["position"], s["position"])
        np.testing.assert_array_equal(mine["force_std"], s["force_std"])


def test_selection_on_the_run_takes_the_largest_recorded_spreads(inputs, reference, tmp_path):
    """select_frames on the run without limits: the first frame is the largest force spread
    of an active state over all recorded frames, the next ones in decreasing order; the
    queue file holds their positions."""
    _, series = reference
    selection = select_frames(inputs / "reference", n_spread=3, min_separation_fs=0.0)
    spreads = np.concatenate([_spread(s, "force") for s in series])
    np.testing.assert_array_equal([f.spread for f in selection.frames], np.sort(spreads)[::-1][:3])
    top = selection.frames[0]
    np.testing.assert_array_equal(
        selection.positions[0], series[top.trajectory]["position"][top.frame]
    )
    images = read(selection.write_xyz(tmp_path / "queue.xyz"), index=":")
    np.testing.assert_allclose(images[0].positions, selection.positions[0], atol=1e-8)


class CountingCommittee(MLElectronicStructure):
    """The committee, counting its evaluations; it raises after ``crash_after`` of them (a
    crash mid-run) unless that is None."""

    def __init__(self, root, crash_after: int | None = None) -> None:
        paths = [str(root / "m0.fff"), str(root / "m1.fff")]
        super().__init__(paths, molecule("C2H4").numbers, device="cpu")
        self.calls, self.crash_after = 0, crash_after

    def evaluate(self, positions):
        if self.calls == self.crash_after:
            raise Interrupted
        self.calls += 1
        return super().evaluate(positions)


@pytest.mark.slow  # about 4 s
def test_a_resumed_run_keeps_the_flag(inputs, reference):
    """Flagged (action flag) at step f, checkpointed at step f + 1, killed in the step after
    and run again: every dataset and attribute of the files (frames, spreads, flag reason and
    time) and the summary records equal those of an uninterrupted run; config.yaml has the
    limits."""
    limit, flagged, first = _threshold(reference, "force")
    committee = {"max_force_std": limit, "action": "flag"}
    changes = {"checkpoint_every": first + 1}
    counting = CountingCommittee(inputs)
    whole = run_ensemble(committee_input(inputs, "whole", committee, **changes), structure=counting)
    before_steps = counting.calls - N_STEPS  # initial conditions and state: one batch
    config = committee_input(inputs, "resumed", committee, **changes)
    crashing = CountingCommittee(inputs, crash_after=before_steps + first + 1)
    with pytest.raises(Interrupted):
        run_ensemble(config, structure=crashing)
    with h5py.File(inputs / "resumed" / whole["trajectories"][flagged]["file"], "r") as f:
        assert "flag" in f["parameters"].attrs  # written before the kill
    resumed = run_ensemble(config)
    assert whole["trajectories"] == resumed["trajectories"]
    assert whole["trajectories"][flagged]["flag"] is not None
    for record in whole["trajectories"]:
        before = h5_contents(inputs / "whole" / record["file"])
        again = h5_contents(inputs / "resumed" / record["file"])
        assert before.keys() == again.keys()
        for key, value in before.items():
            assert np.array_equal(value, again[key]), key
    assert yaml.safe_load((inputs / "resumed" / "config.yaml").read_text())["dynamics"][
        "committee"
    ] == {
        "max_energy_std": None,
        "max_force_std": limit,
        "action": "flag",
    }
