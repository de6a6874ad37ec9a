"""The electronic-structure protocol and the ASE calculator adapter."""

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes

from fusionff.dynamics import (
    ASECalculatorStructure,
    ElectronicStructure,
    StateOutputs,
    SurfaceHoppingConfig,
    TullyModel,
    initial_state,
    run,
    total_energy,
)


class TwoStateSprings(Calculator):
    """A multi-state ASE calculator: two harmonic states of a diatomic (eV, Angstrom) with a
    constant coupling vector; fills energies, state_forces and nacs like FusionCalculator."""

    implemented_properties = ["energy", "forces", "energies", "state_forces", "nacs"]

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        x = self.atoms.positions
        bond = x[1] - x[0]
        r = np.linalg.norm(bond)
        unit = bond / r
        energies = np.array([0.5 * 10.0 * (r - 1.0) ** 2, 1.0 + 0.5 * 8.0 * (r - 1.2) ** 2])
        slopes = np.array([10.0 * (r - 1.0), 8.0 * (r - 1.2)])
        forces = np.zeros((2, 2, 3))
        forces[:, 0] = slopes[:, None] * unit
        forces[:, 1] = -slopes[:, None] * unit
        nacs = np.zeros((2, 2, 2, 3))
        nacs[0, 1] = 0.1 * np.stack([-unit, unit])
        nacs[1, 0] = -nacs[0, 1]
        self.results = {
            "energy": energies[0],
            "forces": forces[0],
            "energies": energies,
            "state_forces": forces,
            "nacs": nacs,
        }


def _positions(b):
    g = torch.Generator().manual_seed(0)
    x = torch.zeros(b, 2, 3, dtype=torch.float64)
    x[:, 1, 0] = 1.0
    return x + 0.05 * torch.randn(b, 2, 3, dtype=torch.float64, generator=g)


def test_ase_adapter_returns_batched_outputs():
    """The adapter loops over structures and stacks energies (B, S), forces (B, S, N, 3) and
    NACs (B, S, S, N, 3) exactly as the calculator returns them."""
    atoms = Atoms("H2", positions=[[0, 0, 0], [1, 0, 0]])
    calc = TwoStateSprings()
    structure = ASECalculatorStructure(calc, atoms, n_states=2, provides_nacs=True)
    assert isinstance(structure, ElectronicStructure)
    positions = _positions(3)
    out = structure.evaluate(positions)
    assert out.energies.shape == (3, 2) and out.forces.shape == (3, 2, 2, 3)
    assert out.nacs.shape == (3, 2, 2, 2, 3)
    for i in range(3):
        atoms.positions = positions[i].numpy()
        calc.calculate(atoms)
        np.testing.assert_allclose(out.energies[i].numpy(), calc.results["energies"])
        np.testing.assert_allclose(out.forces[i].numpy(), calc.results["state_forces"])
        np.testing.assert_allclose(out.nacs[i].numpy(), calc.results["nacs"])


def test_ase_adapter_drives_dynamics():
    """Dynamics on a wrapped ASE calculator runs and conserves energy within 1 meV."""
    atoms = Atoms("H2", positions=[[0, 0, 0], [1, 0, 0]])
    structure = ASECalculatorStructure(TwoStateSprings(), atoms, n_states=2, provides_nacs=True)
    config = SurfaceHoppingConfig(dt=0.05)
    masses = torch.tensor(atoms.get_masses(), dtype=torch.float64)
    positions = _positions(2)
    state = initial_state(
        structure,
        positions,
        torch.zeros_like(positions),
        masses,
        torch.zeros(2, dtype=torch.int64),
        torch.arange(2),
        config,
    )
    final = run(state, structure, config, 100)
    assert (total_energy(final) - final.reference_energy).abs().max() < 1e-3


def test_ase_adapter_reports_missing_results():
    """A calculator without per-state results is reported by name, not silently used (EMT's
    results["energies"] are ASE's per-atom energies, of the wrong shape here)."""
    from ase.calculators.emt import EMT

    atoms = Atoms("Cu3", positions=[[0, 0, 0], [2.5, 0, 0], [0, 2.5, 0]])
    structure = ASECalculatorStructure(EMT(), atoms, n_states=2)
    with pytest.raises(ValueError, match="energies"):
        structure.evaluate(torch.tensor(atoms.positions)[None])


def test_state_outputs_validate_shapes():
    """StateOutputs rejects forces or NACs whose shapes do not match the energies."""
    with pytest.raises(ValueError, match="forces"):
        StateOutputs(torch.zeros(2, 3), torch.zeros(2, 2, 4, 3))
    with pytest.raises(ValueError, match="nacs"):
        StateOutputs(torch.zeros(2, 3), torch.zeros(2, 3, 4, 3), torch.zeros(2, 3, 4, 3))


