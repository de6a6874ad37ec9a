"""OpenMolcas SA-3-CASSCF(2,2)/STO-3G (level R2) end to end on ethylene.

Checked: forces against finite differences of the energies, non-adiabatic couplings against
finite differences of wavefunction overlaps between geometries (PySCF's AO overlaps with
OpenMolcas's orbitals and CI vectors), the labels at the backend's convergence thresholds
against tightly converged ones, orbital following through the C=C twist, a failed structure
in the labelling runner, and resuming it. The whole module is skipped without ``pymolcas``;
the overlap test also needs PySCF (the ``dev`` extra).

Three states, the whole CAS(2,2) singlet space: with two, ethylene at STO-3G leaves the
pi/pi* active space once it is twisted by a few degrees (its pi-pi* V state lies 14 eV up,
above sigma-pi* states, so averaging S0 with the lowest excited state prefers a sigma orbital
in the active space: at 4 degrees an active orbital's pi weight is 0.02 and the guard
rejects it; at 18 and 45 degrees it is 0.33 and 0.78, which the guard lets through).
Averaged over all three roots, the active orbitals stay pi/pi* to 90 degrees.

Finite differences need tighter RASSCF convergence than labels do: at the backend's
thresholds single-state energies can carry noise of 1e-5 eV (measured with SA-2), which a
1e-3 Angstrom step turns into 5e-3 eV/Angstrom.
"""

import re
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pytest
from ase import Atoms
from ase.build import molecule
from ase.data import chemical_symbols

from fusionff.data.dataset import MultiStateDataset
from fusionff.labeling import molcas
from fusionff.labeling.molcas import (
    BOHR_TO_ANGSTROM,
    HARTREE_TO_EV,
    NAC_PHASE_CONVENTION,
    MolcasCasscfBackend,
    find_pymolcas,
)
from fusionff.labeling.runner import label

if find_pymolcas() is None:
    pytest.skip("OpenMolcas driver 'pymolcas' not found on PATH", allow_module_level=True)

pytestmark = pytest.mark.slow  # real OpenMolcas jobs: about 100 s for the module on two cores

N_STATES = 3
PAIRS = ((0, 1), (0, 2), (1, 2))
STEP = 1e-3
"""Angstrom, the finite-difference step."""
TIGHT_THRESHOLDS = "1.0e-11 1.0e-7 1.0e-7"
"""RASSCF ``Thrs`` for the finite-difference jobs (the backend's are 1e-10 1e-6 1e-6)."""
EV_PER_HARTREE_PER_BOHR = HARTREE_TO_EV / BOHR_TO_ANGSTROM


def twisted_ethylene(degrees: float) -> Atoms:
    """Ethylene (C=C along z, carbons 0 and 1) with the CH2 group of carbon 1 rotated by
    ``degrees`` about the C=C axis."""
    atoms = molecule("C2H4")
    hydrogens = [k for k in range(2, 6) if atoms.get_distance(1, k) < 1.3]
    angle = np.radians(degrees)
    rotation = np.array(
        [[np.cos(angle), -np.sin(angle), 0.0], [np.sin(angle), np.cos(angle), 0.0], [0, 0, 1]]
    )
    atoms.positions[hydrogens] = atoms.positions[hydrogens] @ rotation.T
    return atoms


def asymmetric_ethylene(seed: int = 7) -> Atoms:
    """Ethylene twisted by 30 degrees and displaced at random (0.03 Angstrom), so that no
    symmetry makes a coupling component vanish."""
    atoms = twisted_ethylene(30.0)
    atoms.positions += np.random.default_rng(seed).normal(scale=0.03, size=(6, 3))
    return atoms


# -- wavefunction overlaps between geometries -------------------------------------------------
CSFS = ("20", "ud", "02")
"""CAS(2,2) singlet CSFs in OpenMolcas's (GUGA) order, checked against its printout."""


