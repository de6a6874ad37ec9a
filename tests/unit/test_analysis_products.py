"""Products and quantum yields: isomer thresholds, classification of synthetic runs with known
products, binomial intervals that cover the true yield, and a yield no trajectory reached
reported as an upper bound (see test_analysis_intervals for the intervals themselves); the
photocyclisation product DHP by the ortho-ortho distance, on values and end to end."""

from __future__ import annotations

import json
from itertools import product

import h5py
import numpy as np
import pytest

from fusionff.analysis.analyze import (
    AnalysisOptions,
    analysis_to_dict,
    analyze_run,
    format_report,
)
from fusionff.analysis.intervals import Proportion
from fusionff.analysis.products import (
    PRODUCTS,
    WITHOUT_DHP,
    Thresholds,
    classify,
    excluded_bounds,
    isomer,
    main,
    product_statistics,
    split_by_decay_time,
    statistics_of,
)
from fusionff.analysis.run import read_run
from tests.fixtures.analysis.synthetic_run import write_synthetic_run

FAST = dict(n_boot_fit=10)
ORTHO = ((3, 11), (16, 24))
"""The ortho carbons of ipso 2 and ipso 15 in the atom order of trans_stilbene()."""


def test_isomer_thresholds_fold_the_dihedral():
    """|dihedral| < 90 is cis and > 90 trans whatever its sign or period; a gap between the
    thresholds is "twisted"; the thresholds are checked."""
    assert [isomer(d) for d in (0.0, -45.0, 89.9, 90.1, -179.0, 180.0, 350.0)] == [
        "cis", "cis", "cis", "trans", "trans", "trans", "cis"
    ]  # fmt: skip
    gap = Thresholds(cis_below=60.0, trans_above=120.0)
    assert [isomer(d, gap) for d in (59.0, 90.0, -121.0)] == ["cis", "twisted", "trans"]
    with pytest.raises(ValueError, match="cis_below <= trans_above"):
        Thresholds(cis_below=100.0, trans_above=80.0)
    with pytest.raises(ValueError, match="not finite"):
        isomer(float("nan"))


def test_trajectories_off_the_ground_state_are_s1():
    """A trajectory that ends on an excited state is "S1" whatever its geometry."""
    assert classify(1, 5.0) == "S1" and classify(2, 175.0) == "S1"
    assert classify(0, 5.0) == "cis" and classify(0, 175.0) == "trans"


@pytest.mark.parametrize("start", ["trans", "cis"])
def test_products_and_yields_of_a_synthetic_run(tmp_path, start):
    """Every trajectory gets the product the generator gave it; the quantum yield counts the
    trajectories that end as the other isomer, and its 95% interval holds the true yield 0.4;
    no trajectory ends as DHP (the generator's cis keeps its ortho carbons 2.46 A apart)."""
    truth = write_synthetic_run(
        tmp_path, n_traj=60, tau_fs=80.0, isomerisation_yield=0.4, t_max_fs=700.0,
        start=start, seed=11,
    )  # fmt: skip
    analysis = analyze_run(read_run(tmp_path), AnalysisOptions(**FAST))
    products = analysis.products
    assert products.product == truth["product"]
    assert products.start == [start] * 60
    qy = products.quantum_yield
    assert qy.value == pytest.approx(np.mean(truth["isomerised"]))
    assert qy.count == sum(truth["isomerised"])
    assert qy.low <= 0.4 <= qy.high
    other = "cis" if start == "trans" else "trans"
    assert products.yields[other].value == qy.value
    assert sum(y.value for y in products.yields.values()) == pytest.approx(1.0)


def test_product_statistics_direct():
    """Mixed starts: only trajectories that end as the other isomer count as isomerised; an
    excited or twisted end does not."""
    stats = product_statistics(
        initial_dihedral=[180.0, 180.0, 0.0, 0.0, 180.0],
        final_dihedral=[5.0, 170.0, 175.0, 100.0, 90.0],
        final_state=[0, 0, 0, 1, 0],
        thresholds=Thresholds(60.0, 120.0),
    )
    assert stats.start == ["trans", "trans", "cis", "cis", "trans"]
    assert stats.product == ["cis", "trans", "trans", "S1", "twisted"]
    assert stats.quantum_yield.value == pytest.approx(2 / 5)
    assert stats.counts == {"cis": 1, "trans": 2, "twisted": 1, "S1": 1}
    assert (stats.decayed_yield.count, stats.decayed_yield.n) == (2, 4)


