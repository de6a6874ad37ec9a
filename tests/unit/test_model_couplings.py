"""Learned couplings of the adiabatic head (``couplings=True``).

Checked in float64: the couplings are antisymmetric to the bit and transform as polar vectors
(1o) under rotations, reflections and the inversion, to 1e-10 relative; energies are those of
an ordinary adiabatic model's kind (invariant); model files keep the coupling readout bit for
bit without running code; the config refuses combinations that cannot work; Potential and
FusionCalculator return the couplings in their layouts, and a committee averages them.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from ase.build import molecule
from scipy.spatial.transform import Rotation

from fusionff import FusionCalculator, MultiStateMACE, load_model, save_model
from fusionff.models.io import read_header
from fusionff.potential import Potential
from tests.conftest import outputs_with_couplings, random_molecule, relative_error, small_model

TOL = 1e-10


def _model(n_states: int, fusion: bool = False, seed: int = 0) -> MultiStateMACE:
    model = small_model(fusion=fusion, n_states=n_states, couplings=True, coupling_scale=100.0)
    if seed:
        torch.manual_seed(seed)
        with torch.no_grad():
            for p in model.coupling_readout.parameters():
                p.normal_()
    return model


@pytest.mark.parametrize("n_states", [2, 3])
def test_couplings_are_antisymmetric_with_zero_diagonal(n_states):
    """d_ji = -d_ij bit for bit, d_ii = 0 exactly, shape (n, S, S, 3), not trivially zero."""
    model = _model(n_states)
    z, x = random_molecule(np.random.default_rng(0))
    d = outputs_with_couplings(model, z, x)["nacs"]
    assert d.shape == (len(z), n_states, n_states, 3)
    assert np.array_equal(d, -d.transpose(0, 2, 1, 3))
    assert np.all(d[:, np.arange(n_states), np.arange(n_states)] == 0)
    assert np.max(np.abs(d)) > 1e-3


@pytest.mark.parametrize("transform", ["rotation", "reflection", "inversion"])
@pytest.mark.parametrize(
    ("n_states", "fusion"), [(2, False), (2, True), (3, False)], ids=["S2", "S2-fusion", "S3"]
)
def test_couplings_are_polar_vectors_under_o3(n_states, fusion, transform):
    """d_ij(QR) = Q d_ij(R) on every atom for random rotations Q, reflections -Q and the
    inversion -1 (a pseudovector readout (1e) would fail the last two), with the same sign (no
    sign freedom: the readout is a function of the geometry); E(QR) = E(R), F(QR) = Q F(R)."""
    model = _model(n_states, fusion)
    rng = np.random.default_rng(1)
    z, x = random_molecule(rng)
    a = outputs_with_couplings(model, z, x)
    for _ in range(2 if transform != "inversion" else 1):
        q = Rotation.random(random_state=rng.integers(1 << 31)).as_matrix()
        q = {"rotation": q, "reflection": -q, "inversion": -np.eye(3)}[transform]
        b = outputs_with_couplings(model, z, x @ q.T)
        assert relative_error(b["energies"], a["energies"]) < TOL
        assert relative_error(b["forces"], a["forces"] @ q.T) < TOL
        assert relative_error(b["nacs"], a["nacs"] @ q.T) < TOL


def test_couplings_scale_with_coupling_scale_and_need_no_forces():
    """nacs = coupling_scale x readout (1/Angstrom); couplings without forces are the same."""
    model = _model(2)
    z, x = random_molecule(np.random.default_rng(2))
    graph_out = outputs_with_couplings(model, z, x)
    model.config.coupling_scale = 200.0
    doubled = outputs_with_couplings(model, z, x)
    assert relative_error(doubled["nacs"], 2 * graph_out["nacs"]) < 1e-14
    from fusionff.data.graph import build_graph

    graph = build_graph([z], [x], model.r_max)
    no_forces = model(graph, compute_forces=False, compute_couplings=True)
    assert "forces" not in no_forces
    assert torch.equal(no_forces["nacs"], torch.as_tensor(doubled["nacs"]))


@pytest.mark.parametrize("fusion", [False, True], ids=["plain", "fusion"])
def test_model_file_keeps_learned_couplings_bit_for_bit(tmp_path, fusion):
    """save -> load: same config (couplings, coupling_scale) and bitwise equal energies, forces
    and couplings; the file loads with torch.load(weights_only=True) (no code runs)."""
    model = _model(3, fusion, seed=3)
    path = tmp_path / "c.fff"
    save_model(model, path)
    torch.load(path, weights_only=True)
    loaded = load_model(path)
    assert loaded.config == model.config and loaded.config.couplings
    assert read_header(path)["config"]["coupling_scale"] == 100.0
    z, x = random_molecule(np.random.default_rng(4))
    a = model.evaluate_structures([z], [x], compute_couplings=True)
    b = loaded.evaluate_structures([z], [x], compute_couplings=True)
    for key in ("energies", "forces", "nacs"):
        assert torch.equal(a[key], b[key]), key


def test_model_file_without_coupling_keys_loads_without_couplings(tmp_path):
    """Files written before learned couplings existed load as models without them."""
    model = small_model(fusion=False, n_states=2)
    path = tmp_path / "old.fff"
    save_model(model, path)
    payload = torch.load(path, weights_only=True)
    header = json.loads(payload["header"])
    del header["config"]["couplings"], header["config"]["coupling_scale"]
    payload["header"] = json.dumps(header)
    torch.save(payload, path)
    loaded = load_model(path)
    assert not loaded.config.couplings and not loaded.provides_nacs


def test_config_refuses_couplings_that_cannot_work():
    """couplings with the diabatic head, one state or l_max 0 are errors naming the reason;
    asking an adiabatic model without them for couplings is an error."""
    with pytest.raises(ValueError, match="adiabatic head"):
        MultiStateMACE(elements=["H"], n_states=2, head="diabatic", couplings=True)
    for kw in ({"n_states": 1}, {"n_states": 2, "l_max": 0, "hidden_l_max": 0}):
        with pytest.raises(ValueError, match="n_states >= 2 and l_max >= 1"):
            MultiStateMACE(elements=["H"], couplings=True, **kw)
    with pytest.raises(ValueError, match="coupling_scale"):
        MultiStateMACE(elements=["H"], n_states=2, couplings=True, coupling_scale=0.0)
    model = small_model(fusion=False, n_states=2)
    z, x = random_molecule(np.random.default_rng(5))
    with pytest.raises(ValueError, match="couplings=True"):
        model.evaluate_structures([z], [x], compute_couplings=True)


def test_calculator_and_potential_give_the_learned_couplings(tmp_path):
    """FusionCalculator: results['nacs'] (S, S, N, 3) equal to the model's own couplings, no
    diabatic_hamiltonian; Potential.evaluate: (B, S, S, N, 3) per structure the same."""
    model = _model(2, seed=6)
    save_model(model, tmp_path / "c.fff")
    atoms = molecule("CH3OH")
    calc = FusionCalculator(tmp_path / "c.fff", device="cpu")
    assert "nacs" in calc.implemented_properties
    assert "diabatic_hamiltonian" not in calc.implemented_properties
    atoms.calc = calc
    atoms.get_potential_energy()
    own = outputs_with_couplings(model, atoms.numbers, atoms.positions)["nacs"]
    own = own.transpose(1, 2, 0, 3)
    assert calc.results["nacs"].shape == (2, 2, len(atoms), 3)
    assert np.array_equal(calc.results["nacs"], own)
    assert "diabatic_hamiltonian" not in calc.results
    potential = Potential(model, device="cpu")
    assert potential.provides_nacs
    rng = np.random.default_rng(7)
    x = atoms.positions[None] + 0.05 * rng.normal(size=(3, len(atoms), 3))
    batched = potential.evaluate(atoms.numbers, x)["nacs"].numpy()
    assert batched.shape == (3, 2, 2, len(atoms), 3)
    for b in range(3):
        single = outputs_with_couplings(model, atoms.numbers, x[b])["nacs"].transpose(1, 2, 0, 3)
        assert relative_error(batched[b], single) < TOL


def test_committee_averages_learned_couplings_and_mixed_gives_none():
    """Two models with learned couplings: nacs is the sign-aligned mean of the members; with a
    member without couplings the committee provides none."""
    a, b = _model(2, seed=8), _model(2, seed=9)
    z, x = random_molecule(np.random.default_rng(10))
    (out,) = Potential([a, b], device="cpu").evaluate_structures([z], [x])
    da, db = (outputs_with_couplings(m, z, x)["nacs"].transpose(1, 2, 0, 3) for m in (a, b))
    sign = 1.0 if np.sum(da[0, 1] * db[0, 1]) >= 0 else -1.0
    db = db * np.array([[1.0, sign], [sign, 1.0]])[:, :, None, None]
    assert relative_error(out["nacs"], 0.5 * (da + db)) < TOL
    mixed = Potential([a, small_model(fusion=False, n_states=2)], device="cpu")
    assert not mixed.provides_nacs
    assert "nacs" not in mixed.evaluate_structures([z], [x])[0]