def csf_determinants(csf: str, pair: tuple[int, int]) -> list[tuple[float, int, int]]:
    """A CSF as (coefficient, alpha active orbital, beta active orbital) determinants, each
    |inactive alpha, alpha orbital | inactive beta, beta orbital| (alpha string then beta
    string); the open-shell singlet is (|a b~| + |b a~|)/sqrt(2)."""
    a, b = pair
    if csf == "20":
        return [(1.0, a, a)]
    if csf == "02":
        return [(1.0, b, b)]
    return [(np.sqrt(0.5), a, b), (np.sqrt(0.5), b, a)]


@dataclass
class Wavefunction:
    """One SA-CASSCF job's wavefunctions, read from its ``job.rasscf.h5``.

    Attributes:
        mol: PySCF molecule at the job's geometry (STO-3G, spherical).
        order: (n_basis,) PySCF AO index of each OpenMolcas basis function.
        orbitals: (n_mo, n_basis) MO coefficients, one MO per row, OpenMolcas's AO order.
        inactive: indices of the inactive MOs; active: the two active MOs.
        ci: (roots, 3) CI vectors over :data:`CSFS`.
        ao_overlap: (n_basis, n_basis) OpenMolcas's AO overlap.
        densities: (roots, 2, 2) OpenMolcas's active one-particle densities.
    """

    mol: object
    order: np.ndarray
    orbitals: np.ndarray
    inactive: list
    active: tuple
    ci: np.ndarray
    ao_overlap: np.ndarray
    densities: np.ndarray


def pyscf_ao_order(mol, basis_ids: np.ndarray) -> np.ndarray:
    """(n_basis,) PySCF AO index of each OpenMolcas function (centre, shell, l, m); p
    functions are m = 1, -1, 0 in OpenMolcas and x, y, z in PySCF; s and p only."""
    keys = {}
    shells: dict[tuple[int, int], int] = {}
    index = 0
    for shell in range(mol.nbas):
        atom, l = mol.bas_atom(shell), mol.bas_angular(shell)
        assert l <= 1 and mol.bas_nctr(shell) == 1
        shells[(atom, l)] = shells.get((atom, l), 0) + 1
        for m in (0,) if l == 0 else (1, -1, 0):
            keys[(atom + 1, shells[(atom, l)], l, m)] = index
            index += 1
    return np.array([keys[tuple(int(x) for x in row)] for row in basis_ids])


def read_wavefunction(folder: Path) -> Wavefunction:
    from pyscf import gto

    with h5py.File(folder / "job.rasscf.h5", "r") as f:
        n_basis = int(np.asarray(f.attrs["NBAS"]).sum())
        types = [t.decode().strip() for t in np.asarray(f["MO_TYPEINDICES"])]
        mol = gto.M(
            atom=[
                (chemical_symbols[z], xyz)
                for z, xyz in zip(
                    np.asarray(f["CENTER_ATNUMS"]), np.asarray(f["CENTER_COORDINATES"]), strict=True
                )
            ],
            unit="Bohr",
            basis="sto-3g",
        )
        active = [k for k, t in enumerate(types) if t == "2"]
        assert len(active) == 2
        return Wavefunction(
            mol=mol,
            order=pyscf_ao_order(mol, np.asarray(f["BASIS_FUNCTION_IDS"])),
            orbitals=np.asarray(f["MO_VECTORS"]).reshape(n_basis, n_basis),
            inactive=[k for k, t in enumerate(types) if t == "I"],
            active=tuple(active),
            ci=np.asarray(f["CI_VECTORS"]),
            ao_overlap=np.asarray(f["AO_OVERLAP_MATRIX"]).reshape(n_basis, n_basis),
            densities=np.asarray(f["DENSITY_MATRIX"]),
        )


def state_overlaps(bra: Wavefunction, ket: Wavefunction) -> np.ndarray:
    """(roots, roots) <Psi_i(bra geometry)|Psi_j(ket geometry)>: determinant overlaps
    det(S_alpha) det(S_beta) over the occupied spin orbitals, summed over the CSFs."""
    from pyscf import gto

    ao = gto.intor_cross("int1e_ovlp", bra.mol, ket.mol)[np.ix_(bra.order, ket.order)]
    mo = bra.orbitals @ ao @ ket.orbitals.T

    def determinant(d1, d2) -> float:
        alpha = mo[np.ix_(bra.inactive + [d1[1]], ket.inactive + [d2[1]])]
        beta = mo[np.ix_(bra.inactive + [d1[2]], ket.inactive + [d2[2]])]
        return d1[0] * d2[0] * np.linalg.det(alpha) * np.linalg.det(beta)

    csf = np.array(
        [
            [
                sum(
                    determinant(d1, d2)
                    for d1 in csf_determinants(k, bra.active)
                    for d2 in csf_determinants(l, ket.active)
                )
                for l in CSFS
            ]
            for k in CSFS
        ]
    )
    return bra.ci @ csf @ ket.ci.T


