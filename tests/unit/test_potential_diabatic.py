"""The diabatic head through Potential, FusionCalculator and ML surface hopping.

Tiny float64 models (channels 4) built here: couplings come out in the layouts the ASE
calculator (S, S, N, 3) and the dynamics protocol (B, S, S, N, 3) use, equal to the model's own
``compute_couplings`` output, and FSSH runs on them; adiabatic models are unchanged.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase.build import molecule

from fusionff import FusionCalculator, MultiStateMACE, save_model
from fusionff.dynamics import Status, SurfaceHoppingConfig, initial_state, run
from fusionff.dynamics.ml import MLElectronicStructure
from fusionff.dynamics.structures import ModelOptions, structure_kind
from fusionff.nn.diabatic import DEGENERACY_EPS2
from fusionff.potential import Potential

TOL = 1e-10


def tiny_model(
    n_states: int = 2, head: str = "diabatic", seed: int = 0, elements=("H", "C")
) -> MultiStateMACE:
    """A random float64 model, channels 4, diabatic energies close enough to couple."""
    torch.manual_seed(seed)
    model = MultiStateMACE(
        elements=list(elements),
        n_states=n_states,
        r_max=3.0,
        channels=4,
        l_max=1,
        hidden_l_max=1,
        correlation=2,
        num_layers=2,
        fusion=False,
        head=head,
        dtype="float64",
        avg_num_neighbors=4.0,
    )
    with torch.no_grad():
        model.e0.zero_()
        model.shift.copy_(0.02 * torch.arange(n_states, dtype=torch.float64))
        model.scale.fill_(0.05)  # gentle surfaces: a random model is not a molecule
    return model


def _ethylene_batch(b: int, seed: int = 0) -> tuple:
    atoms = molecule("C2H4")
    rng = np.random.default_rng(seed)
    return atoms, atoms.positions[None] + 0.05 * rng.normal(size=(b, len(atoms), 3))


def _own_couplings(model: MultiStateMACE, atoms) -> dict[str, np.ndarray]:
    out = model.evaluate_structures([atoms.numbers], [atoms.positions], compute_couplings=True)
    return {k: v.detach().numpy() for k, v in out.items()}


@pytest.mark.parametrize("n_states", [2, 3])
def test_calculator_gives_the_models_couplings_and_hamiltonian(tmp_path, n_states):
    """results["nacs"] (S, S, N, 3) antisymmetric, equal to the model's compute_couplings
    output; diabatic_hamiltonian (S, S) whose eigenvalues are results["energies"] (S = 2: up
    to the stated eps smoothing, gap^2 = (eigenvalue gap)^2 + 4 eps^2)."""
    model = tiny_model(n_states)
    save_model(model, tmp_path / "d.fff")
    atoms = molecule("C2H4")
    atoms.calc = FusionCalculator(tmp_path / "d.fff", device="cpu", state=1)
    atoms.get_potential_energy()
    r = atoms.calc.results
    n = len(atoms)
    assert {"nacs", "diabatic_hamiltonian"} <= set(atoms.calc.implemented_properties)
    assert r["nacs"].shape == (n_states, n_states, n, 3)
    np.testing.assert_array_equal(r["nacs"], -r["nacs"].transpose(1, 0, 2, 3))
    assert np.max(np.abs(r["nacs"])) > 1e-4  # not trivially zero
    own = _own_couplings(model, atoms)
    np.testing.assert_allclose(r["nacs"], own["nacs"].transpose(1, 2, 0, 3), rtol=0, atol=TOL)
    np.testing.assert_allclose(r["energies"], own["energies"][0], rtol=0, atol=TOL)
    np.testing.assert_allclose(r["state_forces"], own["forces"].transpose(1, 0, 2), atol=TOL)
    h = r["diabatic_hamiltonian"]
    assert h.shape == (n_states, n_states)
    np.testing.assert_array_equal(h, h.T)
    lam = np.linalg.eigvalsh(h)
    e = r["energies"]
    if n_states == 2:
        assert abs(e.sum() - lam.sum()) < TOL
        assert abs((e[1] - e[0]) ** 2 - (lam[1] - lam[0]) ** 2 - 4 * DEGENERACY_EPS2) < TOL
    else:
        np.testing.assert_allclose(e, lam, rtol=0, atol=TOL)
    assert atoms.calc.get_property("nacs", atoms).shape == (n_states, n_states, n, 3)


def test_adiabatic_calculator_lists_no_couplings():
    calc = FusionCalculator(tiny_model(head="adiabatic"), device="cpu")
    assert "nacs" not in calc.implemented_properties
    assert "diabatic_hamiltonian" not in calc.implemented_properties
    atoms = molecule("C2H4")
    atoms.calc = calc
    atoms.get_potential_energy()
    assert set(calc.results) == {"energy", "free_energy", "forces", "energies", "state_forces"}


def test_potential_evaluate_gives_protocol_layout():
    """Potential.evaluate: nacs (B, S, S, N, 3) equal, structure by structure, to the model's
    own couplings; diabatic_hamiltonian (B, S, S)."""
    model = tiny_model(3)
    atoms, x = _ethylene_batch(3)
    out = Potential(model, device="cpu").evaluate(atoms.numbers, x)
    n = len(atoms)
    assert out["nacs"].shape == (3, 3, 3, n, 3)
    assert out["diabatic_hamiltonian"].shape == (3, 3, 3)
    for b in range(3):
        atoms.positions = x[b]
        own = _own_couplings(model, atoms)
        np.testing.assert_allclose(
            out["nacs"][b].numpy(), own["nacs"].transpose(1, 2, 0, 3), rtol=0, atol=TOL
        )
        np.testing.assert_allclose(
            out["diabatic_hamiltonian"][b].numpy(), own["diabatic_hamiltonian"][0], atol=TOL
        )


def test_adiabatic_potential_outputs_unchanged():
    """An adiabatic model through Potential.evaluate: energies and forces only, the same bits
    as the model called directly."""
    model = tiny_model(head="adiabatic")
    atoms, x = _ethylene_batch(2)
    out = Potential(model, device="cpu").evaluate(atoms.numbers, x)
    assert set(out) == {"energies", "forces"}
    own = model.evaluate_structures([atoms.numbers] * 2, list(x))
    np.testing.assert_allclose(out["energies"].numpy(), own["energies"].detach().numpy(), atol=TOL)


def test_ml_fssh_runs_on_the_models_couplings(tmp_path):
    """A diabatic model file named in a run input's potential gives an electronic structure
    with provides_nacs True whose couplings are the model's; FSSH runs 6 steps of ethylene."""
    save_model(tiny_model(2), tmp_path / "d.fff")
    atoms, x = _ethylene_batch(2, seed=1)
    es = structure_kind("model").build(
        ModelOptions(str(tmp_path / "d.fff")), atoms, torch.device("cpu")
    )
    assert isinstance(es, MLElectronicStructure) and es.provides_nacs
    x = torch.tensor(x)
    out = es.evaluate(x)
    direct = Potential(tmp_path / "d.fff", device="cpu").evaluate(atoms.numbers, x)
    assert torch.equal(out.nacs, direct["nacs"])
    v = torch.tensor(0.01 * np.random.default_rng(2).normal(size=x.shape))
    config = SurfaceHoppingConfig(dt=0.2, algorithm="fssh", align_nac_signs=True)
    state = initial_state(
        es, x, v, torch.tensor(atoms.get_masses()), torch.tensor([1, 1]), torch.arange(2), config
    )
    assert state.nacs is not None and torch.count_nonzero(state.couplings) > 0
    state = run(state, es, config, n_steps=6)
    assert torch.all(state.status == Status.TIME_LIMIT)
    assert torch.all(state.step == 6)
    assert torch.all(torch.isfinite(state.nacs))
