"""Training data: loading, batching by offsets, E0/neighbour/scale statistics, stored splits."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from fusionff.data.dataset import MultiStateDataset
from fusionff.data.graph import build_graph
from fusionff.data.structure import Structure
from fusionff.train.config import SplitConfig
from fusionff.train.data import load_training_data
from fusionff.train.split import (
    load_or_create_split,
    random_split,
    split_rows,
    split_sizes,
    train_subsample,
)
from fusionff.train.statistics import average_num_neighbors, fit_e0s, scale_and_shift

E0_TRUE = {1: (-13.1, -12.7), 6: (-1030.4, -1029.9), 7: (-1480.2, -1479.6), 8: (-2041.0, -2040.3)}


def _molecule(rng, n):
    x = [np.zeros(3)]
    while len(x) < n:
        y = rng.uniform(-2.0, 2.0, 3)
        if min(np.linalg.norm(y - p) for p in x) > 0.9:
            x.append(y)
    return np.array(x)


def write_composition_dataset(path, n=30, noise=1e-6, seed=0):
    """Energies = sum over atoms of E0_TRUE (+ noise); state 1 unlabelled in every 4th."""
    rng = np.random.default_rng(seed)
    structures = []
    for k in range(n):
        size = int(rng.integers(2, 7))
        z = rng.choice(list(E0_TRUE), size=size)
        e = np.array([sum(E0_TRUE[int(a)][s] for a in z) for s in (0, 1)])
        e += rng.normal(scale=noise, size=2)
        energy_mask = np.array([True, k % 4 != 1])
        e[~energy_mask] = 1e3  # a wrong value that the mask must hide
        forces = rng.normal(scale=0.5, size=(size, 2, 3))
        structures.append(
            Structure(z, _molecule(rng, size), e, forces, energy_mask, np.array([True, True]))
        )
    structures.append(Structure.unlabelled(np.array([6, 1]), np.eye(3)[:2]))
    failed = Structure(np.array([8]), np.zeros((1, 3)), None, None, None, None, status="failed")
    structures.append(failed)
    with MultiStateDataset.create(path, 2) as ds:
        ds.extend(structures)
    return structures


@pytest.fixture(scope="module")
def comp_data(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "comp.h5"
    structures = write_composition_dataset(path)
    return load_training_data([path], r_max=3.0), structures


def test_failed_and_unlabelled_structures_are_skipped(comp_data):
    """The 'failed' structure and the one without labels are left out; ids keep file rows."""
    data, structures = comp_data
    assert len(data) == len(structures) - 2 and data.n_skipped == 2
    assert np.array_equal(data.ids, np.arange(len(structures) - 2))
    assert data.elements() == ["H", "C", "N", "O"]


def test_e0_least_squares_recovers_known_reference_energies(comp_data):
    """Energies built as sum(count * E0) are fitted back to E0 (both states, masks respected)."""
    data, _ = comp_data
    e0 = fit_e0s(data, np.arange(len(data)), data.elements())
    expected = np.array([E0_TRUE[z] for z in (1, 6, 7, 8)])
    np.testing.assert_allclose(e0, expected, atol=1e-5)


def test_batched_graph_equals_build_graph(comp_data):
    """Precomputed neighbour lists joined by offsets give build_graph's graph, in any order."""
    data, _ = comp_data
    idx = np.array([5, 0, 17, 3])
    g = data.graph(idx, torch.float64, "cpu")
    o = data.atom_offsets
    ref = build_graph(
        [data.numbers[o[i] : o[i + 1]] for i in idx],
        [data.positions[o[i] : o[i + 1]] for i in idx],
        data.r_max,
    )
    for key in ("numbers", "positions", "batch", "edge_index", "shifts"):
        assert torch.equal(getattr(g, key), getattr(ref, key)), key
    labels = data.labels(idx, torch.float64, "cpu")
    assert labels.force_mask.shape == (g.numbers.shape[0], 2)
    assert torch.equal(labels.n_atoms, torch.tensor(np.diff(o)[idx], dtype=torch.float64))


