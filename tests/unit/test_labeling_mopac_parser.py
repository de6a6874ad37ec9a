"""The MOPAC output parsers, on real MOPAC 22.0.6 outputs stored in tests/fixtures/mopac/.

The fixtures were written by ``mopac`` (Debian 22.0.6) from the ``.mop`` inputs next to them:
a distorted ethylene at R1, ROOT=2 (S1); the same with two atoms on top of each other; and
the same asking for a root that the C.I. does not have. No MOPAC executable is needed here.
"""

from pathlib import Path

import numpy as np
import pytest

from fusionff.labeling.mopac import (
    KCAL_PER_MOL_TO_EV,
    MopacBackend,
    mopac_input,
    parse_aux,
    parse_out,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "mopac"

# The input geometry of ethylene_s1.mop, Angstrom.
ETHYLENE = np.array(
    [
        [0.0001, 0.0149, 0.6538],
        [-0.0445, -0.0227, -0.7171],
        [0.0030, 0.9898, 1.2131],
        [-0.0310, -0.8983, 1.2555],
        [0.0053, 0.8763, -1.2392],
        [0.0348, -0.9900, -1.2606],
    ]
)


def _final_point_table(text: str) -> np.ndarray:
    """Gradients (N, 3) kcal/mol/A from the .out file's FINAL POINT AND DERIVATIVES table."""
    lines = text.split("FINAL  POINT  AND  DERIVATIVES")[1].splitlines()
    values = [float(line.split()[-2]) for line in lines if "KCAL/ANGSTROM" in line]
    return np.array(values).reshape(-1, 3)


def test_aux_heat_and_gradients_match_the_printed_output():
    """AUX heat of formation and gradients agree with the rounded .out values (1e-5 kcal/mol,
    1e-6 kcal/mol/A) and carry more digits than them."""
    aux = parse_aux((FIXTURES / "ethylene_s1.aux").read_text())
    out_text = (FIXTURES / "ethylene_s1.out").read_text()
    out = parse_out(out_text)
    assert aux.version == "22.0.6" and out.version == "22.0.6"
    assert aux.heat_of_formation == pytest.approx(159.997611289376, abs=1e-12)
    assert out.heat_of_formation == pytest.approx(159.99761, abs=1e-12)
    assert out.errors == []
    assert aux.gradients.shape == (6, 3)
    assert aux.gradients[0] == pytest.approx(
        [12.2738104533847, -14.3079632444993, -81.5285025776362], abs=1e-12
    )
    np.testing.assert_allclose(aux.gradients, _final_point_table(out_text), atol=1e-6)
    np.testing.assert_allclose(aux.coordinates, ETHYLENE, atol=1e-9)


def test_labels_are_heat_and_minus_gradient_in_ev():
    """Energy = heat x 0.0433641 eV; forces = -gradient x 0.0433641 eV/A, from real output."""
    aux = parse_aux((FIXTURES / "ethylene_s1.aux").read_text())
    out = parse_out((FIXTURES / "ethylene_s1.out").read_text())
    energy, forces = MopacBackend._labels(out, aux, ETHYLENE)
    assert energy == pytest.approx(159.997611289376 * KCAL_PER_MOL_TO_EV, rel=1e-14)
    np.testing.assert_allclose(forces, -aux.gradients * KCAL_PER_MOL_TO_EV, rtol=1e-14)


def test_labels_refuse_output_of_another_geometry():
    """Parsed output whose coordinates differ from the input is an error, not a label."""
    aux = parse_aux((FIXTURES / "ethylene_s1.aux").read_text())
    out = parse_out((FIXTURES / "ethylene_s1.out").read_text())
    moved = ETHYLENE + np.array([0.1, 0.0, 0.0])
    message = MopacBackend._labels(out, aux, moved)
    assert isinstance(message, str) and "coordinates differ" in message


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("clash_s0.out", "ATOMS 2 AND 1 ARE SEPARATED BY 0.0000 ANGSTROMS."),
        ("ethylene_root4.out", "ROOT REQUESTED DOES NOT EXIST IN C.I."),
    ],
)
def test_error_messages_are_read_from_the_termination_box(name, expected):
    """MOPAC's errors come from its termination box (it says JOB ENDED NORMALLY even then),
    and a failed run has no final heat of formation."""
    out = parse_out((FIXTURES / name).read_text())
    assert out.errors[0] == expected
    assert "JOB ENDED NORMALLY" not in out.errors
    assert out.heat_of_formation is None


def test_truncated_aux_gives_no_gradients():
    """An AUX file cut inside the gradient block yields no gradients (count check)."""
    text = (FIXTURES / "ethylene_s1.aux").read_text()
    cut = text[: text.index("GRADIENTS:") + 200]
    assert parse_aux(cut).gradients is None


def test_input_file_reproduces_the_fixture_input():
    """The input writer produces exactly the .mop file the fixtures were computed from."""
    text = mopac_input(
        "AM1 OPEN(2,2) C.I.=2 SINGLET 1SCF GRAD ROOT=2 AUX(PRECISION=9)",
        ["C", "C", "H", "H", "H", "H"],
        ETHYLENE,
        "fusionff S1",
    )
    assert text == (FIXTURES / "ethylene_s1.mop").read_text()