def test_no_isomerisation_gives_an_unmeasured_yield_with_upper_bound_not_zero():
    """16 trajectories that all stay on S1: the isomerisation yield is 0 of 16 with the 95%
    interval [0, 0.206] (not the degenerate [0, 0]), and S1 16 of 16 with [0.794, 1]."""
    stats = product_statistics(
        initial_dihedral=[5.0] * 16, final_dihedral=[95.0] * 16, final_state=[1] * 16
    )
    qy = stats.quantum_yield
    assert (qy.count, qy.n, qy.low) == (0, 16, 0.0) and not qy.measured
    assert qy.high == pytest.approx(0.2059, abs=5e-5)
    s1 = stats.yields["S1"]
    assert (s1.value, s1.high) == (1.0, 1.0) and s1.low == pytest.approx(1 - 0.2059, abs=5e-5)
    assert product_statistics([], [], []).quantum_yield.n == 0


def test_dhp_on_the_ground_state_whatever_the_dihedral():
    """On S0 a final ortho-ortho distance below 2 Angstrom is DHP with a cis-like or a trans
    dihedral; above it the dihedral decides; on S1 it stays "S1" at any distance; without a
    distance (None) there is no DHP."""
    assert classify(0, 5.0, final_ortho_distance=1.55) == "DHP"
    assert classify(0, -170.0, final_ortho_distance=1.6) == "DHP"
    assert classify(0, 5.0, final_ortho_distance=3.2) == "cis"
    assert classify(0, 175.0, final_ortho_distance=5.1) == "trans"
    assert classify(1, 5.0, final_ortho_distance=1.55) == "S1"
    assert classify(0, 5.0, final_ortho_distance=None) == "cis"
    assert classify(1, 5.0, ground_state=1, final_ortho_distance=1.55) == "DHP"


def test_dhp_threshold_boundary_and_checks():
    """DHP needs the distance strictly below ``dhp_below``: 2.0 is not DHP, the float just
    under it is; another threshold moves the boundary; thresholds that are not positive and
    finite, and a non-finite distance, are errors."""
    below = np.nextafter(2.0, 0.0)
    assert classify(0, 5.0, final_ortho_distance=2.0) == "cis"
    assert classify(0, 5.0, final_ortho_distance=below) == "DHP"
    tight = Thresholds(dhp_below=1.7)
    assert classify(0, 5.0, thresholds=tight, final_ortho_distance=1.8) == "cis"
    assert classify(0, 5.0, thresholds=tight, final_ortho_distance=1.69) == "DHP"
    for bad in (0.0, -1.0, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="dhp_below"):
            Thresholds(dhp_below=bad)
    with pytest.raises(ValueError, match="ortho-ortho distance is not finite"):
        classify(0, 5.0, final_ortho_distance=float("nan"))
    assert Thresholds().dhp_below == AnalysisOptions().dhp_below == 2.0