def test_neighbour_count_and_force_scale(comp_data):
    """avg_num_neighbors = edges/atoms; scale = RMS of the labelled force components."""
    data, _ = comp_data
    idx = np.arange(len(data))
    expected = (np.diff(data.edge_offsets).sum()) / data.numbers.size
    assert average_num_neighbors(data, idx) == pytest.approx(expected)
    e0 = fit_e0s(data, idx, data.elements())
    scale, shift = scale_and_shift(data, idx, data.elements(), e0)
    np.testing.assert_allclose(scale, np.sqrt((data.forces**2).mean(axis=(0, 2))))
    assert max(abs(v) for v in shift) < 1e-5  # residuals of an exact fit


def test_unknown_element_is_named(comp_data):
    """check_elements names the file, structure, atom and element the model does not know."""
    data, _ = comp_data
    with pytest.raises(ValueError, match=r"comp\.h5: structure \d+: atom \d+ is (N|O), which"):
        data.check_elements(["H", "C"])


def test_missing_file_and_state_mismatch(tmp_path, comp_data):
    """A missing file is FileNotFoundError; files with different state counts are refused."""
    with pytest.raises(FileNotFoundError, match="missing.h5"):
        load_training_data([tmp_path / "missing.h5"], 3.0)
    three = tmp_path / "three.h5"
    with MultiStateDataset.create(three, 3) as ds:
        ds.append(Structure(np.array([1]), np.zeros((1, 3)), np.zeros(3), None, None, None))
    two = tmp_path / "two.h5"
    write_composition_dataset(two, n=3)
    with pytest.raises(ValueError, match="has 3 states but .* has 2"):
        load_training_data([two, three], 3.0)


def test_split_sizes_counts_and_fractions():
    """Fractions are rounded down (the rest goes to train when they add to 1); counts exact."""
    assert split_sizes(39, SplitConfig(0.8, 0.1, 0.1)) == {"train": 33, "validation": 3, "test": 3}
    assert split_sizes(39, SplitConfig(10, 0.2, 5)) == {"train": 10, "validation": 7, "test": 5}
    with pytest.raises(ValueError, match="only 10 are usable"):
        split_sizes(10, SplitConfig(8, 2, 1))
    with pytest.raises(ValueError, match="validation split is empty"):
        split_sizes(5, SplitConfig(0.9, 0.1, 0.0))


def test_random_split_is_seeded_and_disjoint():
    """Same seed -> same split; the three splits are disjoint."""
    a = random_split(50, SplitConfig(), seed=3)
    b = random_split(50, SplitConfig(), seed=3)
    c = random_split(50, SplitConfig(), seed=4)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["train"], c["train"])
    joined = np.concatenate(list(a.values()))
    assert len(set(joined.tolist())) == joined.size


