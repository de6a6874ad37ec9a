"""``fusionff analyze`` end to end: figures, analysis.json and the report on a synthetic run with
failed trajectories; options; errors; no PyTorch in the analysis; a real runner directory."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fusionff.analysis.analyze import AnalysisOptions
from fusionff.analysis.cli import _DEFAULTS
from fusionff.cli import main
from tests.fixtures.analysis.synthetic_run import write_synthetic_run, write_topology

REPO = Path(__file__).resolve().parents[2]
FAST = ["--n-boot-fit", "20"]
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """40 good trajectories (tau 150 fs, yield 0.5), one blown up, one drifted."""
    directory = tmp_path_factory.mktemp("run")
    truth = write_synthetic_run(directory, n_traj=40, n_blown_up=1, n_energy_drift=1, seed=7)
    return directory, truth


def strict_json(path: Path) -> dict:
    def refuse(constant):
        raise AssertionError(f"{path} holds {constant}, not valid JSON")

    return json.loads(path.read_text(), parse_constant=refuse)


def test_cli_writes_figures_json_and_report(run_dir, capsys):
    """The four PNGs and a strictly valid analysis.json appear in RUN_DIR/analysis; the
    report gives the decay time with its error, the yields and final states with intervals and
    the counts; the blown-up and drifted trajectories are excluded, counted and flagged; no
    trajectory of the generator comes within a DHP distance (its phenyls are turned)."""
    directory, truth = run_dir
    assert main(["analyze", str(directory), *FAST]) == 0
    out = directory / "analysis"
    for name in ("populations.png", "dihedral.png", "hops.png", "diagnostics.png"):
        assert (out / name).read_bytes()[:8] == PNG
    result = strict_json(out / "analysis.json")
    counts = result["counts"]
    assert counts["total"] == 42 and counts["analysed"] == 40 and counts["excluded"] == 2
    assert counts["by_status"]["blew-up"] == 1 and counts["by_status"]["energy-drift"] == 1
    assert counts["excluded_indices"] == [40, 41]
    assert result["dihedral"] == {
        "atoms": [2, 0, 13, 15],
        "source": "detected",
        "central_neighbours": [[1, 2, 13], [0, 14, 15]],
    }
    products = result["products"]
    assert [t["product"] for t in products["trajectories"]] == truth["product"]
    qy = products["quantum_yield"]
    assert qy["value"] == pytest.approx(np.mean(truth["isomerised"]))
    assert qy["count"] == sum(truth["isomerised"]) and qy["n"] == 40 and qy["measured"]
    assert qy["ci95"][0] < qy["value"] < qy["ci95"][1] and qy["interval"] == "clopper-pearson"
    fit = result["decay"]["fits"]["active/exponential"]
    assert result["decay"]["state"] == 1 and abs(fit["tau"] - 150.0) < 3 * fit["tau_se"]
    assert result["decay"]["fitted"] and not result["scattering"]
    pops = result["populations"]
    assert len(pops["time_fs"]) == len(pops["active_fraction"]) == len(pops["n_trajectories"])
    np.testing.assert_allclose(np.sum(pops["active_fraction"], axis=1), 1.0)
    low, high = np.array(pops["active_fraction_ci95_low"]), pops["active_fraction_ci95_high"]
    assert np.all((low <= pops["active_fraction"]) & (pops["active_fraction"] <= high))
    assert result["diagnostics"]["flagged"] == {"blew-up": [40], "energy-drift": [41]}
    report = capsys.readouterr().out
    assert "S1 decay (active-state fraction, exponential): tau = " in report
    assert "quantum yield of isomerisation: " in report
    assert "blew-up 1" in report and "energy-drift 1" in report and "40 analysed" in report
    on_s1 = truth["product"].count("S1")  # the trajectories still on S1 at the end
    final = result["final_state"]["S1"]
    assert final["count"] == on_s1 and final["n"] == 40
    low, high = final["ci95"]
    assert f"S1 {on_s1 / 40:.3f} [{low:.3f}, {high:.3f}] ({on_s1} of 40)" in report
    assert "flagged trajectories: blew-up: 40 (excluded); energy-drift: 41 (excluded)" in report


def test_include_failed_analyses_the_blown_up_trajectory(run_dir, tmp_path):
    """With --include-failed the blown-up trajectory (non-finite last frame) is analysed from
    its last finite frame; nothing is excluded."""
    directory, _ = run_dir
    out = tmp_path / "all"
    args = ["analyze", str(directory), "--include-failed", "--output", str(out), "--no-plots"]
    assert main([*args, *FAST]) == 0
    result = strict_json(out / "analysis.json")
    assert result["counts"]["analysed"] == 42 and result["counts"]["excluded"] == 0
    assert len(result["products"]["trajectories"]) == 42
    assert not (out / "populations.png").exists()


def test_explicit_dihedral_thresholds_and_no_hold(run_dir, tmp_path):
    """--dihedral, --cis-below/--trans-above and --no-hold reach the analysis."""
    directory, _ = run_dir
    out = tmp_path / "options"
    args = ["analyze", str(directory), "--dihedral", "15", "13", "0", "2", "--output", str(out)]
    args += ["--cis-below", "30", "--trans-above", "150", "--no-hold", "--no-plots", *FAST]
    assert main(args) == 0
    result = strict_json(out / "analysis.json")
    assert result["dihedral"] == {
        "atoms": [15, 13, 0, 2],
        "source": "given",
        "central_neighbours": [[0, 14, 15], [1, 2, 13]],
    }
    assert result["options"]["hold_last"] is False
    assert result["options"]["cis_below"] == 30.0
    assert result["populations"]["n_trajectories"][-1] < 40  # stopped ones left the ensemble


def test_dhp_below_reaches_the_classification(run_dir, tmp_path):
    """The generator's cis ends keep their closest ortho carbons 2.46-2.6 Angstrom apart: cis
    by default (2.0), DHP with --dhp-below 3.0, and then the quantum yield counts no cis; the
    threshold is in the options and the JSON's dhp section; the dihedral figure is drawn with
    DHP among the products."""
    directory, truth = run_dir
    expected = {"2.0": truth["product"]}
    expected["3.0"] = ["DHP" if p == "cis" else p for p in truth["product"]]
    assert "cis" in truth["product"]
    for below, products in expected.items():
        out = tmp_path / below
        args = ["analyze", str(directory), "--dhp-below", below, "--output", str(out)]
        assert main([*args, *FAST]) == 0
        assert (out / "dihedral.png").read_bytes()[:8] == PNG
        result = strict_json(out / "analysis.json")
        assert [t["product"] for t in result["products"]["trajectories"]] == products
        assert result["options"]["dhp_below"] == float(below)
        assert result["dhp"] == {"ortho_atoms": [[3, 11], [16, 24]], "below_angstrom": float(below)}
        assert result["products"]["counts"]["DHP"] == products.count("DHP")
        isomerised = products.count("cis")  # all start trans
        assert result["products"]["quantum_yield"]["count"] == isomerised


def test_errors_exit_with_a_message(tmp_path, capsys):
    """A directory that is not a run, and a molecule without the stilbene motif, give exit
    status 1 and a message on stderr."""
    assert main(["analyze", str(tmp_path)]) == 1
    assert "no summary.json" in capsys.readouterr().err
    write_synthetic_run(tmp_path, n_traj=2, t_max_fs=20.0)
    apart = np.arange(78.0).reshape(26, 3) * 5.0  # 26 carbons, no bonds
    write_topology(tmp_path / "topology.pdb", ["C"] * 26, apart)
    assert main(["analyze", str(tmp_path), "--no-plots", *FAST]) == 1
    assert "--dihedral" in capsys.readouterr().err


def test_cli_defaults_are_the_analysis_defaults():
    """The CLI's defaults (kept in the CLI so that --help stays light) equal AnalysisOptions'."""
    options = AnalysisOptions()
    for key, value in _DEFAULTS.items():
        assert getattr(options, key) == value, key


def test_analysis_imports_no_torch():
    """fusionff.analysis (every module) and the CLI parser load without PyTorch."""
    code = (
        "import sys\n"
        "import fusionff.analysis.analyze, fusionff.analysis.plots, fusionff.analysis.cli\n"
        "from fusionff.cli import build_parser\n"
        "build_parser()\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


@pytest.mark.filterwarnings("ignore:Unknown masses:PendingDeprecationWarning")  # MDAnalysis, X
def test_runner_output_directory_is_analysed(tmp_path, capsys):
    """A real (tiny) ensemble from the runner, Tully's model 1: analysed with --no-dihedral (its
    one particle has no isomers), with no decay fit (a scattering run) and no dihedral figure,
    and a report with the smallest gap and the energy drift; the stilbene detector refuses it
    with a clear message."""
    from fusionff.dynamics.run_config import RunConfig
    from fusionff.dynamics.runner import run_ensemble
    from tests.integration.run_helpers import tully_input

    path = tully_input(tmp_path, "tully", n_traj=4, n_steps=300, checkpoint_every=300)
    run_ensemble(RunConfig.from_yaml(path), log=None)
    directory = tmp_path / "tully"
    assert main(["analyze", str(directory), "--no-dihedral", *FAST]) == 0
    result = strict_json(directory / "analysis" / "analysis.json")
    assert result["counts"]["analysed"] == 4 and result["n_states"] == 2
    assert result["dt_fs"] == 0.2 and result["products"] is None
    np.testing.assert_allclose(np.sum(result["populations"]["electronic"], axis=1), 1.0)
    assert not (directory / "analysis" / "dihedral.png").exists()
    assert result["scattering"] and result["decay"]["fits"] == {}
    assert not result["decay"]["fitted"]
    report = capsys.readouterr().out
    assert "decay" not in report.replace("no decay is fitted", "")
    assert "smallest S1-S0 gap per trajectory: min " in report
    assert "energy drift max |E_tot(t) - E_tot(0)|: largest " in report
    with pytest.warns(UserWarning):  # MDAnalysis: unknown element X of the dummy particle
        assert main(["analyze", str(directory), "--no-plots", *FAST]) == 1
    assert "--no-dihedral" in capsys.readouterr().err
