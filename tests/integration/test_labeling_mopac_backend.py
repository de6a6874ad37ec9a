"""MOPAC at R1 end to end: ethylene labels, finite differences, failures, calculator, CLI.

Every test needs the ``mopac`` executable and is skipped (with the reason) without it. The
CLI test also needs the HDF5 dataset of ``fusionff.data``.
"""

import argparse

import numpy as np
import pytest
from ase.build import molecule
from ase.calculators.calculator import CalculationFailed
from ase.io import write

from fusionff.labeling.calculator import MopacCalculator
from fusionff.labeling.mopac import MopacBackend, find_mopac

pytestmark = pytest.mark.mopac


@pytest.fixture(scope="module")
def backend():
    if find_mopac() is None:
        pytest.skip("MOPAC executable 'mopac' not found on PATH")
    return MopacBackend()


@pytest.fixture(scope="module")
def ethylene():
    """Ethylene slightly distorted so that no force component vanishes by symmetry."""
    atoms = molecule("C2H4")
    atoms.positions += np.random.default_rng(3).normal(scale=0.03, size=atoms.positions.shape)
    return atoms


def test_ethylene_s1_above_s0_with_forces_of_every_atom_and_state(backend, ethylene):
    """Two states succeed, S1 lies several eV above S0, forces are (N, S, 3) and finite."""
    result = backend.compute(ethylene.numbers, ethylene.positions, 2)
    assert result.ok and result.error == ""
    assert result.energies.shape == (2,) and result.forces.shape == (6, 2, 3)
    assert 4.0 < result.energies[1] - result.energies[0] < 10.0
    assert np.all(np.isfinite(result.forces))
    assert not np.allclose(result.forces[:, 0], result.forces[:, 1])


TIGHT_SCF = "AM1 OPEN(2,2) C.I.=2 SINGLET 1SCF GRAD SCFCRT=1.D-10"


@pytest.mark.parametrize("state", [0, 1])
def test_forces_are_minus_the_finite_difference_gradient(backend, ethylene, state):
    """Every force component = -(E(x+h) - E(x-h)) / 2h of the same state to 2e-3 eV/A
    (measured: 4e-4 for S0, 1.1e-3 for S1, the same for h = 1e-4 .. 3e-3). The SCF is
    converged tightly here; at R1's default SCF criterion the energies carry noise of about
    1e-5 eV, which swamps finite differences with small steps."""
    tight = MopacBackend(TIGHT_SCF)
    h = 1e-3
    forces = tight.compute(ethylene.numbers, ethylene.positions, state + 1).forces[:, state]
    finite_difference = np.zeros_like(forces)
    for atom in range(len(ethylene)):
        for axis in range(3):
            energies = []
            for sign in (1, -1):
                positions = ethylene.positions.copy()
                positions[atom, axis] += sign * h
                result = tight.compute(ethylene.numbers, positions, state + 1)
                energies.append(result.energies[state])
            finite_difference[atom, axis] = -(energies[0] - energies[1]) / (2 * h)
    np.testing.assert_allclose(forces, finite_difference, rtol=0, atol=2e-3)


def test_default_scf_labels_are_close_to_converged_ones(backend, ethylene):
    """R1's default SCF criterion changes energies by < 1e-3 eV and forces by < 5e-3 eV/A
    with respect to a tightly converged SCF (measured: 1e-4 eV, 2e-3 eV/A)."""
    default = backend.compute(ethylene.numbers, ethylene.positions, 2)
    tight = MopacBackend(TIGHT_SCF).compute(ethylene.numbers, ethylene.positions, 2)
    np.testing.assert_allclose(default.energies, tight.energies, rtol=0, atol=1e-3)
    np.testing.assert_allclose(default.forces, tight.forces, rtol=0, atol=5e-3)


def test_overlapping_atoms_fail_with_mopac_message(backend, ethylene):
    """Two atoms on one spot: every state fails, MOPAC's message is returned, nothing raised."""
    positions = ethylene.positions.copy()
    positions[1] = positions[0]
    result = backend.compute(ethylene.numbers, positions, 2)
    assert not result.success.any() and np.all(np.isnan(result.energies))
    assert result.error.startswith("S0: MOPAC: ATOMS 2 AND 1 ARE SEPARATED BY 0.0000")


def test_root_beyond_the_ci_fails_only_that_state(backend, ethylene):
    """OPEN(2,2) C.I.=2 has three singlet roots: S0..S2 succeed, S3 fails with MOPAC's reason."""
    result = backend.compute(ethylene.numbers, ethylene.positions, 4)
    assert result.success.tolist() == [True, True, True, False]
    assert np.all(np.diff(result.energies[:3]) > 0)
    assert result.error == "S3: MOPAC: ROOT REQUESTED DOES NOT EXIST IN C.I."


def test_unknown_keyword_and_timeout_are_failures(backend, ethylene):
    """A keyword MOPAC rejects and a run over its time limit give failed results."""
    bogus = MopacBackend("AM1 OPEN(2,2) C.I.=2 SINGLET 1SCF GRAD BOGUSWORD")
    result = bogus.compute(ethylene.numbers, ethylene.positions, 1)
    assert not result.ok and "UNRECOGNIZED KEY-WORDS: (BOGUSWORD)" in result.error
    hurried = MopacBackend(timeout=1e-4)
    result = hurried.compute(ethylene.numbers, ethylene.positions, 1)
    assert not result.ok and "timed out" in result.error