def test_train_subsample_takes_nested_parts_of_the_training_split_only():
    """A learning curve's subsets: floor(fraction * n_train) training structures (at least
    one), drawn from the training split alone, nested (a smaller fraction's inside a larger
    one's) and seeded; validation and test are the same arrays; 1.0 changes nothing."""
    split = random_split(200, SplitConfig(), seed=0)
    n_train = len(split["train"])
    parts = {f: train_subsample(split, f, seed=7) for f in (0.01, 0.25, 0.5, 1.0)}
    assert [len(parts[f]["train"]) for f in (0.01, 0.25, 0.5)] == [1, n_train // 4, n_train // 2]
    assert np.array_equal(parts[1.0]["train"], split["train"])
    for part in parts.values():
        assert set(part["train"]) <= set(split["train"])
        assert np.all(np.diff(part["train"]) > 0)
        for key in ("validation", "test"):
            assert np.array_equal(part[key], split[key])
    assert set(parts[0.25]["train"]) <= set(parts[0.5]["train"])
    assert np.array_equal(train_subsample(split, 0.5, seed=7)["train"], parts[0.5]["train"])
    assert not np.array_equal(train_subsample(split, 0.5, seed=8)["train"], parts[0.5]["train"])
    for bad in (0.0, -0.5, 1.5):
        with pytest.raises(ValueError, match="train_subsample"):
            train_subsample(split, bad, seed=7)


def test_split_is_stored_reused_and_checked(tmp_path, comp_data):
    """split.json is written once, read back identically, and refused for other data/settings."""
    data, _ = comp_data
    files = [{"path": "comp.h5", "sha256": "abc", "n_structures": 32}]
    path = tmp_path / "split.json"
    first = load_or_create_split(path, data, SplitConfig(), 0, files)
    stored = json.loads(path.read_text())
    assert stored["train"] == data.ids[first["train"]].tolist()
    again = load_or_create_split(path, data, SplitConfig(), 0, files)
    assert all(np.array_equal(first[k], again[k]) for k in first)
    with pytest.raises(ValueError, match="other dataset files"):
        load_or_create_split(path, data, SplitConfig(), 0, [{**files[0], "sha256": "def"}])
    with pytest.raises(ValueError, match="was made with split"):
        load_or_create_split(path, data, SplitConfig(), 1, files)


def test_several_files_are_joined(tmp_path):
    """Two files load as one: ids continue across files and errors name the right file."""
    write_composition_dataset(tmp_path / "a.h5", n=4, seed=1)
    write_composition_dataset(tmp_path / "b.h5", n=3, seed=2)
    data = load_training_data([tmp_path / "a.h5", tmp_path / "b.h5"], 3.0)
    assert data.file_rows == [6, 5] and len(data) == 7
    assert data.ids.tolist() == [0, 1, 2, 3, 6, 7, 8]
    assert data.describe(5) == f"{tmp_path / 'b.h5'}: structure 1"
    assert data.source(5) == (str(tmp_path / "b.h5"), 1)


def test_split_rows_name_the_file_and_row_of_each_structure(tmp_path):
    """A stored split over two files read back as (file, row) pairs: the same file and row as
    the training data's own description of each structure, for every subset; a run directory
    or its split.json; an unknown subset or a row past the files is refused by name."""
    write_composition_dataset(tmp_path / "a.h5", n=12, seed=1)
    write_composition_dataset(tmp_path / "b.h5", n=9, seed=2)
    paths = [tmp_path / "a.h5", tmp_path / "b.h5"]
    data = load_training_data(paths, 3.0)
    files = [
        {"path": str(p), "sha256": str(k), "n_structures": n}
        for k, (p, n) in enumerate(zip(paths, data.file_rows, strict=True))
    ]
    split = load_or_create_split(tmp_path / "split.json", data, SplitConfig(), 0, files)
    for subset, indices in split.items():
        rows = split_rows(tmp_path, subset)
        assert [f"{f}: structure {r}" for f, r in rows] == [data.describe(i) for i in indices]
    assert split_rows(tmp_path / "split.json", "test") == split_rows(tmp_path, "test")
    with pytest.raises(ValueError, match="no subset 'tests'"):
        split_rows(tmp_path, "tests")
    record = json.loads((tmp_path / "split.json").read_text())
    record["test"].append(sum(data.file_rows))
    (tmp_path / "split.json").write_text(json.dumps(record))
    with pytest.raises(ValueError, match=f"test structure {sum(data.file_rows)} lies beyond"):
        split_rows(tmp_path, "test")


def test_split_extends_to_added_files(tmp_path):
    """Adding a file after the stored ones keeps every structure's split and splits the new
    structures with the same fractions; a changed or reordered first file is refused."""
    from fusionff.train.split import split_was_extended

    write_composition_dataset(tmp_path / "a.h5", n=40, seed=1)
    write_composition_dataset(tmp_path / "b.h5", n=20, seed=2)
    fa = {"path": "a.h5", "sha256": "aaa", "n_structures": 40}
    fb = {"path": "b.h5", "sha256": "bbb", "n_structures": 20}
    path = tmp_path / "split.json"
    one = load_training_data([tmp_path / "a.h5"], 3.0)
    first = load_or_create_split(path, one, SplitConfig(), 0, [fa])
    before = {k: one.ids[v].tolist() for k, v in first.items()}
    two = load_training_data([tmp_path / "a.h5", tmp_path / "b.h5"], 3.0)
    assert split_was_extended(path, [fa, fb]) and not split_was_extended(path, [fa])
    ext = load_or_create_split(path, two, SplitConfig(), 0, [fa, fb])
    after = {k: two.ids[v].tolist() for k, v in ext.items()}
    for k in before:  # old rows keep their split; new rows (ids >= 40) are added
        assert [i for i in after[k] if i < 40] == before[k]
    new = {k: [i for i in after[k] if i >= 40] for k in after}
    assert sorted(sum(new.values(), [])) == [i for i in two.ids.tolist() if i >= 40]
    assert (len(new["train"]), len(new["validation"]), len(new["test"])) == (16, 2, 2)
    stored = json.loads(path.read_text())
    assert stored["files"] == [fa, fb] and stored["extensions"][0]["files_added"] == [fb]
    again = load_or_create_split(path, two, SplitConfig(), 0, [fa, fb])  # now stored as is
    assert all(np.array_equal(ext[k], again[k]) for k in ext)
    with pytest.raises(ValueError, match="may add files after them"):
        load_or_create_split(path, two, SplitConfig(), 0, [fb, fa])
    with pytest.raises(ValueError, match="needs fractions"):
        path2 = tmp_path / "split2.json"
        load_or_create_split(path2, one, SplitConfig(30, 5, 5), 0, [fa])
        load_or_create_split(path2, two, SplitConfig(30, 5, 5), 0, [fa, fb])


def _write_wrong_labels(path, data, indices, energy_shift=0.0, position_shift=0.0):
    """An exclusion file naming the labels of ``data`` structures ``indices``."""
    from ase import Atoms
    from ase.io import write

    frames = []
    for i in indices:
        a, b = data.atom_offsets[i], data.atom_offsets[i + 1]
        energies = np.where(data.energy_mask[i], data.energies[i], np.nan) + energy_shift
        frames.append(
            Atoms(
                numbers=data.numbers[a:b],
                positions=data.positions[a:b] + position_shift,
                info={"energies": energies.tolist()},
            )
        )
    write(path, frames, format="extxyz")


def test_listed_wrong_labels_are_found_by_atoms_positions_and_energies(tmp_path, comp_data):
    """find_labels matches a listed label to its structure, and not a relabelled copy (other
    energies) or a moved geometry; a frame without energies is refused by name."""
    from ase import Atoms
    from ase.io import write

    data, _ = comp_data
    path = tmp_path / "wrong.xyz"
    _write_wrong_labels(path, data, [3, 7])
    found, unmatched = data.find_labels(path)
    assert found.tolist() == [3, 7] and unmatched == 0
    _write_wrong_labels(path, data, [3], energy_shift=0.01)  # a label with other energies
    assert data.find_labels(path)[0].size == 0 and data.find_labels(path)[1] == 1
    _write_wrong_labels(path, data, [3], position_shift=0.001)
    assert data.find_labels(path)[0].size == 0
    write(path, [Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.7]])], format="extxyz")
    with pytest.raises(ValueError, match="frame 0: info 'energies'"):
        data.find_labels(path)