# -- fixtures ---------------------------------------------------------------------------------
@dataclass
class FiniteDifferenceJobs:
    """Tightly converged jobs at ``positions`` and at ``positions +- STEP * direction``."""

    direction: np.ndarray
    centre: molcas.CasscfOutput
    plus: molcas.CasscfOutput
    minus: molcas.CasscfOutput
    folders: dict


@pytest.fixture(scope="module")
def fd_jobs(tmp_path_factory) -> FiniteDifferenceJobs:
    """The displaced jobs start from the centre's orbitals (orbital following)."""
    root = tmp_path_factory.mktemp("molcas-fd")
    atoms = asymmetric_ethylene()
    direction = np.random.default_rng(18).normal(size=(6, 3))
    direction /= np.linalg.norm(direction)
    backend = MolcasCasscfBackend()
    folders = {name: root / name for name in ("centre", "plus", "minus")}
    outputs = {}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(molcas, "RASSCF_THRESHOLDS", TIGHT_THRESHOLDS)
        for name, sign in (("centre", 0), ("plus", 1), ("minus", -1)):
            folders[name].mkdir()
            start = None if name == "centre" else folders["centre"] / "job.RasOrb"
            positions = atoms.positions + sign * STEP * direction
            outputs[name] = backend._job(folders[name], atoms.numbers, positions, N_STATES, start)
    return FiniteDifferenceJobs(direction, **outputs, folders=folders)


@pytest.fixture(scope="module")
def pyscf():
    return pytest.importorskip("pyscf")


@pytest.fixture(scope="module")
def runner_outputs(tmp_path_factory):
    """label() on 3 structures (the finite-difference structure, one with two atoms on one
    spot, another distorted ethylene), then on 4 whose first 3 are the same; the entries
    written by the first call are read back in between."""
    root = tmp_path_factory.mktemp("molcas-label")
    structures = [asymmetric_ethylene(seed) for seed in (7, 2, 3, 4)]
    structures[1].positions[2] = structures[1].positions[0]
    backend = MolcasCasscfBackend(orbital_store=root / "orbitals")
    output = root / "labels.h5"
    first = label(structures[:3], backend, N_STATES, output)
    with MultiStateDataset.open(output) as dataset:
        before = list(dataset)
    second = label(structures, backend, N_STATES, output)
    with MultiStateDataset.open(output) as dataset:
        after, provenance = list(dataset), dataset.provenance
    return first, before, second, after, provenance


@pytest.fixture(scope="module")
def labels(runner_outputs):
    """The stored labels of the finite-difference structure (the backend's thresholds)."""
    entry = runner_outputs[1][0]
    assert entry.meta["source_index"] == 0
    return entry


# -- labels of one structure ------------------------------------------------------------------
def test_labels_are_finite_with_the_states_in_order(labels):
    """Every state succeeds; energies (eV), forces (N, S, 3) and couplings (N, S, S, 3) are
    finite; S0 < S1 < S2 (twisted by 30 degrees: 11.0 and 15.1 eV above S0)."""
    assert labels.status == "ok" and labels.error == ""
    assert labels.forces.shape == (6, 3, 3) and labels.nacs.shape == (6, 3, 3, 3)
    assert np.all(np.isfinite(labels.energies)) and np.all(np.isfinite(labels.forces))
    assert np.all(np.isfinite(labels.nacs))
    assert -77.5 * HARTREE_TO_EV < labels.energies[0] < -76.5 * HARTREE_TO_EV
    assert 5.0 < labels.energies[1] - labels.energies[0] < labels.energies[2] - labels.energies[0]