def test_provenance_names_program_version_and_keywords(backend):
    """Provenance records MOPAC, its version as reported by the program, and R1's keywords."""
    provenance = backend.provenance()
    assert provenance["program"] == "MOPAC"
    assert provenance["version"].split(".")[0] == "22"
    assert provenance["keywords"] == "AM1 OPEN(2,2) C.I.=2 SINGLET 1SCF GRAD"


def test_calculator_has_the_fusion_calculator_results(backend, ethylene):
    """energy/forces are those of ``state``; energies (S,) and state_forces (S, N, 3) hold
    every state; switching the state needs no new calculation."""
    atoms = ethylene.copy()
    calc = MopacCalculator(n_states=2, state=1)
    atoms.calc = calc
    energy = atoms.get_potential_energy()
    forces = atoms.get_forces()
    assert set(calc.implemented_properties) == {
        "energy",
        "free_energy",
        "forces",
        "energies",
        "state_forces",
    }
    assert calc.results["energies"].shape == (2,)
    assert calc.results["state_forces"].shape == (2, 6, 3)
    assert energy == calc.results["energies"][1] == calc.results["free_energy"]
    np.testing.assert_array_equal(forces, calc.results["state_forces"][1])
    reference = backend.compute(atoms.numbers, atoms.positions, 2)
    np.testing.assert_allclose(calc.results["energies"], reference.energies)
    np.testing.assert_allclose(calc.results["state_forces"], reference.state_forces)
    calc.state = 0
    assert atoms.get_potential_energy() == calc.results["energies"][0]
    np.testing.assert_array_equal(atoms.get_forces(), calc.results["state_forces"][0])


def test_calculator_failure_names_the_state_and_mopac_message(backend, ethylene):
    """A failed MOPAC run raises CalculationFailed naming the state and MOPAC's message."""
    atoms = ethylene.copy()
    atoms.positions[1] = atoms.positions[0]
    atoms.calc = MopacCalculator(n_states=2)
    with pytest.raises(CalculationFailed, match=r"S0, S1 .*SEPARATED BY 0\.0000"):
        atoms.get_potential_energy()


def test_cli_labels_frames_with_two_workers_and_records_the_failure(backend, ethylene, tmp_path):
    """``fusionff label`` on three frames, one impossible: two labelled, one failed with
    MOPAC's message; a second run finds all three done and computes nothing."""
    dataset_module = pytest.importorskip("fusionff.data.dataset")
    from fusionff.labeling.cli import add_label_arguments, label_main
    from fusionff.labeling.runner import SOURCE_INDEX

    frames = [ethylene.copy() for _ in range(3)]
    frames[1].positions[0, 2] += 0.1
    frames[2].positions[1] = frames[2].positions[0]
    write(tmp_path / "in.extxyz", frames)
    parser = add_label_arguments(argparse.ArgumentParser())
    argv = [str(tmp_path / "in.extxyz"), str(tmp_path / "out.h5"), "--workers", "2"]
    assert label_main(parser.parse_args(argv)) == 0
    with dataset_module.MultiStateDataset.open(tmp_path / "out.h5") as dataset:
        entries = {dataset[i].meta[SOURCE_INDEX]: dataset[i] for i in range(len(dataset))}
    assert sorted(entries) == [0, 1, 2]
    assert [entries[i].status for i in range(3)] == ["ok", "ok", "failed"]
    assert "SEPARATED BY" in entries[2].error
    reference = backend.compute(frames[1].numbers, frames[1].positions, 2)
    np.testing.assert_allclose(entries[1].energies, reference.energies, rtol=1e-6)
    np.testing.assert_allclose(entries[1].forces, reference.forces, rtol=1e-5, atol=1e-6)
    assert label_main(parser.parse_args(argv)) == 0
    with dataset_module.MultiStateDataset.open(tmp_path / "out.h5") as dataset:
        assert len(dataset) == 3


def test_gradient_check_accepts_mopac_forces_of_ethylene(backend, ethylene):
    """R1 forces of distorted ethylene agree with the slope of R1 energies along the check's
    random direction to better than 0.05 eV/A in both states (the stilbene set's typical
    agreement is 1 meV/A, data/stilbene/README.md)."""
    from fusionff.labeling.gradient_check import GradientCheckedBackend

    result = GradientCheckedBackend(backend, tolerance=0.05).compute(
        ethylene.numbers, ethylene.positions, 2
    )
    assert result.ok and result.forces_ok.all(), result.error


def test_calculator_drives_the_dynamics_electronic_structure(backend, ethylene):
    """MopacCalculator plugs into the dynamics engine's ASE wrapper: (B, S) energies and
    (B, S, N, 3) forces equal to the backend's labels of each structure."""
    torch = pytest.importorskip("torch")
    from fusionff.dynamics.protocol import ASECalculatorStructure

    structure = ASECalculatorStructure(MopacCalculator(n_states=2), ethylene, 2)
    stretched = ethylene.positions.copy()
    stretched[0, 2] += 0.05
    positions = np.stack([ethylene.positions, stretched])
    out = structure.evaluate(torch.as_tensor(positions))
    assert tuple(out.energies.shape) == (2, 2) and tuple(out.forces.shape) == (2, 2, 6, 3)
    for b in range(2):
        reference = backend.compute(ethylene.numbers, positions[b], 2)
        np.testing.assert_allclose(out.energies[b].numpy(), reference.energies)
        np.testing.assert_allclose(out.forces[b].numpy(), reference.state_forces)
