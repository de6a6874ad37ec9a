"""Surface hopping driven by a MultiStateMACE model through MLElectronicStructure."""

from __future__ import annotations

import numpy as np
import torch
from ase.build import molecule

from fusionff.dynamics import Status, SurfaceHoppingConfig, initial_state, run, total_energy
from fusionff.dynamics.ml import MLElectronicStructure
from tests.conftest import small_model


def test_ml_potential_trajectories_conserve_energy():
    """Adiabatic and kappa-TSH trajectories of ethylene on a (random) float64 two-state model
    conserve total energy to < 0.1 meV over 40 steps of 0.2 fs, whatever state they run on."""
    model = small_model(fusion=True, n_states=2, elements=["H", "C"])
    with torch.no_grad():
        model.e0.zero_()
        model.shift.zero_()
        model.scale.fill_(0.05)  # gentle surfaces: a random model is not a molecule
    atoms = molecule("C2H4")
    es = MLElectronicStructure(model, atoms.numbers, device="cpu")
    rng = np.random.default_rng(0)
    b = 4
    x = torch.tensor(atoms.positions[None] + 0.05 * rng.normal(size=(b, len(atoms), 3)))
    v = torch.tensor(0.01 * rng.normal(size=(b, len(atoms), 3)))
    masses = torch.tensor(atoms.get_masses())
    active = torch.tensor([0, 1, 0, 1])
    config = SurfaceHoppingConfig(dt=0.2, algorithm="kappa-tsh", kappa_gap_threshold=5.0)
    state = initial_state(es, x, v, masses, active, torch.arange(b), config)
    e0 = total_energy(state).clone()
    state = run(state, es, config, n_steps=40)
    drift = (total_energy(state) - e0).abs()
    assert torch.all(drift < 1e-4), drift
    assert torch.all(state.status == Status.TIME_LIMIT)  # none flagged, none blew up
