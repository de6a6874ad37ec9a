"""The shipped criteria of the multireference levels R2 (STO-3G) and R3 (6-31G) for stilbene.

``data/stilbene/r2_crossing.py`` writes, per level, the cis S0 minimum and the relaxed S1/S0
crossing (a JSON record and two xyz files). Issue 12 asks that a level's crossing be reachable
from the cis Franck-Condon point; these tests hold the recorded numbers to that and to the
geometry files they describe (recomputed here), so a rerun that lands somewhere else, or a
geometry file that no longer matches its record, fails.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ase.io import read

from tests.conftest import load_script

describe_geometry = load_script("data/stilbene/r2_crossing.py").describe_geometry
HERE = Path(__file__).resolve().parents[2] / "data" / "stilbene" / "r2"
LEVELS = {"R2 (STO-3G)": ("criteria.json", "r2"), "R3 (6-31G)": ("criteria-6-31g.json", "6-31g")}


@pytest.fixture(params=sorted(LEVELS), ids=lambda name: name.split()[0])
def level(request):
    record, tag = LEVELS[request.param]
    return json.loads((HERE / record).read_text()), tag


def test_geometry_files_match_their_records(level):
    """The dihedral, angle sums and hydrogen distance recorded for the cis minimum and the
    crossing are those of the shipped xyz files (to 0.01 degree / 1e-4 Angstrom)."""
    criteria, tag = level
    for key, name in (("cis_S0_minimum", f"cis-{tag}.xyz"), ("crossing", f"crossing-{tag}.xyz")):
        measured = describe_geometry(read(HERE / name).positions)
        for quantity, value in measured.items():
            tol = 1e-4 if quantity.endswith("_A") else 1e-2
            assert criteria[key][quantity] == pytest.approx(value, abs=tol), (name, quantity)


def test_crossing_is_converged_and_reachable_from_the_cis_franck_condon_point(level):
    """Both stages of the penalty search converged to a gap below 0.05 eV, the cis minimum
    converged, and the crossing's S1 lies below S1 at the cis FC point (R1's lay 0.5-0.8 eV
    above it); the recorded difference is the difference of the recorded energies."""
    criteria, _ = level
    cis, crossing = criteria["cis_S0_minimum"], criteria["crossing"]
    assert cis["converged"]
    assert all(crossing[stage]["converged"] for stage in ("sigma_3.5", "sigma_15"))
    final = crossing["sigma_15"]
    assert 0.0 <= final["gap_eV"] < 0.05
    assert final["gap_eV"] == pytest.approx(final["E_S1_eV"] - final["E_S0_eV"], abs=1e-9)
    difference = final["E_S1_eV"] - cis["E_S1_eV"]
    assert criteria["crossing_S1_minus_cis_FC_S1_eV"] == pytest.approx(difference, abs=1e-9)
    assert difference < -1.0


def test_crossing_is_twisted_and_pyramidalised_without_a_bridging_hydrogen(level):
    """The crossing is of the twisted-pyramidalised kind (central dihedral 90-130 degrees,
    one central carbon pyramidal: angle sum below 320 degrees) and not the hydrogen-bridged
    one (no central hydrogen within 1.8 A of the other central carbon); the cis minimum is
    near-planar at both central carbons with a dihedral below 15 degrees."""
    criteria, _ = level
    crossing, cis = criteria["crossing"], criteria["cis_S0_minimum"]
    assert 90.0 < abs(crossing["dihedral_deg"]) < 130.0
    assert min(crossing["angle_sum_C1_deg"], crossing["angle_sum_C2_deg"]) < 320.0
    assert crossing["H_to_other_central_carbon_A"] > 1.8
    assert abs(cis["dihedral_deg"]) < 15.0
    assert min(cis["angle_sum_C1_deg"], cis["angle_sum_C2_deg"]) > 359.0
