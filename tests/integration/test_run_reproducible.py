"""``fusionff run``: identical runs give identical files, and a resumed run says so."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fusionff import MultiStateMACE, save_model
from fusionff.cli import main
from fusionff.dynamics.run_config import RunConfig
from fusionff.dynamics.runner import run_ensemble

from .run_helpers import FailAfter, Interrupted, h5_contents, tully_input, write_molecule


@pytest.fixture
def keep_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.mark.slow  # two threads: 10-120 s on a shared 2-core machine
def test_identical_runs_with_two_threads_give_bit_identical_files(tmp_path, keep_threads):
    """Two runs of one input (float32 model, 16 benzene trajectories in one batch, two CPU
    threads; large enough that PyTorch would split the model's index accumulation between
    the threads) write the same H5MD files, bit for bit."""
    torch.manual_seed(0)
    model = MultiStateMACE(
        elements=["H", "C"], n_states=2, channels=16, num_layers=2, correlation=2, dtype="float32"
    )
    save_model(model, tmp_path / "model.fff")
    write_molecule(tmp_path, "C6H6", "benzene")
    raw = {
        "potential": str(tmp_path / "model.fff"),
        "structure": str(tmp_path / "benzene.xyz"),
        "initial_conditions": {
            "wigner": {"temperature": 300, "hessian": str(tmp_path / "harmonic-hessian.npz")},
            "state": 1,
        },
        "dynamics": {"algorithm": "kappa-tsh", "dt": 0.2, "max_energy_drift": 100.0},
        "n_traj": 16,
        "n_steps": 4,
        "device": "cpu",
        "threads": 2,
        "output": "unused",
    }
    for name in ("a", "b"):
        run_ensemble(RunConfig.from_dict(dict(raw, output=str(tmp_path / name))))
        assert torch.get_num_threads() == 2
    for i in range(16):
        a = h5_contents(tmp_path / "a" / f"traj_{i:05d}.h5md")
        b = h5_contents(tmp_path / "b" / f"traj_{i:05d}.h5md")
        assert a.keys() == b.keys()
        assert len(a["particles/molecule/position/value"]) == 5
        for key in a:
            np.testing.assert_array_equal(a[key], b[key], err_msg=f"trajectory {i}: {key}")


def test_resumed_run_says_from_where(tmp_path, capsys, keep_threads):
    """Run again after a crash mid-batch, ``fusionff run`` names the checkpoint, batch, step,
    time and trajectories done before it continues; a finished run says it is complete."""
    path = tully_input(tmp_path)
    with pytest.raises(Interrupted):
        run_ensemble(RunConfig.from_yaml(path), structure=FailAfter(150))
    assert main(["run", str(path), "--threads", "1"]) == 0
    err = capsys.readouterr().err
    assert "device cpu, 1 CPU thread(s)" in err
    assert (
        f"resuming from {tmp_path / 'run' / 'checkpoint.pt'}: batch 1/2 at step 100/400 (20 fs); "
        "0 of 6 trajectories done"
    ) in err
    assert main(["run", str(path)]) == 0
    assert "run already complete" in capsys.readouterr().err
