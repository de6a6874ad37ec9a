"""The CUDA paths give the CPU's results: model evaluation, batched dynamics (Tully and ML),
``fusionff run`` and ``fusionff train``.

Every test here needs a CUDA device and is skipped without one (CI has none); a session with a
GPU runs them with ``python3 -m pytest -m gpu`` (see benchmarks/gpu_session.sh). All
comparisons are in float64, where the CPU and GPU differ only by the order of reductions.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from ase.build import molecule

from fusionff.cli import main
from fusionff.dynamics import (
    SurfaceHoppingConfig,
    initial_state,
    run,
    trajectory_seeds,
    tully_scattering,
)
from fusionff.dynamics.ml import MLElectronicStructure
from fusionff.potential import Potential
from tests.conftest import small_model
from tests.integration.run_helpers import tully_input
from tests.integration.test_train_cli import write_config

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def _ethanol_batch(b: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(numbers, positions (B, N, 3) Angstrom, velocities (B, N, 3) Angstrom/fs) of ethanol."""
    atoms = molecule("CH3CH2OH")
    rng = np.random.default_rng(seed)
    positions = atoms.positions[None] + 0.05 * rng.normal(size=(b, len(atoms), 3))
    velocities = 0.01 * rng.normal(size=(b, len(atoms), 3))
    return atoms.numbers, positions, velocities


def test_potential_on_cuda_equals_cpu():
    """Energies and forces of all states of 8 ethanol geometries in one graph agree between
    CPU and CUDA to 1e-10 eV (relative) and 1e-9 eV/Angstrom."""
    model = small_model(fusion=True)
    numbers, positions, _ = _ethanol_batch(8)
    cpu = Potential(model, device="cpu").evaluate(numbers, positions)
    gpu = Potential(small_model(fusion=True), device="cuda").evaluate(numbers, positions)
    assert gpu["energies"].device.type == "cuda"
    np.testing.assert_allclose(gpu["energies"].cpu(), cpu["energies"], rtol=1e-10)
    np.testing.assert_allclose(gpu["forces"].cpu(), cpu["forces"], atol=1e-9)


def test_ml_ensemble_on_cuda_follows_cpu():
    """16 kappa-TSH trajectories of ethanol on a random three-state model, 40 steps of 0.2 fs:
    final positions agree to 1e-7 Angstrom and active states and hop counts are equal."""
    numbers, positions, velocities = _ethanol_batch(16, seed=1)
    config = SurfaceHoppingConfig(dt=0.2, algorithm="kappa-tsh", kappa_gap_threshold=50.0)
    masses = molecule("CH3CH2OH").get_masses()
    finals = {}
    for device in ("cpu", "cuda"):
        structure = MLElectronicStructure(small_model(fusion=True), numbers, device)

        def t(a, structure=structure):
            return torch.as_tensor(a, dtype=torch.float64, device=structure.potential.device)

        index = torch.arange(16, device=structure.potential.device)
        state = initial_state(
            structure,
            t(positions),
            t(velocities),
            t(masses),
            active=torch.full((16,), 2, dtype=torch.int64, device=index.device),
            seeds=trajectory_seeds(7, index),
            config=config,
        )
        finals[device] = run(state, structure, config, 40)
    cpu, gpu = finals["cpu"], finals["cuda"]
    np.testing.assert_allclose(gpu.positions.cpu(), cpu.positions, atol=1e-7)
    assert torch.equal(gpu.active.cpu(), cpu.active)
    assert torch.equal(gpu.n_hops.cpu(), cpu.n_hops)


def test_tully_scattering_on_cuda_equals_cpu():
    """Tully's model 1 at k = 20 with 512 FSSH trajectories: the outcome probabilities on CUDA
    equal the CPU's (per-trajectory random streams do not depend on the device); a hop decision
    that flips on the last bit of a probability may move at most one trajectory."""
    cpu = tully_scattering("simple", k=20.0, n_traj=512, seed=4, device="cpu")
    gpu = tully_scattering("simple", k=20.0, n_traj=512, seed=4, device="cuda")
    for key in ("T0", "T1", "R0", "R1"):
        assert abs(gpu[key] - cpu[key]) <= 1 / 512 + 1e-12, (key, cpu, gpu)


def test_run_cli_on_cuda_gives_the_cpu_summary(tmp_path):
    """`fusionff run` of a Tully input with device: cuda ends every trajectory in the state
    and with the hops of the same input run on the CPU."""
    summaries = {}
    for device in ("cpu", "cuda"):
        path = tully_input(tmp_path, name=f"run_{device}", device=device, n_traj=8, batch_size=8)
        assert main(["run", str(path)]) == 0
        summaries[device] = json.loads((tmp_path / f"run_{device}" / "summary.json").read_text())
    assert summaries["cuda"]["timing"]["device"].startswith("cuda")
    pairs = zip(summaries["cpu"]["trajectories"], summaries["cuda"]["trajectories"], strict=True)
    for a, b in pairs:
        assert (a["final_state"], a["n_hops"], a["status"]) == (
            b["final_state"],
            b["n_hops"],
            b["status"],
        )


def test_train_on_cuda_lowers_the_validation_loss(tmp_path):
    """The example training config on CUDA for 4 epochs: the model file is written and the
    validation loss of the last epoch is below that of the first."""
    config = write_config(tmp_path, device="cuda", max_epochs=4)
    assert main(["train", str(config)]) == 0
    history = [
        json.loads(line) for line in (tmp_path / "run" / "history.jsonl").read_text().splitlines()
    ]
    assert len(history) == 4
    assert history[-1]["val_loss"] < history[0]["val_loss"]
    assert (tmp_path / "run" / "model.fff").is_file()