def test_couplings_are_antisymmetric_with_their_largest_component_positive(labels):
    """nacs[:, i, j] = -nacs[:, j, i] exactly, nacs[:, i, i] = 0, and each pair's vector has
    its largest-magnitude component positive (NAC_PHASE_CONVENTION)."""
    np.testing.assert_array_equal(labels.nacs, -labels.nacs.transpose(0, 2, 1, 3))
    for i, j in PAIRS:
        d = labels.nacs[:, i, j].reshape(-1)
        assert d[np.argmax(np.abs(d))] > 0


@pytest.mark.parametrize("state", [0, 1, 2])
def test_forces_are_minus_the_finite_difference_gradient(fd_jobs, state):
    """F . u = -(E(x + h u) - E(x - h u)) / 2h for a random unit direction u, h = 1e-3 A, to
    2e-3 eV/A, with RASSCF converged to 1e-7 (measured: 3.9e-4, 8.2e-4, 5.8e-5 eV/A for S0,
    S1, S2 out of 1.39, 2.39, 4.32 eV/A; SA-2 at OpenMolcas's default RASSCF thresholds
    was off by 3e-2 here)."""
    forces = -fd_jobs.centre.gradients[state] * EV_PER_HARTREE_PER_BOHR
    analytic = float(np.sum(forces * fd_jobs.direction))
    finite_difference = -(
        (fd_jobs.plus.energies[state] - fd_jobs.minus.energies[state]) * HARTREE_TO_EV
    ) / (2 * STEP)
    print(f"S{state}: F.u analytic {analytic:.6f}, finite difference {finite_difference:.6f}")
    assert abs(analytic - finite_difference) < 2e-3


def test_labels_match_tightly_converged_ones_in_dataset_units(labels, fd_jobs):
    """The backend's labels (RASSCF Thrs 1e-10 1e-6 1e-6) agree with the tight job's after
    conversion (Hartree -> eV, Hartree/bohr -> eV/A, 1/bohr -> 1/A, up to the coupling's
    sign): energies to 1e-5 eV, forces to 2e-3 eV/A, couplings to 5e-4 1/A (measured: 3e-7
    eV, 7.5e-4 eV/A, 5e-5 1/A)."""
    tight = fd_jobs.centre
    tight_forces = -tight.gradients.transpose(1, 0, 2) * EV_PER_HARTREE_PER_BOHR
    print(
        "labels - tight: energies",
        np.abs(labels.energies - tight.energies * HARTREE_TO_EV),
        "forces",
        np.abs(labels.forces - tight_forces).max(),
    )
    np.testing.assert_allclose(labels.energies, tight.energies * HARTREE_TO_EV, rtol=0, atol=1e-5)
    np.testing.assert_allclose(labels.forces, tight_forces, rtol=0, atol=2e-3)
    for pair in PAIRS:
        tight_nac = tight.nacs[pair] / BOHR_TO_ANGSTROM
        label_nac = labels.nacs[:, pair[0], pair[1]]
        sign = np.sign(np.sum(label_nac * tight_nac))
        print(f"nac {pair}: labels - tight", np.abs(label_nac - sign * tight_nac).max())
        np.testing.assert_allclose(label_nac, sign * tight_nac, rtol=0, atol=5e-4)


