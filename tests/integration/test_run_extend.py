"""``fusionff run CONFIG --time-fs LONGER --extend``: a finished (or unfinished) run made longer.

The promise checked here: a run made at a short length and then extended gives the files and
summary of a run made at the long length in one go, bit for bit, on Tully's model 1 (with
trajectories still running at the short end, a short length that is not a multiple of the
frame or checkpoint stride, and trajectories that stopped before it), on an ML ensemble
(Wigner starts, committee-free random model on ethylene) and through a task pool. More
trajectories run in new batches. Every other change, a shorter length, fewer trajectories
and a plain rerun at another length are refused with a message that says what to do.
"""

from __future__ import annotations

import json
import sys

import pytest
import torch
import yaml

from fusionff.cli import main
from fusionff.dynamics.run_config import RunConfig
from fusionff.dynamics.runner import run_ensemble

from .dask_helpers import SerialPool, assert_same_run
from .run_helpers import (
    FailAfter,
    Interrupted,
    ml_input,
    tully_input,
    write_molecule,
    write_random_model,
)

SHORT, LONG = 130, 400
"""Steps of Tully runs (0.2 fs): at 130 steps some trajectories of tully_input still run
(they leave the region between about 130 and 400 steps); 130 is a multiple of neither the
frame stride (20) nor the checkpoint stride (100)."""


def tully(tmp_path, name: str, n_steps: int, **changes) -> RunConfig:
    return RunConfig.from_yaml(tully_input(tmp_path, name, n_steps=n_steps, **changes))


def summary(out) -> dict:
    s = json.loads((out / "summary.json").read_text())
    s.pop("timing")
    s["config"].pop("output")
    return s


def evaluations(config: RunConfig, **kwargs) -> int:
    """Potential evaluations (calls) that ``run_ensemble(config, **kwargs)`` makes."""
    counter = FailAfter(10**9)
    run_ensemble(config, structure=counter, log=None, **kwargs)
    return 10**9 - counter.calls


@pytest.fixture(scope="module")
def whole(tmp_path_factory):
    """The Tully run made at the long length in one go, and its potential evaluations."""
    root = tmp_path_factory.mktemp("extend")
    return root / "whole", evaluations(tully(root, "whole", LONG))


def test_an_extended_run_equals_the_run_made_at_that_length(tmp_path, whole):
    """Short run (some trajectories time-limited at 26 fs with a last frame off the frame
    stride, some already stopped), then --extend to 80 fs: the same files, records and summary
    as the 80 fs run; the short run's end frames are gone; the config file says 400 steps.
    The extension continues rather than reruns: the two invocations together evaluate the
    potential exactly as often as the one-go run."""
    whole, whole_calls = whole
    short_calls = evaluations(tully(tmp_path, "run", SHORT))
    short = json.loads((tmp_path / "run" / "summary.json").read_text())
    statuses = {r["status"] for r in short["trajectories"]}
    assert "time-limit" in statuses  # something to continue
    assert evaluations(tully(tmp_path, "run", LONG), extend=True) == whole_calls - short_calls
    assert_same_run(whole, tmp_path / "run", 6)
    assert summary(whole) == summary(tmp_path / "run")
    assert yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["n_steps"] == LONG


def test_extending_twice_and_after_a_crash_in_each_phase(tmp_path, whole):
    """A short run that crashed mid-batch is extended from where it stopped; the extension
    itself crashes mid-way and the plain command (no --extend: the checkpoint is the long
    run's now) finishes it; a second extension on a finished run continues again. The result
    equals the one-go run."""
    whole, _ = whole
    with pytest.raises(Interrupted):
        run_ensemble(tully(tmp_path, "run", SHORT), structure=FailAfter(40), log=None)
    with pytest.raises(Interrupted):
        run_ensemble(tully(tmp_path, "run", 250), extend=True, structure=FailAfter(200), log=None)
    saved = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    assert saved["n_steps"] == 250
    run_ensemble(tully(tmp_path, "run", 250), log=None)
    assert summary(tmp_path / "run")["config"]["n_steps"] == 250
    run_ensemble(tully(tmp_path, "run", LONG), extend=True, log=None)
    assert_same_run(whole, tmp_path / "run", 6)
    assert summary(whole) == summary(tmp_path / "run")


def test_extension_refuses_other_changes_and_shorter_runs(tmp_path):
    """--extend with another seed names the one change it allows; a shorter length is refused
    with the two lengths; a rerun at another length without --extend points to --extend. The
    refused calls leave the run as it was."""
    run_ensemble(tully(tmp_path, "run", SHORT), log=None)
    before = (tmp_path / "run" / "summary.json").read_text()
    with pytest.raises(ValueError, match="changes only the length and adds trajectories"):
        run_ensemble(tully(tmp_path, "run", LONG, seed=4), extend=True, log=None)
    with pytest.raises(ValueError, match=r"130 steps, more than the 100"):
        run_ensemble(tully(tmp_path, "run", 100), extend=True, log=None)
    with pytest.raises(ValueError, match="--extend continues it"):
        run_ensemble(tully(tmp_path, "run", LONG), log=None)
    assert (tmp_path / "run" / "summary.json").read_text() == before