def test_excluded_structures_are_in_no_split_and_the_rest_keep_theirs(tmp_path):
    """A new split leaves excluded structures out; excluding more later removes them from a
    stored split (recorded under 'excluded') while every other structure keeps its split, and
    they stay out when the split is extended to an added file."""
    write_composition_dataset(tmp_path / "a.h5", n=40, seed=1)
    write_composition_dataset(tmp_path / "b.h5", n=20, seed=2)
    fa = {"path": "a.h5", "sha256": "aaa", "n_structures": 42}
    fb = {"path": "b.h5", "sha256": "bbb", "n_structures": 22}
    one = load_training_data([tmp_path / "a.h5"], 3.0)
    path = tmp_path / "split.json"
    first = load_or_create_split(path, one, SplitConfig(), 0, [fa], np.array([0, 5]))
    taken = np.concatenate(list(first.values()))
    assert 0 not in taken and 5 not in taken and len(taken) == len(one) - 2
    assert json.loads(path.read_text())["excluded"] == one.ids[[0, 5]].tolist()
    before = {k: one.ids[v].tolist() for k, v in first.items()}
    victim = int(first["test"][0])
    later = load_or_create_split(path, one, SplitConfig(), 0, [fa], np.array([victim]))
    after = {k: one.ids[v].tolist() for k, v in later.items()}
    for k in before:
        assert after[k] == [i for i in before[k] if i != int(one.ids[victim])]
    stored = json.loads(path.read_text())
    assert stored["excluded"] == sorted(one.ids[[0, 5, victim]].tolist())
    two = load_training_data([tmp_path / "a.h5", tmp_path / "b.h5"], 3.0)
    new_row = int(np.flatnonzero(two.ids >= 42)[0])
    ext = load_or_create_split(path, two, SplitConfig(), 0, [fa, fb], np.array([new_row]))
    rows = {int(two.ids[i]) for v in ext.values() for i in v}
    assert not rows & set(one.ids[[0, 5, victim]].tolist()) and int(two.ids[new_row]) not in rows
    assert len(rows) == len(two) - 4