def test_wavefunction_overlaps_reproduce_openmolcas(fd_jobs, pyscf):
    """The overlap machinery, at one geometry: PySCF's AO overlap, mapped onto OpenMolcas's
    AO order, equals OpenMolcas's (to 1e-6; measured 2e-8); the CI vectors follow the CSF
    order printed in the log; the CSF -> determinant expansion gives OpenMolcas's active
    densities (checks the sign of 'ud') and orthonormal states <Psi_i|Psi_j> = delta_ij."""
    wavefunction = read_wavefunction(fd_jobs.folders["centre"])
    pyscf_overlap = wavefunction.mol.intor("int1e_ovlp")
    np.testing.assert_allclose(
        pyscf_overlap[np.ix_(wavefunction.order, wavefunction.order)],
        wavefunction.ao_overlap,
        rtol=0,
        atol=1e-6,
    )
    log = (fd_jobs.folders["centre"] / "job.log").read_text()
    for root in range(N_STATES):
        block = log.split(f"printout of CI-coefficients larger than  0.05 for root  {root + 1}")
        assert len(block) == 2
        for line in block[1].splitlines()[3:]:
            parts = line.split()
            if len(parts) != 4:
                break
            assert CSFS[int(parts[0]) - 1] == parts[1]
            assert abs(wavefunction.ci[root, int(parts[0]) - 1] - float(parts[2])) < 1e-5
    for root, (c20, cud, c02) in enumerate(wavefunction.ci):
        expected = [
            [2 * c20**2 + cud**2, np.sqrt(2) * cud * (c20 + c02)],
            [np.sqrt(2) * cud * (c20 + c02), 2 * c02**2 + cud**2],
        ]
        np.testing.assert_allclose(wavefunction.densities[root], expected, rtol=0, atol=1e-8)
    np.testing.assert_allclose(
        state_overlaps(wavefunction, wavefunction), np.eye(N_STATES), rtol=0, atol=1e-6
    )


def test_couplings_are_finite_differences_of_wavefunction_overlaps(fd_jobs, pyscf):
    """d_ij . u = [<Psi_i(x)|Psi_j(x + h u)> - <Psi_i(x)|Psi_j(x - h u)>] / 2h in 1/A, the
    displaced states' phases aligned by <Psi_k(x)|Psi_k(x +- h u)> (|.| > 0.999), equals
    minus OpenMolcas's ``NAC = i+1 j+1`` vector . u (that vector is <Psi_j|d Psi_i>) to
    2e-4 1/A for every pair (measured: 1.9e-5, 4.5e-5, 3.0e-5 1/A for d01, d02, d12, whose
    projections are 0.130, -0.084, -0.013 and norms 0.59, 0.99, 1.05 1/A); the
    finite-difference matrix is antisymmetric to 1e-4 1/A."""
    centre, plus, minus = (
        read_wavefunction(fd_jobs.folders[name]) for name in ("centre", "plus", "minus")
    )
    derivative = []
    for displaced in (plus, minus):
        overlaps = state_overlaps(centre, displaced)
        diagonal = np.diag(overlaps)
        assert np.all(np.abs(diagonal) > 0.999), diagonal
        derivative.append(overlaps * np.sign(diagonal)[None, :])
    finite_difference = (derivative[0] - derivative[1]) / (2 * STEP)
    np.testing.assert_allclose(finite_difference, -finite_difference.T, rtol=0, atol=1e-4)
    for i, j in PAIRS:
        openmolcas = fd_jobs.centre.nacs[(i, j)] / BOHR_TO_ANGSTROM
        analytic = -float(np.sum(openmolcas * fd_jobs.direction))
        print(
            f"d{i}{j}.u analytic {analytic:.6e} 1/A, finite difference "
            f"{finite_difference[i, j]:.6e}, |d| {np.linalg.norm(openmolcas):.4f}"
        )
        assert abs(finite_difference[i, j] - analytic) < 2e-4


