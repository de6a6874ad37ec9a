"""Importers: extended XYZ (round trip), the xxMD per-state layout, ASE databases, dispatch."""

from __future__ import annotations

import shutil
from pathlib import Path

import ase.db
import ase.io
import numpy as np
import pytest
from ase.build import molecule
from ase.calculators.singlepoint import SinglePointCalculator

from fusionff.data.dataset import MultiStateDataset
from fusionff.data.importers import (
    find_xxmd_files,
    import_any,
    import_to_dataset,
    read_ase_db,
    read_extxyz,
    read_xxmd,
    write_ase_db,
    write_extxyz,
)
from fusionff.data.structure import Structure

XXMD = Path(__file__).parents[1] / "fixtures" / "xxmd" / "xxMD-CASSCF"
S = 3


def labelled(seed: int, n_missing_state: int | None = None) -> Structure:
    rng = np.random.default_rng(seed)
    atoms = molecule("H2CO")
    n = len(atoms)
    energy_mask = np.ones(S, bool)
    force_mask = np.ones(S, bool)
    status, error = "ok", ""
    if n_missing_state is not None:
        energy_mask[n_missing_state] = force_mask[n_missing_state] = False
        status, error = "failed", f"S{n_missing_state}: SCF did not converge"
    return Structure(
        numbers=atoms.numbers.astype(np.int64),
        positions=atoms.positions + rng.normal(scale=0.1, size=(n, 3)),
        energies=rng.normal(size=S) - 100.0,
        forces=rng.normal(size=(n, S, 3)),
        energy_mask=energy_mask,
        force_mask=force_mask,
        status=status,
        error=error,
        meta={"temperature": 300.0, "trajectory": 7},
    )


def assert_close(a: Structure, b: Structure, atol: float) -> None:
    np.testing.assert_array_equal(a.numbers, b.numbers)
    np.testing.assert_allclose(a.positions, b.positions, atol=atol, rtol=0)
    np.testing.assert_array_equal(a.energy_mask, b.energy_mask)
    np.testing.assert_array_equal(a.force_mask, b.force_mask)
    m = a.energy_mask
    np.testing.assert_allclose(a.energies[m], b.energies[m], atol=1e-12, rtol=0)
    np.testing.assert_allclose(a.forces[:, a.force_mask], b.forces[:, a.force_mask], atol=atol)
    assert (a.status, a.error) == (b.status, b.error)


def test_extxyz_round_trip_keeps_labels_masks_status_and_meta(tmp_path):
    """write_extxyz then read_extxyz: labels (8 decimals), masks, status, error, meta survive."""
    structures = [labelled(0), labelled(1, n_missing_state=2), labelled(2, n_missing_state=1)]
    path = tmp_path / "labels.extxyz"
    write_extxyz(path, structures)
    back = read_extxyz(path)
    assert len(back) == 3 and all(s.n_states == S for s in back)
    for i, (a, b) in enumerate(zip(structures, back, strict=True)):
        assert_close(a, b, atol=1e-8)
        assert b.meta["temperature"] == 300.0 and b.meta["trajectory"] == 7
        assert b.meta["frame"] == i
    text = path.read_text()
    assert "energy_0=" in text and "forces_2:R:3" in text


def test_extxyz_single_state_file_is_one_state(tmp_path):
    """A plain extxyz file with 'energy' and 'forces' is read as a one-state dataset."""
    atoms = molecule("H2O")
    atoms.calc = SinglePointCalculator(atoms, energy=-5.0, forces=np.ones((3, 3)))
    ase.io.write(tmp_path / "one.xyz", [atoms], format="extxyz")
    (s,) = read_extxyz(tmp_path / "one.xyz")
    assert s.n_states == 1 and s.energies[0] == -5.0 and np.all(s.forces == 1.0)


def test_extxyz_labels_beyond_n_states_are_rejected(tmp_path):
    """Reading a 3-state file as 2 states names the frame and the offending state."""
    write_extxyz(tmp_path / "x.xyz", [labelled(0)])
    with pytest.raises(ValueError, match=r"x.xyz: frame 0: has labels for state 2 but n_states"):
        read_extxyz(tmp_path / "x.xyz", n_states=2)


