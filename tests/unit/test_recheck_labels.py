"""The R2 recheck script (data/stilbene/r2/recheck_labels.py): which old labels it calls wrong,
what it writes for training to exclude and to add, and that training's exclusion finds them.

Synthetic two-atom labels stand in for stilbene; energies in eV.
"""

from __future__ import annotations

import json

import numpy as np
from ase import Atoms
from ase.io import read, write

from fusionff.data.dataset import MultiStateDataset
from fusionff.data.structure import Structure
from fusionff.train.data import load_training_data
from tests.conftest import load_script

SCRIPT = "data/stilbene/r2/recheck_labels.py"


def geometry(k: int) -> tuple[np.ndarray, np.ndarray]:
    return np.array([6, 1]), np.array([[0.0, 0.0, 0.0], [1.0 + 0.01 * k, 0.0, 0.0]])


def test_recheck_wrong_confirmed_pending_and_first_row(tmp_path):
    """Old labels: (S0, S1) = (-10, -5). New labels of rows 0-3: average 0.5 eV lower (wrong),
    equal (confirmed), 5 meV lower (within the 10 meV tolerance: confirmed), failed (not
    relabelled); rows 4-5 are not relabelled yet (pending). With --first-row 1 the wrong row 0
    is listed in --wrong but its correction is not written again."""
    old = np.array([-10.0, -5.0])
    frames = []
    for k in range(6):
        numbers, positions = geometry(k)
        info = {"source": "queue.h5", "row": 10 + k, "E_S0_eV": old[0], "E_S1_eV": old[1]}
        frames.append(Atoms(numbers=numbers, positions=positions, info=info))
    queue = tmp_path / "recheck.xyz"
    write(queue, frames, format="extxyz")
    shifts = [np.array([-0.1, -0.9]), np.zeros(2), np.array([-0.005, -0.005])]
    structures = []
    for k, shift in enumerate(shifts):
        numbers, positions = geometry(k)
        structures.append(
            Structure(numbers, positions, old + shift, np.zeros((2, 2, 3)), None, None)
        )
    numbers, positions = geometry(3)
    structures.append(
        Structure(numbers, positions, None, None, None, None, status="failed", error="guard")
    )
    labels = tmp_path / "new.h5"
    with MultiStateDataset.create(labels, 2) as ds:
        ds.extend(structures)

    script = load_script(SCRIPT)
    wrong, pending = tmp_path / "wrong.xyz", tmp_path / "pending.xyz"
    corrections, summary = tmp_path / "corr.h5", tmp_path / "summary.json"
    common = [str(queue), str(labels), "--wrong", str(wrong), "--out", str(summary)]
    assert script.main([*common, "--corrections", str(corrections), "--pending", str(pending)]) == 0
    result = json.loads(summary.read_text())
    assert (result["checked"], result["wrong"], result["confirmed"]) == (4, 1, 2)
    assert (result["not_relabelled"], result["pending"]) == (1, 2)
    listed = read(wrong, ":")
    assert len(listed) == 1 and listed[0].info["row"] == 10
    np.testing.assert_allclose(listed[0].info["energies"], old)
    assert [f.info["row"] for f in read(pending, ":")] == [14, 15]
    with MultiStateDataset.open(corrections) as ds:
        assert len(ds) == 1
        np.testing.assert_allclose(ds[0].energies, old + shifts[0])
        assert ds.provenance["corrections_of"] == [
            {"labels_row": 0, "source": "queue.h5", "row": 10}
        ]

    later = tmp_path / "corr-later.h5"
    assert script.main([*common, "--corrections", str(later), "--first-row", "1"]) == 0
    assert not later.exists()  # the one wrong row is below --first-row
    assert len(read(wrong, ":")) == 1

    # Training's exclusion finds the listed old labels among the original data (and only those).
    original = tmp_path / "original.h5"
    with MultiStateDataset.create(original, 2) as ds:
        ds.extend(
            Structure(*geometry(k), old.copy(), np.zeros((2, 2, 3)), None, None) for k in range(6)
        )
    data = load_training_data([str(original)], r_max=3.0)
    found, unmatched = data.find_labels(str(wrong))
    assert list(found) == [0] and unmatched == 0
    found, unmatched = data.find_labels(str(pending))
    assert list(found) == [4, 5] and unmatched == 0