# -- a path, the runner -----------------------------------------------------------------------
@pytest.mark.slow
def test_orbitals_follow_the_twist_without_jumps(tmp_path):
    """Through a 0 -> 90 degree twist in 10 steps, one backend with an orbital store: every
    label is ok, the energy change over every two steps equals Simpson's rule on
    dE/dtheta = -F . dx/dtheta (the rotated hydrogens' forces along their arcs) to 2e-2 eV
    for every state (measured: 1.2e-2 over 0-18 degrees, where the surfaces bend sharply out
    of planarity, at most 2.3e-3 after; a jump of the active space moves energies by eV),
    and the S1 - S0 gap falls at every step (14.2 -> 5.8 eV)."""
    backend = MolcasCasscfBackend(orbital_store=tmp_path / "orbitals", couplings=False)
    angles = np.radians(np.linspace(0.0, 90.0, 11))
    path = [twisted_ethylene(np.degrees(angle)) for angle in angles]
    results = [backend.compute(atoms.numbers, atoms.positions, N_STATES) for atoms in path]
    assert all(result.ok for result in results), [r.error for r in results if not r.ok]
    assert len(list((tmp_path / "orbitals").glob("*.RasOrb"))) == len(path)
    energies = np.array([result.energies for result in results])  # (P, S)
    forces = np.array([result.state_forces for result in results])  # (P, S, N, 3)
    positions = np.array([atoms.positions for atoms in path])
    rotated = [k for k in range(2, 6) if path[0].get_distance(1, k) < 1.3]
    arc = np.zeros_like(positions)  # dx/dtheta: z x r for the rotated hydrogens
    arc[:, rotated, 0] = -positions[:, rotated, 1]
    arc[:, rotated, 1] = positions[:, rotated, 0]
    slope = -np.einsum("psna,pna->ps", forces, arc)  # dE/dtheta, eV/rad
    step = angles[1] - angles[0]
    simpson = step / 3 * (slope[:-2:2] + 4 * slope[1:-1:2] + slope[2::2])
    change = energies[2::2] - energies[:-2:2]
    print("energy change over two steps", change.round(4).tolist())
    print("Simpson - change", (simpson - change).round(5).tolist())
    np.testing.assert_allclose(simpson, change, rtol=0, atol=2e-2)
    gap = energies[:, 1] - energies[:, 0]
    print("gap", gap.round(3).tolist())
    assert np.all(np.diff(gap) < 0)


def test_failed_structure_is_recorded_with_its_reason_and_the_others_labelled(runner_outputs):
    """Two atoms on one spot: that entry has status "failed", a message naming the atoms,
    no labels and no couplings; the other two are ok with couplings."""
    first, before, *_ = runner_outputs
    assert (first.total, first.already_done, first.ok, first.failed) == (3, 0, 2, 1)
    by_index = {entry.meta["source_index"]: entry for entry in before}
    failed = by_index[1]
    assert failed.status == "failed"
    assert "atoms 0 and 2 are 0.0000 Angstrom apart" in failed.error
    assert not failed.energy_mask.any() and failed.nacs is None
    for index in (0, 2):
        assert by_index[index].status == "ok" and by_index[index].error == ""
        assert by_index[index].nacs.shape == (6, 3, 3, 3)


def test_resume_labels_only_the_new_structure_and_keeps_the_old_labels(runner_outputs):
    """The second call finds the 3 entries (the failed one included: it is not retried),
    labels only the 4th, and leaves the stored energies and couplings as they were; the
    provenance names OpenMolcas and the coupling convention."""
    _, before, second, after, provenance = runner_outputs
    assert (second.total, second.already_done, second.ok, second.failed) == (4, 3, 1, 0)
    assert [entry.meta["source_index"] for entry in after] == [0, 1, 2, 3]
    for old, new in zip(before, after[:3], strict=True):
        assert old.status == new.status and old.error == new.error
        np.testing.assert_array_equal(old.energies, new.energies)
        if old.nacs is not None:
            np.testing.assert_array_equal(old.nacs, new.nacs)
    assert after[3].status == "ok" and after[3].nacs is not None
    assert provenance["program"] == "OpenMolcas"
    assert provenance["nac_convention"] == NAC_PHASE_CONVENTION
    assert provenance["method"] == "SA-CASSCF(2,2)/STO-3G"


