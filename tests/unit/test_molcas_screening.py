"""The two-start screening of the OpenMolcas backend (``both_starts``) without OpenMolcas: the
jobs are scripted, so that the followed start lands on a higher SA-CASSCF solution, as it did
on stilbene (data/stilbene/r2/README.md, "Two SA-CASSCF solutions"). Checks which solution
is kept, that the gradient job starts from that solution's orbitals, the meta, and the
failures. The real program is exercised on ethylene in
tests/integration/test_labeling_molcas_backend.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from ase.build import molecule

from fusionff.labeling.molcas import (
    HARTREE_TO_EV,
    RICD_SCREEN_TOLERANCE_EV,
    SCF_FALLBACK,
    SCREEN_TOLERANCE_EV,
    CasscfOutput,
    MolcasCasscfBackend,
    MolcasError,
    first_iteration_average,
    integrals_input,
    job_input,
    parse_log,
)

# Hartree; state averages: neighbour (followed) -0.75, fresh -1.0, second (a farther
# neighbour's solution) -0.9
SOLUTIONS = {"neighbour": [-1.0, -0.5], "fresh": [-1.1, -0.9], "second": [-1.2, -0.6]}


class ScriptedBackend(MolcasCasscfBackend):
    """``_job`` returns canned energies by the solution its start orbitals carry; an orbital
    file's text is the name of its solution. Records every job as (start, gradients) and the
    integrals each used (``self.integrals``: True for RICD, False exact, None own)."""

    def __init__(
        self,
        *args,
        drift: float = 0.0,
        relax: float = 0.0,
        broken: tuple[str, ...] = (),
        fresh_rhf: str = "",
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        self.jobs: list[tuple[str, bool]] = []
        self.integrals: list[bool | None] = []
        self.drift = drift  # Hartree added to the energies of a gradient job
        self.relax = relax  # Hartree a gradient job's RASSCF lowers the average from its start
        self.broken = broken  # solutions whose jobs fail
        self.fresh_rhf = fresh_rhf  # how a fresh start's RHF was obtained ("": default SCF)

    def _job(self, folder, numbers, positions, n_states, start, gradients=True, integrals=None):
        solution = "fresh" if start is None else Path(start).read_text()
        self.jobs.append((solution, gradients))
        self.integrals.append(None if integrals is None else integrals.ricd)
        if solution in self.broken:
            raise MolcasError(f"scripted failure of the {solution} start")
        (folder / "job.RasOrb").write_text(solution)
        energies = np.array(SOLUTIONS[solution][:n_states])
        n = len(numbers)
        if gradients:
            energies = energies + self.drift
            grads = np.full((n_states, n, 3), 0.01 if solution == "fresh" else 0.5)
        else:
            grads = np.zeros(0)
        first = float(np.mean(energies)) + (self.relax if gradients else 0.0)
        return CasscfOutput(
            energies,
            grads,
            {},
            np.array([1.5, 0.5]),
            np.array([0.6, 0.6]),
            iterations=5,
            first_average=first,
            rhf=self.fresh_rhf if start is None else "",
        )


def _backend(tmp_path, **kwargs) -> tuple[ScriptedBackend, np.ndarray, np.ndarray]:
    atoms = molecule("C2H4")
    backend = ScriptedBackend((0, 1), couplings=False, both_starts=True, **kwargs)
    neighbour = tmp_path / "neighbour.RasOrb"
    neighbour.write_text("neighbour")
    backend._recent.save(atoms.numbers, atoms.positions + 0.05, neighbour)
    return backend, atoms.numbers, atoms.positions


def test_the_lower_state_average_is_kept_and_its_gradients_computed(tmp_path):
    """Screens from both starts (RASSCF only), then one gradient job from the orbitals of the
    fresh solution, whose average is lower: the label carries its energies and forces."""
    backend, numbers, positions = _backend(tmp_path)
    result = backend.compute(numbers, positions, 2)
    assert result.ok
    assert backend.jobs == [("neighbour", False), ("fresh", False), ("fresh", True)]
    np.testing.assert_allclose(result.energies, np.array(SOLUTIONS["fresh"]) * HARTREE_TO_EV)
    assert np.allclose(np.abs(result.forces), 0.01 * HARTREE_TO_EV / 0.529177210903)
    assert result.meta["start"] == "fresh"
    averages = result.meta["state_averages_eV"]
    assert averages["followed"] == pytest.approx(-0.75 * HARTREE_TO_EV)
    assert averages["fresh"] == pytest.approx(-1.0 * HARTREE_TO_EV)


def test_the_next_structure_follows_the_kept_solution(tmp_path):
    """The orbitals remembered for the following structures are those of the kept
    solution, not of the start that lost."""
    backend, numbers, positions = _backend(tmp_path)
    backend.compute(numbers, positions, 2)
    path, rmsd = backend._recent.nearest(numbers, positions)
    assert rmsd == 0.0 and path.read_text() == "fresh"


def test_a_failed_start_leaves_the_other(tmp_path):
    """A start that fails (program or guard) is recorded in meta; the other one is kept."""
    backend, numbers, positions = _backend(tmp_path, broken=("fresh",))
    result = backend.compute(numbers, positions, 2)
    assert result.ok and result.meta["start"] == "followed"
    assert "scripted failure of the fresh start" in result.meta["failed_start"]
    np.testing.assert_allclose(result.energies, np.array(SOLUTIONS["neighbour"]) * HARTREE_TO_EV)


def _add_second_neighbour(backend, tmp_path, numbers, positions, shift=0.1):
    second = tmp_path / "second.RasOrb"
    second.write_text("second")
    backend._recent.save(numbers, positions + shift, second)


def test_a_failed_start_brings_in_the_next_nearest_neighbour(tmp_path):
    """When the fresh start fails, the next-nearest neighbour's orbitals are screened too, so
    the label still rests on two starts: its solution (lower average than the nearest
    neighbour's) is kept and its gradients computed, with both averages and the failure in
    meta."""
    backend, numbers, positions = _backend(tmp_path, broken=("fresh",))
    _add_second_neighbour(backend, tmp_path, numbers, positions)
    result = backend.compute(numbers, positions, 2)
    assert backend.jobs == [
        ("neighbour", False), ("fresh", False), ("second", False), ("second", True),
    ]  # fmt: skip
    assert result.ok and result.meta["start"] == "second neighbour"
    assert result.meta["follow_rmsd"] == pytest.approx(
        0.1 * 3**0.5, abs=1e-4
    )  # every coordinate +0.1
    assert "scripted failure of the fresh start" in result.meta["failed_start"]
    averages = result.meta["state_averages_eV"]
    assert averages["followed"] == pytest.approx(-0.75 * HARTREE_TO_EV)
    assert averages["second neighbour"] == pytest.approx(-0.9 * HARTREE_TO_EV)
    np.testing.assert_allclose(result.energies, np.array(SOLUTIONS["second"]) * HARTREE_TO_EV)


def test_the_next_nearest_neighbour_is_screened_only_when_a_start_fails(tmp_path):
    """Both starts converge: two screens, as before, whatever other neighbours exist; and a
    copy of the nearest neighbour (same positions, e.g. in the store and in memory) is not a
    second start."""
    backend, numbers, positions = _backend(tmp_path)
    _add_second_neighbour(backend, tmp_path, numbers, positions)
    backend.compute(numbers, positions, 2)
    assert [job for job in backend.jobs if not job[1]] == [("neighbour", False), ("fresh", False)]
    backend, numbers, positions = _backend(tmp_path, broken=("fresh",))
    _add_second_neighbour(backend, tmp_path, numbers, positions, shift=0.05)  # the same place
    result = backend.compute(numbers, positions, 2)
    assert backend.jobs == [("neighbour", False), ("fresh", False), ("neighbour", True)]
    assert result.ok and result.meta["start"] == "followed"


def test_both_starts_failing_is_a_recorded_failure(tmp_path):
    backend, numbers, positions = _backend(tmp_path, broken=("fresh", "neighbour"))
    result = backend.compute(numbers, positions, 2)
    assert not result.ok
    assert "followed orbitals" in result.error and "fresh RHF start" in result.error


def test_a_gradient_job_that_leaves_the_screened_solution_fails_the_structure(tmp_path):
    """If RASSCF in the gradient job ends elsewhere than the screened solution (state average
    moved by more than SCREEN_TOLERANCE_EV), the label is refused, with the shift named."""
    drift = 2 * SCREEN_TOLERANCE_EV / HARTREE_TO_EV
    backend, numbers, positions = _backend(tmp_path, drift=drift)
    result = backend.compute(numbers, positions, 2)
    assert not result.ok
    assert "left the screened fresh solution" in result.error
    backend, numbers, positions = _backend(tmp_path, drift=drift / 4)
    assert backend.compute(numbers, positions, 2).ok


def test_without_a_neighbour_one_fresh_job_does_everything(tmp_path):
    """Nothing to follow: no screening, a single fresh job with gradients."""
    atoms = molecule("C2H4")
    backend = ScriptedBackend((0, 1), couplings=False, both_starts=True)
    result = backend.compute(atoms.numbers, atoms.positions, 2)
    assert result.ok and backend.jobs == [("fresh", True)]
    assert result.meta["start"] == "fresh" and "state_averages_eV" not in result.meta


def test_energy_only_job_input_and_log():
    """``gradients=False``: RASSCF without ALASKA (no gradients, no couplings), and the log
    parser reads the energies alone."""
    text = job_input("g.xyz", "STO-3G", 2, 7, couplings=True, orbitals="a.orb", gradients=False)
    assert "&RASSCF" in text and "&ALASKA" not in text and "NAC" not in text
    log = (
        "::    RASSCF root number  1 Total energy:    -77.50000000\n"
        "::    RASSCF root number  2 Total energy:    -77.25000000\n"
    )
    energies, gradients, nacs = parse_log(log, 6, 2, couplings=True, gradients=False)
    np.testing.assert_allclose(energies, [-77.5, -77.25])
    assert gradients.size == 0 and nacs == {}
    with pytest.raises(MolcasError, match="Molecular gradients"):
        parse_log(log, 6, 2, couplings=False)


def test_the_command_line_screens_both_starts_unless_told_not_to():
    """``fusionff label --backend casscf`` screens both starts by default (a followed start
    alone can keep a wrong solution); ``--no-both-starts`` turns it off."""
    import argparse

    from fusionff.labeling.cli import add_label_arguments

    parser = add_label_arguments(argparse.ArgumentParser())
    base = ["in.xyz", "out.h5", "--backend", "casscf"]
    assert parser.parse_args(base).both_starts is True
    assert parser.parse_args([*base, "--both-starts"]).both_starts is True
    assert parser.parse_args([*base, "--no-both-starts"]).both_starts is False


def _following_backend(tmp_path, neighbour_shift: float, **kwargs) -> tuple:
    """Backend without ``both_starts`` whose only neighbour lies ``neighbour_shift`` Angstrom
    from the structure in every coordinate (RMSD = sqrt(3) x shift)."""
    atoms = molecule("C2H4")
    backend = ScriptedBackend((0, 1), couplings=False, **kwargs)
    neighbour = tmp_path / "neighbour.RasOrb"
    neighbour.write_text("neighbour")
    backend._recent.save(atoms.numbers, atoms.positions + neighbour_shift, neighbour)
    return backend, atoms.numbers, atoms.positions


def test_a_far_neighbour_is_screened_a_near_one_followed(tmp_path):
    """``screen_above_rmsd`` (direct dynamics): a structure whose neighbour lies farther than
    the threshold (0.17 A RMSD > 0.1, as another trajectory's start does) is screened from
    both starts and keeps the lower solution; a near one (0.009 A, a trajectory's previous
    step) follows alone, even onto the higher solution, which keeps a surface continuous."""
    far, numbers, positions = _following_backend(tmp_path, 0.1, screen_above_rmsd=0.1)
    result = far.compute(numbers, positions, 2)
    assert far.jobs == [("neighbour", False), ("fresh", False), ("fresh", True)]
    assert result.meta["start"] == "fresh"
    np.testing.assert_allclose(result.energies, np.array(SOLUTIONS["fresh"]) * HARTREE_TO_EV)
    near, numbers, positions = _following_backend(tmp_path, 0.005, screen_above_rmsd=0.1)
    result = near.compute(numbers, positions, 2)
    assert near.jobs == [("neighbour", True)] and result.meta["start"] == "followed"
    np.testing.assert_allclose(result.energies, np.array(SOLUTIONS["neighbour"]) * HARTREE_TO_EV)


def test_without_a_threshold_a_far_neighbour_is_still_followed(tmp_path):
    """The default (labelling, where ``both_starts`` decides): no distance-triggered screen;
    a negative threshold is refused with its name."""
    backend, numbers, positions = _following_backend(tmp_path, 0.1)
    backend.compute(numbers, positions, 2)
    assert backend.jobs == [("neighbour", True)]
    assert "over" not in backend.provenance()["starts"]
    assert "over 0.1 A" in ScriptedBackend((0, 1), screen_above_rmsd=0.1).provenance()["starts"]
    with pytest.raises(ValueError, match="screen_above_rmsd"):
        MolcasCasscfBackend((0, 1), screen_above_rmsd=-1.0)


def test_ricd_screens_choose_the_start_and_exact_integrals_give_the_label(tmp_path):
    """``screen_integrals="ricd"``: both screens (RASSCF alone) run on RICD integrals, the
    gradient job on exact ones, from the orbitals of the lower RICD average; meta names the
    screened averages as RICD ones and records how far the exact RASSCF relaxed (eV)."""
    relax = 0.003 / HARTREE_TO_EV
    backend, numbers, positions = _backend(tmp_path, screen_integrals="ricd", relax=relax)
    result = backend.compute(numbers, positions, 2)
    assert result.ok
    assert backend.jobs == [("neighbour", False), ("fresh", False), ("fresh", True)]
    assert backend.integrals == [True, True, False]
    assert result.meta["start"] == "fresh" and "state_averages_eV" not in result.meta
    assert result.meta["screen_state_averages_eV"]["fresh"] == pytest.approx(-HARTREE_TO_EV)
    assert result.meta["exact_relaxation_eV"] == pytest.approx(0.003, abs=1e-6)
    np.testing.assert_allclose(result.energies, np.array(SOLUTIONS["fresh"]) * HARTREE_TO_EV)
    assert "RICD" in backend.provenance()["starts"]


def test_an_exact_job_that_relaxes_far_from_the_ricd_start_fails_the_structure(tmp_path):
    """The exact gradient job cannot reproduce a RICD average; it must instead stay near its
    start: a state average that falls by more than RICD_SCREEN_TOLERANCE_EV during its RASSCF
    (another solution) refuses the label, naming the shift; a small relaxation passes."""
    relax = 2 * RICD_SCREEN_TOLERANCE_EV / HARTREE_TO_EV
    backend, numbers, positions = _backend(tmp_path, screen_integrals="ricd", relax=relax)
    result = backend.compute(numbers, positions, 2)
    assert not result.ok
    assert "left the screened fresh solution" in result.error and "first RASSCF" in result.error
    backend, numbers, positions = _backend(tmp_path, screen_integrals="ricd", relax=relax / 4)
    assert backend.compute(numbers, positions, 2).ok
    backend, numbers, positions = _backend(tmp_path, screen_integrals="ricd", relax=float("nan"))
    assert not backend.compute(numbers, positions, 2).ok  # no iteration table: not trusted


def test_screen_integrals_must_be_exact_or_ricd():
    with pytest.raises(ValueError, match="screen_integrals"):
        MolcasCasscfBackend((0, 1), screen_integrals="cholesky")


def test_ricd_integrals_input_and_first_iteration_parsing():
    """RICD goes into GATEWAY only when asked; the first RASSCF iteration's state average is
    read from the iteration table (an excerpt of a real 6-31G stilbene log), not from the
    rows of other tables printed before it."""
    assert "RICD" not in integrals_input("g.xyz", "6-31G")
    text = integrals_input("g.xyz", "6-31G", ricd=True).splitlines()
    assert text.index("  RICD") < text.index("&SEWARD")
    log = (
        "        1   2    3    4   0.5  0.25\n"
        "      Iter CI   SX   CI       RASSCF       Energy    max ROT     max BLB   max BLB\n"
        "          iter iter root      energy       change     param      element    value\n"
        " Nr of preliminary CI iterations:   1\n"
        "        1   1    4    0  -536.62461476    0.00E+00  -0.54E-03*  36  76 1 -0.15E-02*\n"
        "        2   1    4    0  -536.62469732   -0.83E-04*  0.32E-03*  27  55 1  0.57E-03*\n"
    )
    assert first_iteration_average(log) == pytest.approx(-536.62461476, abs=1e-9)
    assert np.isnan(first_iteration_average("no table here"))


def test_energies_alone_come_from_one_fresh_rasscf_job_and_follow_nothing(tmp_path):
    """``energies``: one RASSCF-only job from a fresh start (not the stored neighbour's
    orbitals), its energies in eV and what the guard saw; nothing is remembered for the next
    structure."""
    backend, numbers, positions = _backend(tmp_path)
    remembered = list(backend._recent._entries)
    energies, seen = backend.energies(numbers, positions, 2)
    assert backend.jobs == [("fresh", False)]
    np.testing.assert_allclose(energies, np.array(SOLUTIONS["fresh"]) * HARTREE_TO_EV)
    assert seen == {"occupations": [1.5, 0.5], "pi_weights": [0.6, 0.6], "iterations": 5}
    assert len(backend._recent._entries) == len(remembered)


def test_energies_alone_raise_a_named_error_when_the_job_fails(tmp_path):
    backend, numbers, positions = _backend(tmp_path, broken=("fresh",))
    with pytest.raises(MolcasError, match="fresh-start RASSCF at STO-3G: .*scripted failure"):
        backend.energies(numbers, positions, 2)


def test_energies_from_given_orbitals_start_there_and_can_save_the_solution(tmp_path):
    """``energies(orbitals=...)`` starts RASSCF from that file (here the neighbour's solution,
    not a fresh start) and ``save_orbitals`` keeps the converged orbitals, so that a
    solution can be carried along a path; a missing start file is a named error."""
    backend, numbers, positions = _backend(tmp_path)
    saved = tmp_path / "carried.RasOrb"
    energies, _ = backend.energies(
        numbers, positions, 2, orbitals=tmp_path / "neighbour.RasOrb", save_orbitals=saved
    )
    assert backend.jobs == [("neighbour", False)]
    np.testing.assert_allclose(energies, np.array(SOLUTIONS["neighbour"]) * HARTREE_TO_EV)
    assert saved.read_text() == "neighbour"
    backend.energies(numbers, positions, 2, orbitals=saved)
    assert backend.jobs[-1] == ("neighbour", False)
    with pytest.raises(MolcasError, match="start orbitals .*missing.RasOrb: no such file"):
        backend.energies(numbers, positions, 2, orbitals=tmp_path / "missing.RasOrb")


def test_energies_from_given_orbitals_name_the_start_when_the_job_fails(tmp_path):
    backend, numbers, positions = _backend(tmp_path, broken=("neighbour",))
    with pytest.raises(MolcasError, match="RASSCF from .*neighbour.RasOrb at STO-3G: .*scripted"):
        backend.energies(numbers, positions, 2, orbitals=tmp_path / "neighbour.RasOrb")


class ScriptedScf(MolcasCasscfBackend):
    """``_run`` records each input and fails the SCF without :data:`SCF_FALLBACK` (as
    OpenMolcas's default SCF crashed at a twisted stilbene geometry), and with it too when
    ``fallback_fails``."""

    def __init__(self, fallback_fails: bool = False, default_fails: bool = True):
        super().__init__((0, 1), couplings=False)
        self.inputs: list[str] = []
        self.fallback_fails = fallback_fails
        self.default_fails = default_fails

    def _run(self, folder, input_name):
        text = (folder / input_name).read_text()
        self.inputs.append(text)
        fallback = "Fermi" in text
        if (fallback and self.fallback_fails) or (not fallback and self.default_fails):
            raise MolcasError("OpenMolcas exited with 250: scripted SCF crash")
        return ""


def test_a_failed_default_scf_is_retried_with_fermi_aufbau(tmp_path):
    """The fresh start's RHF: the default SCF input first; where it fails, the same input
    with the fallback keywords in the SCF step, run after the work directory was reset once
    (the failed SCF's files would seed the second), and the fresh start says so."""
    backend = ScriptedScf()
    resets = []
    assert backend._fresh_scf(tmp_path, 2, 7, True, lambda: resets.append(1)) == "Fermi aufbau"
    assert len(backend.inputs) == 2 and resets == [1]
    first, second = backend.inputs
    assert first.endswith("&SCF\n") and "&GATEWAY" in first
    assert second.endswith("&SCF\n" + "".join(f"  {k}\n" for k in SCF_FALLBACK))
    assert second.replace("".join(f"  {k}\n" for k in SCF_FALLBACK), "") == first


def test_a_default_scf_that_converges_is_not_retried(tmp_path):
    backend = ScriptedScf(default_fails=False)
    resets = []
    assert backend._fresh_scf(tmp_path, 2, 7, False, lambda: resets.append(1)) == ""
    assert len(backend.inputs) == 1 and "&GATEWAY" not in backend.inputs[0] and not resets


def test_both_scf_failures_are_named(tmp_path):
    backend = ScriptedScf(fallback_fails=True)
    with pytest.raises(
        MolcasError, match="default SCF: .*scripted.*; Fermi aufbau SCF: .*scripted"
    ):
        backend._fresh_scf(tmp_path, 2, 7, True)


def test_a_fresh_start_from_the_fallback_rhf_says_so_in_meta(tmp_path):
    """The kept fresh solution's meta carries how its RHF was obtained."""
    backend, numbers, positions = _backend(tmp_path, fresh_rhf="Fermi aufbau")
    result = backend.compute(numbers, positions, 2)
    assert result.ok and result.meta["start"] == "fresh"
    assert result.meta["rhf"] == "Fermi aufbau"
    plain, numbers, positions = _backend(tmp_path)
    assert "rhf" not in plain.compute(numbers, positions, 2).meta
