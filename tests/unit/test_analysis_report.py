"""What the analysis reports and draws: no lifetime for a scattering run or for a population
that does not decay, unmeasured yields as upper bounds, the smallest gap and the energy drift
that explain the outcome, and no empty panels."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
from matplotlib.image import imread

from fusionff.analysis.analyze import AnalysisOptions, analysis_to_dict, analyze_run, format_report
from fusionff.analysis.plots import plot_all
from fusionff.analysis.run import read_run
from fusionff.data.molecules import trans_stilbene
from tests.fixtures.analysis.synthetic_run import write_synthetic_run, write_topology

FAST = AnalysisOptions(n_boot_fit=10)


TULLY_CONFIG = {
    "potential": {"kind": "tully", "path": None, "tully": "simple", "n_states": 2},
    "stop": {"state": None, "after_fs": 0.0, "region_bohr": 10.0},
}
"""The resolved config of a Tully run, as the runner writes it into summary.json."""
MODEL_CONFIG = {
    "potential": {"kind": "model", "path": "potentials/stilbene-r1.fff", "tully": None},
    "stop": {"state": 0, "after_fs": 100.0, "region_bohr": None},
}
"""The same for a run on a model file (with the keys of Tully's input set to None)."""


def with_config(directory, config: dict) -> None:
    """Replace the config in a synthetic run's summary.json."""
    summary = json.loads((directory / "summary.json").read_text())
    summary["config"] = config
    (directory / "summary.json").write_text(json.dumps(summary))


def test_only_tully_runs_are_scattering_runs(tmp_path):
    """The runner's resolved configs: Tully's potential or stop region make a scattering run;
    a model potential whose Tully keys are None does not, nor does a config without either."""
    write_synthetic_run(tmp_path, n_traj=2, seed=1)
    assert not read_run(tmp_path).scattering
    with_config(tmp_path, MODEL_CONFIG)
    assert not read_run(tmp_path).scattering
    with_config(tmp_path, TULLY_CONFIG)
    assert read_run(tmp_path).scattering
    with_config(tmp_path, {"potential": {"tully": "simple"}})  # as in the YAML input
    assert read_run(tmp_path).scattering


def test_tully_run_analysis_has_no_decay_fit(tmp_path):
    """A scattering run whose S1 population falls like a decay (tau 150 fs) gets no fit: its
    final states are transmission and reflection, and the report says why."""
    write_synthetic_run(tmp_path, n_traj=20, seed=2)
    with_config(tmp_path, TULLY_CONFIG)
    run = read_run(tmp_path)
    assert run.scattering
    analysis = analyze_run(run, AnalysisOptions(products=False, n_boot_fit=10))
    assert analysis.fits == {}
    result = analysis_to_dict(analysis)
    assert result["decay"]["fits"] == {} and result["decay"]["fitted"] is False
    report = format_report(analysis)
    assert "tau =" not in report and "no decay is fitted" in report


def test_run_without_hops_reports_unmeasured_yield_and_no_lifetime(tmp_path):
    """16 trajectories that all stay on S1 (none hops within 500 fs): S0 and the yield are
    "not measured (0 of 16; 95% upper bound 0.206)", S1 is 1.000 [0.794, 1.000], and the decay
    is "no decay observed within 500 fs", not a lifetime or a yield of 0.000 [0.000, 0.000]."""
    write_synthetic_run(tmp_path, n_traj=16, tau_fs=1e9, start="cis", seed=3)
    with_config(tmp_path, MODEL_CONFIG)
    analysis = analyze_run(read_run(tmp_path), FAST)
    report = format_report(analysis)
    bound = "not measured (0 of 16; 95% upper bound 0.206)"
    assert f"S0 {bound}, S1 1.000 [0.794, 1.000] (16 of 16)" in report
    assert f"quantum yield of isomerisation: {bound}" in report
    assert "S1 decay: no decay observed within 500 fs; no lifetime fitted" in report
    assert "0.000 [0.000, 0.000]" not in report and "tau =" not in report
    qy = analysis_to_dict(analysis)["products"]["quantum_yield"]
    assert qy["measured"] is False and qy["ci95"] == [0.0, pytest.approx(0.2059, abs=5e-5)]


def test_report_contains_smallest_gap_and_drift(tmp_path):
    """The report gives the smallest S1-S0 gap (min over the ensemble with its trajectory, the
    median, and on how many trajectories S1 fell below S0) and the largest energy drift,
    equal to those computed here from the files; the
    drifting trajectory is flagged; the hops' gaps and dihedrals are summarised."""
    write_synthetic_run(tmp_path, n_traj=12, n_energy_drift=1, seed=4)
    run = read_run(tmp_path, include_failed=True)
    report = format_report(analyze_run(run, AnalysisOptions(include_failed=True, n_boot_fit=0)))
    gaps, drifts = [], []
    for index in range(13):
        with h5py.File(tmp_path / f"traj_{index:05d}.h5md", "r") as f:
            energies = f["observables/energies/value"][()]
            total = f["observables/total_energy/value"][()]
        gaps.append((energies[:, 1] - energies[:, 0]).min())
        drifts.append(np.abs(total - total[0]).max())
    gap_text = (
        f"smallest S1-S0 gap per trajectory: min {min(gaps):.3f} eV (trajectory "
        f"{int(np.argmin(gaps))}), median {np.median(gaps):.3f} eV; S1 below S0 on "
        f"{int((np.array(gaps) < 0).sum())} of 13 "
    )
    assert gap_text in report
    assert f"energy drift max |E_tot(t) - E_tot(0)|: largest {max(drifts):.3g} eV " in report
    assert max(drifts) > 0.1 and int(np.argmax(drifts)) == 12
    assert "flagged trajectories: energy-drift: 12" in report
    assert "hops: gap median " in report and "|dihedral| median " in report


def test_explicit_dihedral_of_a_non_stilbene_gives_products_without_dhp(tmp_path):
    """With --dihedral on a molecule whose topology has no phenyl rings (26 carbons 5 Angstrom
    apart) the analysis does not fail: products come from the dihedral alone, there is no DHP
    product or yield, no final ortho distances, and the report and JSON notes say why."""
    write_synthetic_run(tmp_path, n_traj=4, seed=6)
    write_topology(tmp_path / "topology.pdb", ["C"] * 26, np.arange(78.0).reshape(26, 3) * 5.0)
    analysis = analyze_run(
        read_run(tmp_path), AnalysisOptions(dihedral=(2, 0, 13, 15), n_boot_fit=0)
    )
    assert analysis.ortho_atoms is None and analysis.ortho_distances is None
    assert "DHP" not in analysis.products.yields and "DHP" not in analysis.products.product
    note = (
        "no DHP classification (no stilbene ortho carbons): ipso atom 2 (C) is not bonded to "
        "atom 0 of the dihedral"
    )
    report = format_report(analysis)
    assert f"  note: {note}" in report
    assert "DHP" not in report.replace(note, "")
    result = analysis_to_dict(analysis)
    assert note in result["notes"]
    assert result["dhp"] == {"ortho_atoms": None, "below_angstrom": None}
    assert "DHP" not in result["products"]["yields"]
    records = result["products"]["trajectories"]
    assert [r["final_ortho_distance_angstrom"] for r in records] == [None] * 4


def test_dhp_classification_can_be_turned_off(tmp_path):
    """dhp_below None (--no-dhp) on a stilbene: no ortho carbons are read, products by the
    dihedral alone, and a note says DHP was not classified."""
    write_synthetic_run(tmp_path, n_traj=3, seed=6)
    analysis = analyze_run(read_run(tmp_path), AnalysisOptions(dhp_below=None, n_boot_fit=0))
    assert analysis.ortho_atoms is None and "DHP" not in analysis.products.yields
    assert "  note: no DHP classification: turned off" in format_report(analysis)


def test_no_empty_panels_without_dihedral_or_hops(tmp_path):
    """Without a dihedral there is no dihedral figure; without hops the hop figure has no
    hop-time or hop-geometry panel (only hops per trajectory, plus frustrated attempts when
    there are some): its width is that many panels of 4.4 inches at 120 dpi."""
    write_synthetic_run(tmp_path, n_traj=6, tau_fs=1e9, t_max_fs=100.0, seed=5)
    summary = json.loads((tmp_path / "summary.json").read_text())
    for entry in summary["trajectories"]:
        entry["frustrated_hops"], entry["n_frustrated"] = [], 0
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    analysis = analyze_run(read_run(tmp_path), AnalysisOptions(products=False, n_boot_fit=0))
    written = plot_all(analysis, tmp_path)
    assert [p.name for p in written] == ["populations.png", "hops.png", "diagnostics.png"]
    assert imread(tmp_path / "hops.png").shape[1] == round(4.4 * 120)


def _flag(path, reason: str, time_fs: float) -> None:
    """Give a trajectory file the flag attributes a committee run writes."""
    with h5py.File(path, "a") as f:
        parameters = f.require_group("parameters")
        parameters.attrs["flag"], parameters.attrs["flag_time"] = reason, time_fs


def test_flag_only_trajectory_is_listed_and_drawn(tmp_path):
    """A trajectory a committee run flagged but let run on (status time-limit, flag in its
    file) stays in the statistics, is listed as flagged with its reason (without
    "(excluded)"), keeps its flag time in analysis.json, and gets the figure's third panel
    (trajectory lengths and flag times); one stopped by its committee is listed as excluded."""
    write_synthetic_run(tmp_path, n_traj=6, tau_fs=1e9, t_max_fs=100.0, seed=6)
    ran_on = "committee spread above the limits at 40 fs: energy std 0.3 eV (S1), ..."
    _flag(tmp_path / "traj_00002.h5md", ran_on, 40.0)
    _flag(tmp_path / "traj_00004.h5md", "committee spread above the limits at 100 fs", 100.0)
    summary = json.loads((tmp_path / "summary.json").read_text())
    summary["trajectories"][4]["status"] = "committee-spread"
    summary["config"]["dynamics"] = {"committee": {"max_energy_std": 0.2, "action": "flag"}}
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    run = read_run(tmp_path)
    assert [t.index for t in run.excluded] == [4]
    analysis = analyze_run(run, AnalysisOptions(products=False, n_boot_fit=0))
    report = format_report(analysis)
    assert "flagged trajectories: committee-spread: 2, 4 (excluded)" in report
    assert "committee limits: max_energy_std 0.2 eV; action flag" in report
    assert f"  trajectory 2: {ran_on}" in report
    rows = analysis_to_dict(analysis)["diagnostics"]["trajectories"]
    assert [(r["index"], r["flag_time_fs"]) for r in rows if r["flag"]] == [(2, 40.0), (4, 100.0)]
    d = analysis.diagnostics
    assert d.index[d.ran_on_flagged].tolist() == [2]
    plot_all(analysis, tmp_path)
    assert imread(tmp_path / "diagnostics.png").shape[1] == round(3 * 5.5 * 120)


def test_summary_counts_trajectories_with_s1_below_s0():
    """Diagnostics.summary counts the analysed trajectories whose smallest gap is negative (S1
    below S0 on some frame) among those with a finite gap; excluded ones and NaN gaps do not
    count."""
    from fusionff.analysis.diagnostics import Diagnostics

    diagnostics = Diagnostics(
        index=np.arange(5),
        status=["ok", "ok", "ok", "ok", "energy-drift"],
        analysed=np.array([True, True, True, True, False]),
        min_gap_ev=np.array([-0.3, 0.2, float("nan"), -1e-4, -2.0]),
        min_gap_time_fs=np.zeros(5),
        drift_ev=np.zeros(5),
        flag=[None] * 5,
        flag_time_fs=np.full(5, np.nan),
    )
    gap = diagnostics.summary()["min_gap_ev"]
    assert (gap["inverted"], gap["n"]) == (2, 3)
    assert gap["min"] == -0.3 and gap["trajectory"] == 0


def test_yield_over_all_started_bounds_the_excluded_both_ways(tmp_path):
    """With flagged (excluded) trajectories, the report and analysis.json also give the quantum
    yield as a fraction of every started trajectory: the excluded counted as not isomerised
    (isomerised / all) and as isomerised ((isomerised + excluded) / all), each with its
    Clopper-Pearson interval; without excluded trajectories the key is null and no line is
    printed."""
    truth = write_synthetic_run(
        tmp_path / "flagged", n_traj=12, n_blown_up=2, n_energy_drift=1, tau_fs=50.0, seed=3
    )
    analysis = analyze_run(read_run(tmp_path / "flagged"), FAST)
    isomerised = sum(truth["isomerised"])
    assert analysis.products.quantum_yield.count == isomerised
    bounds = analysis_to_dict(analysis)["products"]["quantum_yield_all_started"]
    assert (bounds["lower"]["count"], bounds["lower"]["n"]) == (isomerised, 15)
    assert (bounds["upper"]["count"], bounds["upper"]["n"]) == (isomerised + 3, 15)
    assert bounds["lower"]["value"] < analysis.products.quantum_yield.value
    assert bounds["upper"]["ci95"][1] <= 1.0
    report = format_report(analysis)
    assert "of all 15 started, the 3 excluded counted as not isomerised / as isomerised: " in report
    assert f"({isomerised} of 15) to " in report and f"({isomerised + 3} of 15)" in report
    products = analysis_to_dict(analysis)["products"]
    back = products["quantum_yield_decayed"]
    assert back["count"] == isomerised
    assert back["n"] == len(analysis.products.product) - analysis.products.counts["S1"]
    low, high = (products["quantum_yield_decayed_bounds"][k] for k in ("lower", "upper"))
    assert (low["count"], low["n"]) == (isomerised, back["n"] + 3)
    assert (high["count"], high["n"]) == (isomerised + 3, back["n"] + 3)
    assert "of those back on S0 (the quantum yield once all have decayed" in report

    write_synthetic_run(tmp_path / "clean", n_traj=6, tau_fs=50.0, seed=3)
    clean = analyze_run(read_run(tmp_path / "clean"), FAST)
    assert analysis_to_dict(clean)["products"]["quantum_yield_all_started"] is None
    assert "of all" not in format_report(clean)
    assert analysis_to_dict(clean)["products"]["quantum_yield_decayed_bounds"] is None


def test_central_carbon_without_three_neighbours_is_not_measured(tmp_path):
    """A topology whose C2 has lost its hydrogen (moved 10 Angstrom away; dihedral given) has
    no pyramidalisation: every hop's pyramidalisation_deg is null in analysis.json, the note
    names the carbon and its two neighbours, the report says "not measured", and hops.png has
    no pyramidalisation panel (three panels)."""
    write_synthetic_run(tmp_path, n_traj=4, tau_fs=40.0, seed=8)
    atoms = trans_stilbene()
    positions = atoms.get_positions()
    positions[14] += 10.0
    write_topology(tmp_path / "topology.pdb", atoms.get_chemical_symbols(), positions)
    analysis = analyze_run(
        read_run(tmp_path), AnalysisOptions(dihedral=(2, 0, 13, 15), n_boot_fit=0)
    )
    assert analysis.hops.events and analysis.central_neighbours is None
    result = analysis_to_dict(analysis)
    assert [e["pyramidalisation_deg"] for e in result["hops"]["events"]] == [None] * len(
        analysis.hops.events
    )
    assert result["dihedral"]["central_neighbours"] is None
    note = (
        "pyramidalisation of the central carbons not measured: central atom 13 (C) has 2 bonded "
        "neighbour(s) in the topology (0 (C), 15 (C)), not 3"
    )
    assert note in result["notes"]
    report = format_report(analysis)
    assert f"  note: {note}" in report
    assert "more pyramidal central carbon at the hops: not measured (see the note)" in report
    plot_all(analysis, tmp_path)
    assert imread(tmp_path / "hops.png").shape[1] == round(3 * 4.4 * 120)