def test_tully_model_satisfies_protocol():
    """TullyModel is an ElectronicStructure with NACs."""
    model = TullyModel("dual")
    assert isinstance(model, ElectronicStructure) and model.provides_nacs


class FailsWhenStretched(TwoStateSprings):
    """Raises like a reference program that does not converge, for bonds longer than 1.3 A."""

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        if np.linalg.norm(atoms.positions[1] - atoms.positions[0]) > 1.3:
            raise RuntimeError("SCF did not converge")
        super().calculate(atoms, properties, system_changes)


def test_failed_calculation_stops_only_its_trajectory():
    """A calculator error at one trajectory's geometry gives NaN for that structure (with a
    warning naming it); the engine flags that trajectory POTENTIAL_FAILED and the others
    finish."""
    from fusionff.dynamics import Status

    atoms = Atoms("H2", positions=[[0, 0, 0], [1, 0, 0]])
    structure = ASECalculatorStructure(FailsWhenStretched(), atoms, n_states=2)
    x = _positions(3)
    v = torch.zeros(3, 2, 3, dtype=torch.float64)
    v[1, 1, 0] = 0.2  # trajectory 1 stretches its bond beyond 1.3 A within a few steps
    config = SurfaceHoppingConfig(dt=0.5, algorithm="kappa-tsh")
    masses = torch.tensor([1.008, 1.008], dtype=torch.float64)
    state = initial_state(
        structure, x, v, masses, torch.zeros(3, dtype=torch.int64), torch.arange(3), config
    )
    with pytest.warns(RuntimeWarning, match="failed for structure 1 of the batch"):
        state = run(state, structure, config, n_steps=20)
    assert state.status.tolist() == [Status.TIME_LIMIT, Status.POTENTIAL_FAILED, Status.TIME_LIMIT]


class MeetsAnother(TwoStateSprings):
    """TwoStateSprings that waits in ``calculate`` until a second calculation has started
    (a threading.Barrier of two, shared by all copies); alone, it raises after 20 s."""

    barrier = None

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        self.barrier.wait(timeout=20)
        super().calculate(atoms, properties, system_changes)


class FailsWhenLifted(TwoStateSprings):
    """Raises for structures whose first atom has y > 0.5 Angstrom."""

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        if atoms is not None and atoms.positions[0, 1] > 0.5:
            raise RuntimeError("SCF did not converge")
        super().calculate(atoms, properties, system_changes)


def test_ase_adapter_workers_compute_concurrently_with_the_serial_results():
    """With workers=2 two structures are computed at the same time (each calculation waits
    for a second one at a barrier: run one at a time, the barrier would time out), and the
    outputs are those of one worker, structure by structure, bit for bit."""
    import threading

    atoms = Atoms("H2", positions=[[0, 0, 0], [1, 0, 0]])
    positions = _positions(4)
    serial = ASECalculatorStructure(TwoStateSprings(), atoms, 2, provides_nacs=True)
    expected = serial.evaluate(positions)
    MeetsAnother.barrier = threading.Barrier(2)
    parallel = ASECalculatorStructure(MeetsAnother(), atoms, 2, provides_nacs=True, workers=2)
    for _ in range(2):  # the worker copies are made once and reused
        out = parallel.evaluate(positions)
        assert not MeetsAnother.barrier.broken
        for name in ("energies", "forces", "nacs"):
            assert torch.equal(getattr(out, name), getattr(expected, name)), name
    with pytest.raises(ValueError, match="workers"):
        ASECalculatorStructure(TwoStateSprings(), atoms, 2, workers=0)


def test_ase_adapter_failed_structure_gets_nan_with_workers():
    """A calculation that raises in one worker gives NaN for that structure only, with a
    warning that names it; the other structures are computed."""
    atoms = Atoms("H2", positions=[[0, 0, 0], [1, 0, 0]])
    positions = _positions(4)
    positions[2, 0, 1] = 1.0
    structure = ASECalculatorStructure(FailsWhenLifted(), atoms, 2, workers=3)
    with pytest.warns(RuntimeWarning, match="structure 2 of the batch.*SCF did not converge"):
        out = structure.evaluate(positions)
    finite = torch.isfinite(out.energies).all(1)
    assert finite.tolist() == [True, True, False, True]
    assert torch.isnan(out.forces[2]).all() and torch.isfinite(out.forces[[0, 1, 3]]).all()