def test_train_config_reads_exclude_as_a_list():
    from fusionff.train.config import TrainConfig

    assert TrainConfig.from_dict({"data": "a.h5", "exclude": "w.xyz"}).exclude == ["w.xyz"]
    assert TrainConfig.from_dict({"data": "a.h5"}).exclude == []
    assert TrainConfig.from_dict({"data": "a.h5", "release": "r.xyz"}).release == ["r.xyz"]


def test_released_structures_come_back_into_a_stored_split(tmp_path):
    """A structure excluded by an earlier run stays out when no longer named, and comes back
    only when released: the released ones are split with the stored fractions and recorded
    (under 'releases', off 'excluded'), every other structure keeps its split, a second load
    with the same release changes nothing, and naming one structure under both keys fails."""
    write_composition_dataset(tmp_path / "a.h5", n=60, seed=3)
    fa = {"path": "a.h5", "sha256": "aaa", "n_structures": 62}
    data = load_training_data([tmp_path / "a.h5"], 3.0)
    path = tmp_path / "split.json"
    suspects = np.arange(0, 40, 2)  # 20 structures excluded as suspects
    first = load_or_create_split(path, data, SplitConfig(), 0, [fa], suspects)
    before = {k: data.ids[v].tolist() for k, v in first.items()}
    still_out = load_or_create_split(path, data, SplitConfig(), 0, [fa])
    assert {k: data.ids[v].tolist() for k, v in still_out.items()} == before

    wrong, right = suspects[:5], suspects[5:]  # checked: 5 wrong, 15 right
    back = load_or_create_split(path, data, SplitConfig(), 0, [fa], wrong, right)
    after = {k: set(data.ids[v].tolist()) for k, v in back.items()}
    for k in before:
        assert set(before[k]) <= after[k]
    returned = set().union(*after.values()) - set().union(*map(set, before.values()))
    assert returned == set(data.ids[right].tolist())
    assert len(after["train"] & returned) > len(after["test"] & returned)
    stored = json.loads(path.read_text())
    assert stored["excluded"] == sorted(data.ids[wrong].tolist())
    (release,) = stored["releases"]
    assert release["rows"] == sorted(data.ids[right].tolist())
    assert release["train"] + release["validation"] + release["test"] == 15

    again = load_or_create_split(path, data, SplitConfig(), 0, [fa], wrong, right)
    assert {k: set(data.ids[v].tolist()) for k, v in again.items()} == after
    assert json.loads(path.read_text()) == stored
    with pytest.raises(ValueError, match="both excluded and released"):
        load_or_create_split(path, data, SplitConfig(), 0, [fa], wrong, wrong[:1])