def test_dhp_has_a_yield_but_is_not_isomerisation():
    """Ten trajectories from cis: 3 end as DHP (one with a trans dihedral), 4 as trans, 2 as
    cis, 1 on S1 at a DHP distance. DHP's yield is 3 of 10 with its Clopper-Pearson interval;
    the quantum yield of isomerisation is the 4 trans only; the yields sum to 1."""
    stats = product_statistics(
        initial_dihedral=[5.0] * 10,
        final_dihedral=[10.0, 20.0, 178.0, 175.0, 170.0, -176.0, 179.0, 8.0, 3.0, 30.0],
        final_state=[0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
        final_ortho_distance=[1.55, 1.7, 1.6, 5.1, 5.0, 5.2, 5.1, 3.2, 3.1, 1.6],
    )
    assert stats.product == ["DHP"] * 3 + ["trans"] * 4 + ["cis", "cis", "S1"]
    assert stats.names == PRODUCTS
    assert stats.counts == {"cis": 2, "trans": 4, "twisted": 0, "DHP": 3, "S1": 1}
    assert stats.yields["DHP"] == Proportion.of(3, 10)
    assert stats.yields["DHP"].low < 0.3 < stats.yields["DHP"].high
    assert stats.quantum_yield == Proportion.of(4, 10)
    assert sum(y.value for y in stats.yields.values()) == pytest.approx(1.0)


def test_without_ortho_distances_there_is_no_dhp_product():
    """Without ortho-ortho distances (not a stilbene) the products are those of the dihedral
    alone: no "DHP" key in the yields or counts, rather than a DHP yield of 0."""
    stats = product_statistics(
        initial_dihedral=[5.0, 5.0], final_dihedral=[3.0, 178.0], final_state=[0, 0]
    )
    assert stats.names == WITHOUT_DHP and "DHP" not in stats.yields
    assert stats.product == ["cis", "trans"] and "DHP" not in stats.counts


def close_ortho_pair(path, distance: float, n_frames: int = 5) -> None:
    """Move, in the last ``n_frames`` frames of a trajectory file, the ring-2 atom of the
    closest ortho pair along the pair's axis to ``distance`` Angstrom from its ring-1 partner."""
    with h5py.File(path, "a") as f:
        value = f["particles/molecule/position/value"]
        positions = value[()]
        for frame in range(len(positions) - n_frames, len(positions)):
            p = positions[frame]
            a, b = min(product(*ORTHO), key=lambda pair: np.linalg.norm(p[pair[0]] - p[pair[1]]))
            axis = (p[b] - p[a]) / np.linalg.norm(p[b] - p[a])
            p[b] = p[a] + distance * axis
        value[...] = positions


def test_a_trajectory_ending_at_a_dhp_geometry_end_to_end(tmp_path):
    """A synthetic run of 8 trajectories from cis that all isomerise (6 end as trans on S0, 2
    stay on S1): with two ortho carbons moved to 1.6 Angstrom at the end of trajectory 0 (on
    S0, trans dihedral) it is DHP; trajectory 1 (on S1, 1.6 Angstrom) stays S1; trajectory 2
    (on S0, 2.05 Angstrom) stays trans. The ortho carbons are detected from the topology; DHP
    is 1 of 8 with its interval, the quantum yield 5 of 8 (DHP not counted); the JSON records
    carry the final distances and the report says how DHP was classified."""
    truth = write_synthetic_run(
        tmp_path, n_traj=8, tau_fs=150.0, isomerisation_yield=1.0, t_max_fs=300.0,
        start="cis", seed=1,
    )  # fmt: skip
    assert truth["product"] == ["trans", "S1", "trans", "trans", "trans", "S1", "trans", "trans"]
    for index, distance in ((0, 1.6), (1, 1.6), (2, 2.05)):
        close_ortho_pair(tmp_path / f"traj_{index:05d}.h5md", distance)
    analysis = analyze_run(read_run(tmp_path), AnalysisOptions(**FAST))
    assert analysis.ortho_atoms == ORTHO
    stats = analysis.products
    assert stats.product == ["DHP", "S1", "trans", "trans", "trans", "S1", "trans", "trans"]
    assert stats.start == ["cis"] * 8
    assert stats.yields["DHP"] == Proportion.of(1, 8)
    assert stats.quantum_yield == Proportion.of(5, 8)
    final = [r[-1] for _, r in analysis.ortho_distances]
    np.testing.assert_allclose(final[:3], [1.6, 1.6, 2.05])
    assert min(final[3:]) > 3.5  # trans or twisted: far from DHP
    result = analysis_to_dict(analysis)
    assert result["dhp"] == {"ortho_atoms": [[3, 11], [16, 24]], "below_angstrom": 2.0}
    records = result["products"]["trajectories"]
    assert [r["product"] for r in records] == stats.product
    np.testing.assert_allclose([r["final_ortho_distance_angstrom"] for r in records], final)
    assert result["products"]["yields"]["DHP"]["count"] == 1
    assert result["products"]["counts"]["DHP"] == 1
    report = format_report(analysis)
    assert (
        "DHP: ends on S0 with an ortho-ortho distance < 2.00 Angstrom (ortho carbons 3 11 | 16 24)"
        in report
    )
    assert f"DHP {stats.yields['DHP'].text()}" in report
    assert (
        f"quantum yield of isomerisation: {stats.quantum_yield.text()} (cis <-> trans; DHP is "
        "not isomerisation)" in report
    )


def test_decayed_yield_counts_isomerisation_among_those_back_on_the_ground_state():
    """Of 10 cis starts, 6 stay on S1, 3 end trans, 1 cis: 3 of 10 isomerised, 3 of the 4
    back on S0; with 2 excluded the bounds are 3/12 to 5/12 of all, 3/6 to 5/6 of those back,
    and the analysed value 3/4 lies between the latter. Unknown products and mismatched
    lengths are errors that name them."""
    stats = statistics_of(["cis"] * 10, ["S1"] * 6 + ["trans"] * 3 + ["cis"])
    assert (stats.quantum_yield.count, stats.quantum_yield.n) == (3, 10)
    assert (stats.decayed_yield.count, stats.decayed_yield.n) == (3, 4)
    assert stats.decayed_yield.low < 0.75 < stats.decayed_yield.high
    bounds = excluded_bounds(stats, 2)
    assert [(p.count, p.n) for p in bounds["all"]] == [(3, 12), (5, 12)]
    assert [(p.count, p.n) for p in bounds["decayed"]] == [(3, 6), (5, 6)]
    assert bounds["decayed"][0].value <= stats.decayed_yield.value <= bounds["decayed"][1].value
    none_back = statistics_of(["cis"] * 3, ["S1"] * 3)
    assert none_back.decayed_yield.n == 0 and none_back.decayed_yield.text() == "no trajectories"
    with pytest.raises(ValueError, match="unknown product"):
        statistics_of(["cis"], ["banana"])
    with pytest.raises(ValueError, match="2 starting isomers for 1 products"):
        statistics_of(["cis", "cis"], ["S1"])


def test_pooling_command_adds_the_runs_products(tmp_path, capsys):
    """Two analysed synthetic runs pooled from their analysis.json files: the pooled counts
    are the sums of each run's, and the pooled yields are those of statistics_of on all the
    trajectories together. A folder without analysis.json is an error that names it."""
    folders = []
    for k, n in enumerate((8, 6)):
        run = tmp_path / f"run{k}"
        write_synthetic_run(run, n_traj=n, tau_fs=50.0, seed=10 + k)
        analysis = analyze_run(read_run(run), AnalysisOptions(**FAST))
        out = tmp_path / f"analysis{k}"
        out.mkdir()
        (out / "analysis.json").write_text(json.dumps(analysis_to_dict(analysis)))
        (out / "summary.json").write_text((run / "summary.json").read_text())
        folders.append((out, analysis.products))
    assert main([str(f) for f, _ in folders]) == 0
    text = capsys.readouterr().out
    starts = [s for _, p in folders for s in p.start]
    ends = [e for _, p in folders for e in p.product]
    pooled = statistics_of(starts, ends, folders[0][1].names)
    assert "pooled (2 runs): " in text
    assert f"of all analysed: {pooled.quantum_yield.text()}" in text
    assert f"back on the ground state: {pooled.decayed_yield.text()}" in text
    assert pooled.quantum_yield.n == 14
    assert main([str(f) for f, _ in folders] + ["--split-fs", "1e9"]) == 0
    split = capsys.readouterr().out  # every decay comes before 1e9 fs, none after
    assert f"last hop before 1e+09 fs: {pooled.decayed_yield.text()}" in split
    assert "at or after: no trajectories; Fisher exact p = nan" in split
    with pytest.raises(FileNotFoundError, match="no analysis.json"):
        main([str(tmp_path / "run0")])


def test_split_by_decay_time_compares_early_and_late_decays():
    """Five cis starts back on S0 (last hops at 100, 150, 300, 350, 400 fs: trans, trans,
    cis, trans, cis) and one on S1: before 200 fs 2 of 2 isomerised, at or after it 1 of 3;
    Fisher's exact p for [[2, 0], [1, 2]] is 0.4. A trajectory back on S0 without a hop time
    is an error."""
    start = ["cis"] * 6
    product = ["trans", "trans", "cis", "trans", "cis", "S1"]
    hops = [100.0, 150.0, 300.0, 350.0, 400.0, None]
    early, late, p_value = split_by_decay_time(start, product, hops, 200.0)
    assert (early.count, early.n, late.count, late.n) == (2, 2, 1, 3)
    assert p_value == pytest.approx(0.4)
    with pytest.raises(ValueError, match="no hop time"):
        split_by_decay_time(["cis"], ["trans"], [None], 200.0)