def test_cli_extends_an_ml_run_with_time_fs(tmp_path):
    """``fusionff run CONFIG --time-fs 2.2 --extend`` on an ML ensemble (ethylene, Wigner
    starts on S1, 3 trajectories in batches of 2) that first ran 1.2 fs equals the 2.2 fs run
    made in one go."""
    write_random_model(tmp_path / "model.fff")
    write_molecule(tmp_path)
    raw = ml_input(tmp_path, "unused")
    raw.pop("n_steps")
    raw["time_fs"] = 1.2
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(raw))
    argv = ["run", str(tmp_path / "run.yaml"), "--output"]
    assert main([*argv, str(tmp_path / "whole"), "--time-fs", "2.2"]) == 0
    assert main([*argv, str(tmp_path / "ext")]) == 0
    assert summary(tmp_path / "ext")["config"]["n_steps"] == 6
    assert main([*argv, str(tmp_path / "ext"), "--time-fs", "2.2", "--extend"]) == 0
    assert_same_run(tmp_path / "whole", tmp_path / "ext", 3)
    assert summary(tmp_path / "whole") == summary(tmp_path / "ext")


def test_extension_through_a_task_pool_equals_the_local_run(tmp_path, whole):
    """Batches extended as pool tasks (the worker continues from the batch's end and returns
    only the new frames, which are appended to the files) give the one-go run's files."""
    whole, _ = whole
    run_ensemble(tully(tmp_path, "run", SHORT), log=None)
    pool = SerialPool()
    run_ensemble(tully(tmp_path, "run", LONG), extend=True, pool=pool, log=None)
    assert pool.tasks == 2
    assert_same_run(whole, tmp_path / "run", 6)
    assert summary(whole)["trajectories"] == summary(tmp_path / "run")["trajectories"]


def test_more_trajectories_run_in_new_batches_and_equal_the_one_go_run(tmp_path, whole):
    """A run of 3 trajectories in batches of 2, extended to 6 trajectories (batches of 2)
    and the long length at once: the first three continue from their ends, the new ones run
    in new batches (3, then 4-5), and every file equals the one-go run's (Tully's trajectories
    do not depend on their batch). The checkpoint keeps that layout, so a crash in the
    extension resumes with it; fewer trajectories are refused."""
    whole, _ = whole
    run_ensemble(tully(tmp_path, "run", SHORT, n_traj=3, batch_size=2), log=None)
    with pytest.raises(Interrupted):
        run_ensemble(
            tully(tmp_path, "run", LONG, n_traj=6, batch_size=2),
            extend=True,
            structure=FailAfter(400),
            log=None,
        )
    saved = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    assert [tuple(b) for b in saved["layout"]] == [(0, 2), (2, 1), (3, 2), (5, 1)]
    run_ensemble(tully(tmp_path, "run", LONG, n_traj=6, batch_size=2), log=None)
    assert_same_run(whole, tmp_path / "run", 6)
    assert summary(tmp_path / "run")["n_traj"] == 6
    with pytest.raises(ValueError, match="6 trajectories, more than the 5"):
        run_ensemble(tully(tmp_path, "run", LONG + 10, n_traj=5), extend=True, log=None)


def test_an_extension_says_what_it_continues(tmp_path, capsys):
    """The log of an extension names the lengths and trajectory counts, and the batch it
    continues from its end in the shorter run (not 'from its start')."""
    run_ensemble(tully(tmp_path, "run", SHORT), log=None)
    run_ensemble(tully(tmp_path, "run", LONG, n_traj=8), extend=True, log=sys.stderr)
    err = capsys.readouterr().err
    assert "extending" in err and "from 130 to 400 steps" in err and "from 6 to 8" in err
    assert "batch 1/3 from its end in a shorter run (step 130/400); 0 of 8" in err


def test_adding_trajectories_only_runs_the_new_batches(tmp_path, capsys):
    """A finished run of 4 trajectories (batches of 2) given 2 more at the same length: the
    log says it starts at batch 3 with 4 done, the extension evaluates the potential exactly
    as often as the new batch needs (the one-go run's calls less the short run's), and the
    files equal the one-go run's."""
    whole_calls = evaluations(tully(tmp_path, "whole", LONG, n_traj=6, batch_size=2))
    short_calls = evaluations(tully(tmp_path, "run", LONG, n_traj=4, batch_size=2))
    capsys.readouterr()
    counter = FailAfter(10**9)
    run_ensemble(
        tully(tmp_path, "run", LONG, n_traj=6, batch_size=2),
        extend=True,
        structure=counter,
        log=sys.stderr,
    )
    assert 10**9 - counter.calls == whole_calls - short_calls
    assert "batch 3/3 from its start; 4 of 6 trajectories done" in capsys.readouterr().err
    assert_same_run(tmp_path / "whole", tmp_path / "run", 6)
