"""S0 optimisation before Wigner sampling (``initial_conditions.wigner.optimize``)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from ase.build import molecule
from ase.io import read, write

from fusionff.dynamics import StateOutputs
from fusionff.dynamics.initial_conditions import optimize_structure, reference_hessian
from fusionff.dynamics.run_config import RunConfig, RunConfigError, WignerSpec
from fusionff.dynamics.runner import run_ensemble

CPU = torch.device("cpu")
REPO = Path(__file__).resolve().parents[2]


class PairSprings:
    """Two states: E0 = sum over pairs k/2 (r_ij - r0_ij)^2 and E1 = E0 + 4 eV. The rest
    lengths r0 are the distances of ``reference`` stretched by 2 to 8 % (fixed pseudo-random
    factors), so ``reference`` is not a minimum and the minimum is not just a scaled copy."""

    n_states = 2
    provides_nacs = False

    def __init__(self, reference: np.ndarray, k: float = 5.0):
        x = torch.as_tensor(reference)
        stretch = 1.02 + 0.06 * torch.rand(
            len(x), len(x), generator=torch.Generator().manual_seed(0)
        )
        self.rest = torch.cdist(x, x) * (stretch + stretch.T) / 2
        self.pairs = torch.triu_indices(len(x), len(x), 1)
        self.k = k
        self.calls = 0

    def evaluate(self, positions: torch.Tensor) -> StateOutputs:
        self.calls += 1
        i, j = self.pairs
        with torch.enable_grad():
            x = positions.detach().double().requires_grad_(True)
            r = (x[:, i] - x[:, j]).norm(dim=-1)
            e0 = 0.5 * self.k * ((r - self.rest[i, j]) ** 2).sum(1)
            (grad,) = torch.autograd.grad(e0.sum(), x)
        e0, f0 = e0.detach(), -grad
        return StateOutputs(
            energies=torch.stack([e0, e0 + 4.0], 1), forces=torch.stack([f0, f0], 1)
        )


class Untouchable(PairSprings):
    def evaluate(self, positions):
        raise AssertionError("the cached optimisation should have been used")


def max_force(structure, positions: np.ndarray) -> float:
    x = torch.as_tensor(positions[None], dtype=torch.float64)
    return float(structure.evaluate(x).forces[0, 0].norm(dim=-1).max())


def test_optimized_structure_has_forces_below_fmax_and_lower_energy(tmp_path):
    """BFGS on the S0 surface ends with no atom's force above fmax and the energy lowered;
    the cache file records energies and the max force."""
    atoms = molecule("C2H6")
    model = PairSprings(atoms.positions)
    spec = WignerSpec(temperature=300, hessian="compute", optimize=True, fmax=0.005)
    cache = tmp_path / "optimized.xyz"
    opt = optimize_structure(spec, atoms, model, CPU, cache, "k=5")
    assert not opt.cached and opt.steps > 0 and cache.exists()
    assert max_force(model, opt.atoms.positions) < 0.005
    assert opt.max_force == pytest.approx(max_force(model, opt.atoms.positions), abs=1e-6)
    x = torch.as_tensor(np.stack([atoms.positions, opt.atoms.positions]))
    start, end = model.evaluate(x).energies[:, 0].tolist()
    assert opt.start_energy == pytest.approx(start) and opt.energy == pytest.approx(end)
    assert end < start
    assert np.array_equal(opt.atoms.numbers, atoms.numbers)


def test_cached_minimum_is_reused_until_the_potential_changes(tmp_path):
    """The same potential (source) and structure read the cache without evaluations; another
    source recomputes it."""
    atoms = molecule("C2H6")
    spec = WignerSpec(temperature=300, hessian="compute", optimize=True)
    cache = tmp_path / "optimized.xyz"
    first = optimize_structure(spec, atoms, PairSprings(atoms.positions), CPU, cache, "k=5")
    again = optimize_structure(spec, atoms, Untouchable(atoms.positions), CPU, cache, "k=5")
    assert again.cached and again.steps == first.steps
    np.testing.assert_array_equal(again.atoms.positions, first.atoms.positions)
    assert again.energy == first.energy
    stiffer = PairSprings(atoms.positions, k=20.0)
    other = optimize_structure(spec, atoms, stiffer, CPU, cache, "k=20")
    assert not other.cached and stiffer.calls > 0
    assert max_force(stiffer, other.atoms.positions) < spec.fmax


def test_not_converging_names_fmax_and_the_max_force(tmp_path):
    atoms = molecule("C2H6")
    spec = WignerSpec(temperature=300, hessian="compute", optimize=True, fmax=1e-6, max_steps=2)
    with pytest.raises(
        RuntimeError, match=r"fmax = 1e-06 .* max_steps = 2 steps \(max force 0\.\d+"
    ):
        optimize_structure(spec, atoms, PairSprings(atoms.positions), CPU, tmp_path / "o.xyz")
    assert not (tmp_path / "o.xyz").exists()


def test_hessian_at_the_minimum_has_no_imaginary_modes(tmp_path):
    """The input structure is not a minimum of the model; the optimised one is, and the
    computed Hessian there has only the six near-zero external modes below zero."""
    atoms = molecule("C2H6")
    model = PairSprings(atoms.positions)
    spec = WignerSpec(temperature=300, hessian="compute", optimize=True, fmax=1e-4)
    opt = optimize_structure(spec, atoms, model, CPU, tmp_path / "optimized.xyz")
    hessian = reference_hessian(spec, opt.atoms, model, CPU, tmp_path / "hessian.npz")
    eigenvalues = np.linalg.eigvalsh(hessian)
    assert np.all(eigenvalues[:6] > -1e-3) and np.all(eigenvalues[6:] > 0.1)


def test_hessian_file_with_optimize_is_an_error_naming_the_keys():
    """A Hessian file belongs to the structure before optimisation."""
    with pytest.raises(RunConfigError, match="wigner.optimize, initial_conditions.wigner.hessian"):
        WignerSpec(temperature=300, hessian="data/stilbene/cis-hessian.npz", optimize=True)
    raw = {
        "potential": "model.fff",
        "structure": "mol.xyz",
        "initial_conditions": {
            "wigner": {"temperature": 300, "hessian": "h.npz", "optimize": True}
        },
        "output": "out",
        "n_steps": 10,
    }
    with pytest.raises(RunConfigError, match="initial_conditions.wigner.hessian"):
        RunConfig.from_dict(raw)


def molecular_input(tmp_path, wigner: dict) -> Path:
    write(tmp_path / "ethane.xyz", molecule("C2H6"))
    raw = {
        "potential": "model.fff",
        "structure": str(tmp_path / "ethane.xyz"),
        "initial_conditions": {"wigner": {"temperature": 300, **wigner}, "state": 1},
        "dynamics": {"algorithm": "kappa-tsh", "dt": 0.2},
        "n_traj": 2,
        "n_steps": 2,
        "device": "cpu",
        "output": str(tmp_path / "run"),
    }
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_optimize_keys_parse_with_defaults_and_checks(tmp_path):
    path = molecular_input(tmp_path, {"hessian": "compute"})
    wigner = RunConfig.from_yaml(path).initial_conditions.wigner
    assert (wigner.optimize, wigner.fmax, wigner.max_steps) == (False, 0.01, 1000)
    path = molecular_input(
        tmp_path, {"hessian": "compute", "optimize": True, "fmax": 0.005, "max_steps": 200}
    )
    wigner = RunConfig.from_yaml(path).initial_conditions.wigner
    assert (wigner.optimize, wigner.fmax, wigner.max_steps) == (True, 0.005, 200)
    for bad, key in [
        ({"optimize": "yes"}, "wigner.optimize"),
        ({"fmax": 0}, "wigner.fmax"),
        ({"max_steps": 0}, "wigner.max_steps"),
    ]:
        path = molecular_input(tmp_path, {"hessian": "compute", **bad})
        with pytest.raises(RunConfigError, match=key):
            RunConfig.from_yaml(path)


@pytest.mark.parametrize("name", ["stilbene_trans_s1", "stilbene_cis_s1", "stilbene_small_cpu"])
def test_stilbene_inputs_optimize_on_the_potential(name):
    wigner = RunConfig.from_yaml(REPO / "md" / f"{name}.yaml").initial_conditions.wigner
    assert wigner.optimize and wigner.hessian == "compute"
    assert wigner.cold_below == 100 and wigner.temperature == 300


def test_run_samples_about_the_optimized_structure(tmp_path):
    """A run with optimize: true writes optimized.xyz, computes the Hessian there, logs the
    energy lowering, and a second run reads the cached minimum."""
    atoms = molecule("C2H6")
    config = RunConfig.from_yaml(
        molecular_input(tmp_path, {"hessian": "compute", "optimize": True, "fmax": 1e-3})
    )
    log = io.StringIO()
    run_ensemble(config, structure=PairSprings(atoms.positions), log=log)
    out = tmp_path / "run"
    assert "S0 optimisation: energy lowered by" in log.getvalue()
    assert "BFGS steps, written to" in log.getvalue()
    minimum = read(out / "optimized.xyz")
    assert np.abs(minimum.positions - atoms.positions).max() > 0.01
    with np.load(out / "hessian.npz") as data:
        np.testing.assert_array_equal(data["positions"], minimum.positions)
    log = io.StringIO()
    run_ensemble(config, restart=True, structure=PairSprings(atoms.positions), log=log)
    assert "(read from" in log.getvalue()


def test_computed_hessian_for_other_positions_is_recomputed(tmp_path):
    """Turning optimize on in an output directory with a computed Hessian of the input
    structure recomputes it at the minimum (same potential, other positions)."""
    atoms = molecule("C2H6")
    model = PairSprings(atoms.positions)
    spec = WignerSpec(temperature=300, hessian="compute", optimize=True)
    cache = tmp_path / "hessian.npz"
    at_start = reference_hessian(spec, atoms, model, CPU, cache, "k=5")
    opt = optimize_structure(spec, atoms, model, CPU, tmp_path / "optimized.xyz", "k=5")
    at_minimum = reference_hessian(spec, opt.atoms, model, CPU, cache, "k=5")
    assert np.abs(at_minimum - at_start).max() > 0.1
    with np.load(cache) as data:
        np.testing.assert_array_equal(data["positions"], opt.atoms.positions)