def test_both_starts_keep_the_solution_of_lower_state_average(tmp_path):
    """With ``both_starts`` a structure that has a neighbour's orbitals is screened by RASSCF
    from those and from RHF orbitals; the label is the solution of lower state-averaged energy
    (its meta records both averages, eV), with gradients computed from that solution's
    orbitals: on ethylene both starts reach the same solution, so the label equals the one a
    single followed start gives (energies to 1e-6 eV, forces to 1e-4 eV/A). The integrals are
    computed once per structure: of the screened structure's four OpenMolcas jobs (followed
    RASSCF, SCF, fresh RASSCF, gradients) and its integrals job, only the last runs SEWARD."""
    from fusionff.labeling.molcas import MolcasCasscfBackend

    class Recording(MolcasCasscfBackend):
        inputs: list[str] = []

        def _run(self, folder, input_name):
            self.inputs.append((folder / input_name).read_text())
            return super()._run(folder, input_name)

    atoms = molecule("C2H4")
    backend = Recording((0, 1), couplings=False, both_starts=True)
    first = backend.compute(atoms.numbers, atoms.positions, 3)
    assert first.ok and first.meta["start"] == "fresh" and "state_averages_eV" not in first.meta
    backend.inputs.clear()
    second = backend.compute(atoms.numbers, atoms.positions + 0.01, 3)
    assert second.ok
    assert len(backend.inputs) == 5
    assert ["&SEWARD" in text for text in backend.inputs] == [True, False, False, False, False]
    assert "&ALASKA" in backend.inputs[-1]
    averages = second.meta["state_averages_eV"]
    assert set(averages) == {"followed", "fresh"}
    assert np.mean(second.energies) == pytest.approx(min(averages.values()), abs=1e-6)
    assert averages[second.meta["start"]] == min(averages.values())

    single = MolcasCasscfBackend((0, 1), couplings=False)
    single.compute(atoms.numbers, atoms.positions, 3)
    plain = single.compute(atoms.numbers, atoms.positions + 0.01, 3)
    assert plain.ok and plain.meta["start"] == "followed"
    np.testing.assert_allclose(second.energies, plain.energies, atol=1e-6)
    np.testing.assert_allclose(second.forces, plain.forces, atol=1e-4)


def test_ricd_screens_give_the_labels_of_exact_screens():
    """``screen_integrals="ricd"`` screens both starts on RICD integrals and computes the
    label on exact ones from the chosen orbitals: on ethylene the label equals the one of
    exact screens (energies to 1e-6 eV, forces to 1e-4 eV/A, couplings to 1e-4 1/A up to the
    sign, which ethylene's symmetry leaves to round-off), the
    screens ran on RICD integrals (their averages differ from the exact label's) and the exact
    RASSCF relaxed from the RICD orbitals by less than RICD_SCREEN_TOLERANCE_EV."""
    atoms = molecule("C2H4")
    labels = {}
    for mode in ("exact", "ricd"):
        backend = MolcasCasscfBackend((0, 1), both_starts=True, screen_integrals=mode)
        assert backend.compute(atoms.numbers, atoms.positions, N_STATES).ok
        labels[mode] = backend.compute(atoms.numbers, atoms.positions + 0.01, N_STATES)
        assert labels[mode].ok
    exact, ricd = labels["exact"], labels["ricd"]
    np.testing.assert_allclose(ricd.energies, exact.energies, atol=1e-6)
    np.testing.assert_allclose(ricd.forces, exact.forces, atol=1e-4)
    for i, j in PAIRS:  # up to each pair's sign: symmetric ethylene ties the largest component
        a, b = ricd.nacs[:, i, j], exact.nacs[:, i, j]
        np.testing.assert_allclose(a * np.sign(np.sum(a * b)), b, atol=1e-4)
    screened = ricd.meta["screen_state_averages_eV"][ricd.meta["start"]]
    assert abs(screened - np.mean(ricd.energies)) > 1e-4  # other integrals
    assert 0 <= ricd.meta["exact_relaxation_eV"] < molcas.RICD_SCREEN_TOLERANCE_EV


def test_audit_confirms_a_label_of_the_lower_solution(tmp_path):
    """``audit`` of a label made from a fresh start (the lower solution on ethylene): the fresh
    RASSCF reproduces its state average (to 1e-6 eV) and the label comes back unchanged; the
    same label stored 0.1 eV too high is replaced by the fresh solution's, whose energies and
    forces equal the original label's (1e-6 eV, 1e-4 eV/A)."""
    from dataclasses import replace

    from fusionff.labeling.molcas import MolcasCasscfBackend

    atoms = molecule("C2H4")
    backend = MolcasCasscfBackend((0, 1), couplings=False)
    original = backend.compute(atoms.numbers, atoms.positions, 2)
    assert original.ok
    confirmed = backend.audit(atoms.numbers, atoms.positions, original)
    assert confirmed.ok and confirmed.meta["audit"] == "confirmed"
    averages = confirmed.meta["audit_state_averages_eV"]
    assert averages["fresh"] == pytest.approx(averages["stored"], abs=1e-6)
    np.testing.assert_array_equal(confirmed.energies, original.energies)
    too_high = replace(original, energies=original.energies + 0.1)
    replaced = backend.audit(atoms.numbers, atoms.positions, too_high)
    assert replaced.ok and replaced.meta["audit"] == "replaced"
    np.testing.assert_allclose(replaced.energies, original.energies, atol=1e-6)
    np.testing.assert_allclose(replaced.forces, original.forces, atol=1e-4)


