"""Committees of models: FusionCalculator and Potential report the members' mean and spread.

The spread is the population standard deviation over the members (``np.std``, ddof = 0), and
it is checked against the members evaluated one by one; the couplings of diabatic members are
averaged after each member's signs are aligned to the first member's.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase.build import molecule

from fusionff import FusionCalculator, save_model
from fusionff.dynamics.ml import MLElectronicStructure
from fusionff.dynamics.run_config import RunConfig
from fusionff.potential import Potential
from tests.unit.test_potential_diabatic import _ethylene_batch, tiny_model

TOL = 1e-12


def _files(tmp_path, head: str = "adiabatic", n: int = 3) -> list[str]:
    paths = []
    for seed in range(n):
        path = tmp_path / f"{head}-{seed}.fff"
        save_model(tiny_model(2, head=head, seed=seed), path)
        paths.append(str(path))
    return paths


def _one_by_one(paths: list[str], atoms) -> dict[str, np.ndarray]:
    """Each member's results through its own calculator, stacked (M, ...)."""
    results = []
    for path in paths:
        a = atoms.copy()
        a.calc = FusionCalculator(path, device="cpu")
        a.get_potential_energy()
        results.append(a.calc.results)
    return {k: np.stack([r[k] for r in results]) for k in results[0] if k != "diabatic_hamiltonian"}


@pytest.mark.parametrize("head", ["adiabatic", "diabatic"])
def test_committee_mean_and_std_are_those_of_its_members(tmp_path, head):
    """energies/state_forces: the members' mean; energies_std, forces_std, gap_std: np.std over
    the members (ddof = 0) of E, F and E_1 - E_0."""
    paths = _files(tmp_path, head)
    atoms = molecule("C2H4")
    members = _one_by_one(paths, atoms)
    atoms.calc = FusionCalculator(paths, device="cpu", state=1)
    e = atoms.get_potential_energy()
    r = atoms.calc.results
    for key in ("energies_std", "forces_std", "gap_std"):
        assert key in atoms.calc.implemented_properties
    np.testing.assert_allclose(r["energies"], members["energies"].mean(0), rtol=0, atol=TOL)
    np.testing.assert_allclose(r["state_forces"], members["state_forces"].mean(0), atol=TOL)
    np.testing.assert_allclose(r["energies_std"], members["energies"].std(0), rtol=0, atol=TOL)
    np.testing.assert_allclose(r["forces_std"], members["state_forces"].std(0), atol=TOL)
    gaps = members["energies"][:, 1] - members["energies"][:, 0]
    assert isinstance(r["gap_std"], float) and abs(r["gap_std"] - gaps.std()) < TOL
    assert r["energies_std"].shape == (2,) and r["forces_std"].shape == (2, len(atoms), 3)
    assert np.all(r["energies_std"] > 0) and r["gap_std"] > 0
    assert e == r["energies"][1]
    np.testing.assert_array_equal(atoms.get_forces(), r["state_forces"][1])


def test_committee_couplings_are_the_sign_aligned_mean(tmp_path):
    """Diabatic members: nacs is the mean after flipping each member's d_ij that points against
    the first member's; it stays antisymmetric. One member's signs flipped changes nothing."""
    paths = _files(tmp_path, "diabatic")
    atoms = molecule("C2H4")
    members = _one_by_one(paths, atoms)["nacs"]  # (M, S, S, N, 3)
    overlap = (members * members[:1]).sum(axis=(-1, -2))
    aligned = members * np.where(overlap < 0, -1.0, 1.0)[..., None, None]
    atoms.calc = FusionCalculator(paths, device="cpu")
    atoms.get_potential_energy()
    nacs = atoms.calc.results["nacs"]
    assert "diabatic_hamiltonian" not in atoms.calc.results  # the members' bases differ
    np.testing.assert_allclose(nacs, aligned.mean(0), rtol=0, atol=TOL)
    np.testing.assert_allclose(nacs, -nacs.transpose(1, 0, 2, 3), rtol=0, atol=TOL)
    # the flip is only a convention: Potential.evaluate of a committee whose second member
    # returns the opposite signs gives the same mean
    models = [tiny_model(2, "diabatic", seed) for seed in range(3)]
    flipped = Potential(models, device="cpu")
    forward = flipped.models[1].forward

    def opposite(*args, **kwargs):
        out = forward(*args, **kwargs)
        out["nacs"] = -out["nacs"]
        return out

    flipped.models[1].forward = opposite
    _, x = _ethylene_batch(1)
    plain = Potential(models, device="cpu").evaluate(atoms.numbers, x)["nacs"]
    np.testing.assert_allclose(flipped.evaluate(atoms.numbers, x)["nacs"], plain, atol=TOL)


