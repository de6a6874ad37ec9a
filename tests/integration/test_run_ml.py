"""``fusionff run`` on a molecule: a (random) MultiStateMACE model file, ethylene, Wigner samples.

A random network has no minimum at ethylene's geometry, so its own Hessian has imaginary modes
and Wigner sampling from it is refused (tested below). The run test therefore samples from the
Hessian of an isotropic harmonic model, 30 eV/Angstrom^2 on every coordinate about the
reference geometry, written to a file: it checks the plumbing (model file -> batched dynamics
-> files), not the physics of the initial conditions.
"""

from __future__ import annotations

import json

import h5py
import MDAnalysis as mda
import numpy as np
import pytest
import yaml
from ase.build import molecule

from fusionff.cli import main

from .run_helpers import ml_input, write_molecule, write_random_model


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("ml")
    write_random_model(root / "model.fff")
    write_molecule(root)
    return root


def write_input(root, name: str, hessian: str | None = None, **changes) -> str:
    """:func:`ml_input`, stopping 0.4 fs after S0 is reached, written to ``root/<name>.yaml``."""
    raw = ml_input(root, name, hessian, stop={"state": 0, "after_fs": 0.4}, **changes)
    path = root / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return str(path)


def test_molecular_run_on_a_model_file(inputs):
    """Three ethylene trajectories on S1 of a model file, Wigner-sampled at 300 K: the files
    open in MDAnalysis with the six atoms, frames every second step from the sampled start,
    two-state observables, and the summary records seeds, S1 starts and known statuses."""
    assert main(["run", write_input(inputs, "run")]) == 0
    out = inputs / "run"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["config"]["dynamics"]["algorithm"] == "kappa-tsh"
    assert any("kappa_gap_threshold = 1.0 eV" in note for note in summary["notes"])
    reference = molecule("C2H4").positions
    starts = []
    for record in summary["trajectories"]:
        assert record["initial_state"] == 1 and record["initial_gap_ev"] > 0
        assert record["status"] in ("stopped", "time-limit", "energy-drift")
        universe = mda.Universe(str(out / "topology.pdb"), str(out / record["file"]))
        try:
            assert universe.atoms.n_atoms == 6
            assert len(universe.trajectory) == record["n_frames"]
            start = universe.trajectory[0].positions.copy()
            displacement = np.abs(start - reference).max()
            assert 0.005 < displacement < 1.0  # sampled, not the reference geometry
            starts.append(start)
        finally:
            universe.trajectory.close()
        with h5py.File(out / record["file"], "r") as f:
            steps = f["particles/molecule/position/step"][:]
            assert steps[0] == 0 and steps[-1] == record["n_steps"]
            assert f["observables/energies/value"].shape == (len(steps), 2)
            populations = f["observables/populations/value"][:]
            np.testing.assert_allclose(populations.sum(1), 1.0, atol=1e-9)
            assert np.abs(f["particles/molecule/velocity/value"][0]).max() > 0
    assert not np.allclose(starts[0], starts[1])


def test_hessian_of_a_random_model_is_refused_but_cached(inputs, capsys):
    """'hessian: compute' differentiates the model's S0 forces and caches the Hessian in the
    output directory; the random model has imaginary modes there, so the run stops with an
    error that says so instead of sampling from them."""
    assert main(["run", write_input(inputs, "computed", "compute")]) == 1
    assert "imaginary mode" in capsys.readouterr().err
    cached = np.load(inputs / "computed" / "hessian.npz")
    assert cached["hessian"].shape == (18, 18)
    np.testing.assert_allclose(cached["hessian"], cached["hessian"].T)


def test_a_run_can_start_where_another_run_started(inputs):
    """initial_conditions.file = an earlier run's directory: trajectory i starts exactly where
    trajectory i of that run started, so with the same potential and seed the new run repeats
    it bit for bit (every frame's positions, the energies and the summary's gaps)."""
    assert main(["run", write_input(inputs, "run")]) == 0
    start = {"file": str(inputs / "run"), "state": 1}
    assert main(["run", write_input(inputs, "again", initial_conditions=start)]) == 0
    first = json.loads((inputs / "run" / "summary.json").read_text())["trajectories"]
    again = json.loads((inputs / "again" / "summary.json").read_text())["trajectories"]
    assert [r["initial_gap_ev"] for r in again] == [r["initial_gap_ev"] for r in first]
    for record in first:
        with (
            h5py.File(inputs / "run" / record["file"], "r") as a,
            h5py.File(inputs / "again" / record["file"], "r") as b,
        ):
            for name in ("particles/molecule/position/value", "observables/energies/value"):
                assert np.array_equal(a[name][:], b[name][:]), (record["file"], name)