def test_energies_alone_equal_the_label_energies_and_name_a_guard_failure():
    """``energies`` (RASSCF alone, fresh start) gives the energies of a full label of the same
    geometry (ethylene twisted 30 degrees, to 1e-6 eV) with the guard's numbers; with a guard
    no pi pair can pass (pi weight at least 1.01) it raises an error that names the guard."""
    from fusionff.labeling.molcas import MolcasCasscfBackend, MolcasError

    atoms = twisted_ethylene(30.0)
    backend = MolcasCasscfBackend((0, 1), couplings=False)
    energies, seen = backend.energies(atoms.numbers, atoms.positions, N_STATES)
    label = MolcasCasscfBackend((0, 1), couplings=False).compute(
        atoms.numbers, atoms.positions, N_STATES
    )
    assert label.ok
    np.testing.assert_allclose(energies, label.energies, atol=1e-6)
    assert len(seen["occupations"]) == 2 and min(seen["pi_weights"]) > 0.5
    assert seen["iterations"] > 0
    strict = MolcasCasscfBackend((0, 1), couplings=False, min_pi_weight=1.01)
    with pytest.raises(MolcasError, match="pi weight"):
        strict.energies(atoms.numbers, atoms.positions, N_STATES)


def test_energies_carried_along_a_twist_from_saved_orbitals(tmp_path):
    """A solution carried from 30 to 35 degrees of twist (``save_orbitals`` at 30, then
    ``orbitals=`` at 35) has the energies of a fresh start at 35 degrees (1e-5 eV): far from
    a crossing of solutions, following and a fresh start find the same SA-CASSCF minimum."""
    from fusionff.labeling.molcas import MolcasCasscfBackend

    backend = MolcasCasscfBackend((0, 1), couplings=False)
    carried = tmp_path / "30.RasOrb"
    first = twisted_ethylene(30.0)
    backend.energies(first.numbers, first.positions, N_STATES, save_orbitals=carried)
    assert carried.stat().st_size > 0
    second = twisted_ethylene(35.0)
    followed, seen = backend.energies(second.numbers, second.positions, N_STATES, orbitals=carried)
    fresh, _ = backend.energies(second.numbers, second.positions, N_STATES)
    np.testing.assert_allclose(followed, fresh, atol=1e-5)
    assert min(seen["pi_weights"]) > 0.5


def test_the_scf_fallback_runs_and_reaches_the_default_rhf(tmp_path):
    """OpenMolcas accepts the fresh start's second SCF (``SCF_FALLBACK``, tried only where the
    default SCF fails), and on ethylene, where the default converges, both reach the same
    RHF energy (Hartree, to 1e-8)."""
    atoms = molecule("C2H4")
    backend = MolcasCasscfBackend((0, 1), couplings=False)
    energies = []
    for k, keywords in enumerate(((), molcas.SCF_FALLBACK)):
        folder = tmp_path / f"scf{k}"
        folder.mkdir()
        molcas._write_xyz(folder / "geom.xyz", atoms.numbers, atoms.positions)
        (folder / "scf.input").write_text(
            molcas.job_input(
                "geom.xyz",
                "STO-3G",
                N_STATES,
                7,
                couplings=False,
                scf_only=True,
                scf_keywords=keywords,
            )
        )
        log = backend._run(folder, "scf.input")
        found = re.search(r"Total SCF energy\s+(-?\d+\.\d+)", log)
        assert found, f"no SCF energy in the log of {keywords or 'the default SCF'}"
        energies.append(float(found.group(1)))
    assert "Fermi" in (tmp_path / "scf1" / "scf.input").read_text()
    assert abs(energies[0] - energies[1]) < 1e-8