def test_xxmd_fixture_merges_states_frame_by_frame():
    """The xxMD fixture (3 files, 5 frames) becomes 5 three-state structures, labels in order."""
    files = find_xxmd_files(XXMD, split="train")
    assert [f.name for f in files] == [f"eth_train_s{k}.xyz" for k in range(3)]
    structures = read_xxmd(XXMD, split="train")
    assert len(structures) == 5
    per_state = [ase.io.read(f, index=":") for f in files]
    for i, s in enumerate(structures):
        assert s.n_states == 3 and s.energy_mask.all() and s.force_mask.all()
        for k in range(3):
            assert s.energies[k] == per_state[k][i].get_potential_energy()
            np.testing.assert_array_equal(s.forces[:, k], per_state[k][i].get_forces())
        np.testing.assert_array_equal(s.positions, per_state[0][i].positions)
    assert import_any(files)[3].energies.tolist() == structures[3].energies.tolist()


def copy_fixture(tmp_path: Path) -> list[Path]:
    shutil.copytree(XXMD, tmp_path / "xxMD-CASSCF")
    return find_xxmd_files(tmp_path / "xxMD-CASSCF")


def test_xxmd_mismatched_frame_names_frame_and_file(tmp_path):
    """A frame whose geometry differs between state files is reported with frame and file."""
    files = copy_fixture(tmp_path)
    frames = ase.io.read(files[2], index=":")
    frames[3].positions[4] += 0.2
    ase.io.write(files[2], frames, format="extxyz")
    with pytest.raises(
        ValueError,
        match=r"frame 3 of eth_train_s2.xyz: positions disagree with eth_train_s0.xyz "
        r"by 0.2 Angstrom at atom 4",
    ):
        read_xxmd(files)


def test_xxmd_different_lengths_raise_or_truncate(tmp_path):
    """Files of different lengths are an error, or with truncate=True the common frames."""
    files = copy_fixture(tmp_path)
    ase.io.write(files[1], ase.io.read(files[1], index=":4"), format="extxyz")
    with pytest.raises(ValueError, match=r"different numbers of frames.*eth_train_s1.xyz: 4"):
        read_xxmd(files)
    with pytest.warns(UserWarning, match="keeping the first 4 frames"):
        assert len(read_xxmd(files, truncate=True)) == 4


def test_ase_db_round_trip_and_per_state_keys(tmp_path):
    """write_ase_db/read_ase_db round trip; energy_<k> pairs with data forces_<k> also import."""
    structures = [labelled(3), labelled(4, n_missing_state=0)]
    path = tmp_path / "labels.db"
    write_ase_db(path, structures)
    back = read_ase_db(path)
    for a, b in zip(structures, back, strict=True):
        assert_close(a, b, atol=0)
    atoms = molecule("H2O")
    other = tmp_path / "keys.db"
    with ase.db.connect(str(other)) as db:
        db.write(
            atoms,
            key_value_pairs={"energy_0": -1.0, "energy_1": 2.0, "tag": "x"},
            data={"forces_0": np.zeros((3, 3)), "forces_1": np.ones((3, 3))},
        )
    (s,) = read_ase_db(other)
    assert (
        s.energies.tolist() == [-1.0, 2.0] and s.forces[:, 1].tolist() == np.ones((3, 3)).tolist()
    )
    assert s.meta["tag"] == "x"


def test_import_to_dataset_records_provenance(tmp_path):
    """import_to_dataset writes a dataset with the sources in its provenance."""
    count = import_to_dataset(
        XXMD,
        tmp_path / "xxmd.h5",
        split="train",
        method="SA-CASSCF",
        provenance={"program": "OpenMolcas"},
    )
    with MultiStateDataset.open(tmp_path / "xxmd.h5") as ds:
        assert count == len(ds) == 5 and ds.n_states == 3
        assert ds.provenance["program"] == "OpenMolcas"
        assert ds.provenance["imported_from"] == [str(XXMD)]
        assert ds.method == "SA-CASSCF"


def test_import_any_rejects_unknown_suffix(tmp_path):
    """An unsupported suffix is an error listing the known ones."""
    with pytest.raises(ValueError, match=r"unknown suffix '.pdb'"):
        import_any(tmp_path / "x.pdb")


def test_import_any_dispatches_by_suffix(tmp_path):
    """import_any reads .extxyz, .db and .h5 files to the same structures."""
    structures = [labelled(5), labelled(6, n_missing_state=1)]
    write_extxyz(tmp_path / "a.extxyz", structures)
    write_ase_db(tmp_path / "a.db", structures)
    with MultiStateDataset.create(tmp_path / "a.h5", S) as ds:
        ds.extend(structures)
    for name in ("a.extxyz", "a.db", "a.h5"):
        back = import_any(tmp_path / name)
        for a, b in zip(structures, back, strict=True):
            assert_close(a, b, atol=1e-8)
