"""data/stilbene/r2/test_by_audit.py: test labels grouped by the audit's verdict, and the
errors against the audit's new label for the wrong ones.

Synthetic two-atom structures stand in for stilbene; energies in eV.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
from ase import Atoms
from ase.io import write

from tests.conftest import load_script

SCRIPT = "data/stilbene/r2/test_by_audit.py"


def structure(k: int) -> SimpleNamespace:
    """What classify reads of a stored label: positions (Angstrom) and energies (eV)."""
    positions = np.array([[0.0, 0.0, 0.0], [1.0 + 0.01 * k, 0.0, 0.0]])
    return SimpleNamespace(positions=positions, energies=np.array([-10.0, -5.0]))


def test_groups_and_new_energies(tmp_path):
    """Audit queue rows 0-3 hold structures 0-3 with their old labels (verdicts: wrong with
    S1 0.4 eV lower, confirmed, failed relabel, none yet); structure 4 is not in the audit;
    structure 5 is the audit's new label of structure 0 (same geometry, S1 0.4 eV lower), as a
    corrections file holds it. Wrong gets the old energies plus the audit's shift, the new label
    counts as corrected; the failed and unreached rows count as pending."""
    module = load_script(SCRIPT)
    structures = [structure(k) for k in range(5)]
    corrected = structure(0)
    corrected.energies = np.array([-10.0, -5.4])
    frames = []
    for s in structures[:4]:
        info = {"E_S0_eV": float(s.energies[0]), "E_S1_eV": float(s.energies[1])}
        frames.append(Atoms("CH", positions=s.positions, info=info))
    write(tmp_path / "audit.xyz", frames)
    rows = [
        {
            "recheck_row": 0,
            "new_minus_old_eV": [0.0, -0.4],
            "verdict": "old label was a higher SA-CASSCF solution",
        },
        {"recheck_row": 1, "new_minus_old_eV": [0.0, 0.0], "verdict": "old label confirmed"},
        {"recheck_row": 2, "new_minus_old_eV": None, "verdict": "not relabelled"},
    ]
    (tmp_path / "audit.json").write_text(json.dumps({"rows": rows}))
    groups, new = module.classify(
        [*structures, corrected], tmp_path / "audit.xyz", tmp_path / "audit.json"
    )
    expected = ["wrong", "confirmed", "audit pending", "audit pending", "not in audit"]
    assert groups == [*expected, "corrected"]
    np.testing.assert_allclose(new[0], [-10.0, -5.4])
    assert all(x is None for x in new[1:])


def test_mae_line_is_the_mean_absolute_error_in_meV():
    """Errors (eV) of two structures: S0 +-0.01, S1 0.03 and -0.01, gap 0.02 and -0.02."""
    module = load_script(SCRIPT)
    row = module.mae_line("x", np.array([[0.01, 0.03], [-0.01, -0.03]]))
    assert row["n"] == 2
    np.testing.assert_allclose([row["S0_meV"], row["S1_meV"], row["gap_meV"]], [10, 30, 20])