def test_mixed_committee_gives_no_couplings(tmp_path):
    """A committee with an adiabatic member provides no couplings."""
    paths = _files(tmp_path, "diabatic", 1) + _files(tmp_path, "adiabatic", 1)
    calc = FusionCalculator(paths, device="cpu")
    assert not calc.potential.provides_nacs and "nacs" not in calc.implemented_properties


@pytest.mark.parametrize("head", ["adiabatic", "diabatic"])
def test_committee_of_one_equals_the_model(tmp_path, head):
    """Potential([m]) gives m's energies, forces (and couplings) to the bit, zero spreads."""
    (path,) = _files(tmp_path, head, 1)
    atoms, x = _ethylene_batch(3)
    single = Potential(path, device="cpu").evaluate(atoms.numbers, x)
    committee = Potential([path], device="cpu").evaluate(atoms.numbers, x)
    for key, value in single.items():
        assert torch.equal(committee[key], value), key
    assert committee["energies_std"].shape == (3, 2)
    assert committee["forces_std"].shape == (3, 2, len(atoms), 3)
    assert committee["gap_std"].shape == (3,)
    for key in ("energies_std", "forces_std", "gap_std"):
        assert torch.count_nonzero(committee[key]) == 0


def test_potential_committee_matches_members_batched(tmp_path):
    """Potential.evaluate of B structures: mean and np.std (ddof = 0) of the members' own
    evaluations, structure by structure."""
    paths = _files(tmp_path, "diabatic")
    atoms, x = _ethylene_batch(3)
    members = [Potential(p, device="cpu").evaluate(atoms.numbers, x) for p in paths]
    out = Potential(paths, device="cpu").evaluate(atoms.numbers, x)
    energies = np.stack([m["energies"].numpy() for m in members])
    forces = np.stack([m["forces"].numpy() for m in members])
    np.testing.assert_allclose(out["energies"].numpy(), energies.mean(0), rtol=0, atol=TOL)
    np.testing.assert_allclose(out["energies_std"].numpy(), energies.std(0), rtol=0, atol=TOL)
    np.testing.assert_allclose(out["forces_std"].numpy(), forces.std(0), rtol=0, atol=TOL)
    gaps = energies[..., 1] - energies[..., 0]
    np.testing.assert_allclose(out["gap_std"].numpy(), gaps.std(0), rtol=0, atol=TOL)
    assert out["nacs"].shape == (3, 2, 2, len(atoms), 3)
    es = MLElectronicStructure(paths, atoms.numbers, device="cpu")
    assert es.provides_nacs and torch.equal(es.evaluate(torch.tensor(x)).nacs, out["nacs"])


def test_mismatched_members_raise_naming_the_file(tmp_path):
    """Other elements or another number of states: a ValueError naming the member's file."""
    (good,) = _files(tmp_path, "adiabatic", 1)
    three = tmp_path / "three-states.fff"
    save_model(tiny_model(3, head="adiabatic"), three)
    with pytest.raises(ValueError, match=r"three-states\.fff has 3 states"):
        FusionCalculator([good, three], device="cpu")
    other = tmp_path / "with-oxygen.fff"
    save_model(tiny_model(2, head="adiabatic", elements=("H", "C", "O")), other)
    with pytest.raises(ValueError, match=r"with-oxygen\.fff has elements"):
        Potential([good, str(other)], device="cpu")
    with pytest.raises(ValueError, match="at least one model"):
        Potential([], device="cpu")


def test_run_input_names_a_committee(tmp_path):
    """potential: {model: [a.fff, b.fff]} builds the committee's electronic structure."""
    paths = _files(tmp_path, "diabatic", 2)
    atoms = molecule("C2H4")
    raw = {
        "potential": {"model": paths},
        "structure": "c2h4.xyz",
        "initial_conditions": {"wigner": {"temperature": 300, "hessian": "compute"}, "state": 1},
        "output": str(tmp_path / "out"),
        "time_fs": 1,
    }
    config = RunConfig.from_dict(raw)
    assert config.potential.options.paths == paths
    es = config.potential.entry.build(config.potential.options, atoms, torch.device("cpu"))
    assert es.provides_nacs and len(es.potential.models) == 2
