"""``fusionff run`` with direct reference dynamics: MOPAC (level R1) through the ASE wrapper."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from ase.build import molecule
from ase.io import write

from fusionff.cli import main
from fusionff.labeling.mopac import find_mopac

pytestmark = pytest.mark.mopac


def test_reference_dynamics_with_mopac(tmp_path):
    """Two ethylene trajectories on S1 of R1 for three steps: MOPAC gives every state at every
    step (initial S1-S0 gaps of several eV), the run finishes and the summary says so. The
    Wigner samples come from an isotropic harmonic Hessian file (a plumbing test); two MOPAC
    workers compute the two structures of the batch."""
    if find_mopac() is None:
        pytest.skip("MOPAC executable 'mopac' not found on PATH")
    atoms = molecule("C2H4")
    write(tmp_path / "ethylene.xyz", atoms)
    np.savez(tmp_path / "h.npz", hessian=30.0 * np.eye(18), positions=atoms.positions)
    raw = {
        "potential": {"mopac": {"n_states": 2, "workers": 2}},
        "structure": str(tmp_path / "ethylene.xyz"),
        "initial_conditions": {
            "wigner": {"temperature": 0, "hessian": str(tmp_path / "h.npz")},
            "state": 1,
        },
        "dynamics": {"algorithm": "kappa-tsh", "dt": 0.25, "max_energy_drift": 5.0},
        "n_traj": 2,
        "n_steps": 3,
        "device": "cpu",
        "output": str(tmp_path / "out"),
    }
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(raw))
    assert main(["run", str(tmp_path / "run.yaml")]) == 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    for record in summary["trajectories"]:
        assert record["status"] == "ok" and record["n_steps"] == 3 and record["n_frames"] == 4
        assert 3.0 < record["initial_gap_ev"] < 12.0
