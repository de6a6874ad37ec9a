"""Train/validation/test splits: random, seeded, and stored so that a resumed run reuses them.

``split.json`` in the output directory holds the dataset files (path, SHA-256, number of
structures), the seed, and the structures of each split as rows of the files taken one after
another (``TrainingData.ids``), so that the split survives changes of which structures are
usable only if the files are unchanged.

A run may go on with more data: when the stored files are the first files of the data, in
order and unchanged, the structures of the added files are split with the same fractions (a
random split seeded by the seed and the number of files before) and appended, and every
structure keeps the split it had. ``split.json`` records each such extension.

Labels found wrong later (``TrainConfig.exclude``) are taken out of every split: a new split
is drawn among the other structures, a stored one loses them (the others keep their split),
and ``split.json`` lists them under ``excluded`` (rows as above); an excluded structure stays
out even if a later config no longer names it. It comes back only when a config names it under
``TrainConfig.release`` (a suspect checked since and found right): the released structures are
split with the same fractions (a random split seeded by the seed and the number of releases
before) and appended, and ``split.json`` records each release.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np

from fusionff.train.config import SplitConfig
from fusionff.train.data import TrainingData

SPLITS = ("train", "validation", "test")


def split_sizes(n: int, spec: SplitConfig, added: bool = False) -> dict[str, int]:
    """Number of structures in each split out of ``n`` usable ones.

    Counts are taken as given, fractions rounded down; when the fractions add up to 1 the
    structures left by rounding go to the training split. ``added``: the structures join a
    stored split (extension, release), so a split may get none of them.
    """
    values = {k: getattr(spec, k) for k in SPLITS}
    sizes = {k: v if isinstance(v, int) else math.floor(v * n + 1e-9) for k, v in values.items()}
    if all(isinstance(v, float) for v in values.values()) and abs(sum(values.values()) - 1) < 1e-9:
        sizes["train"] += n - sum(sizes.values())
    if sum(sizes.values()) > n:
        raise ValueError(f"split asks for {sizes} structures but only {n} are usable")
    if added:
        return sizes
    if sizes["train"] < 1:
        raise ValueError(f"split: the training split is empty ({n} usable structures, {values})")
    if sizes["validation"] < 1:
        raise ValueError(
            f"split: the validation split is empty ({n} usable structures, {values}); "
            "validation drives early stopping and the learning-rate schedule"
        )
    return sizes


def random_split(
    n: int, spec: SplitConfig, seed: int, added: bool = False
) -> dict[str, np.ndarray]:
    """Disjoint random subsets of ``range(n)`` (sorted), sizes from :func:`split_sizes`."""
    sizes = split_sizes(n, spec, added)
    order = np.random.default_rng(seed).permutation(n)
    out, start = {}, 0
    for key in SPLITS:
        out[key] = np.sort(order[start : start + sizes[key]])
        start += sizes[key]
    return out


def train_subsample(
    split: dict[str, np.ndarray], fraction: float, seed: int
) -> dict[str, np.ndarray]:
    """``split`` with its training part cut to ``floor(fraction * n_train)`` structures (at
    least one), validation and test unchanged: the first of a permutation of the training
    split seeded by ``seed`` (sorted), so that smaller fractions take nested subsets."""
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"train_subsample must be a fraction in (0, 1], got {fraction!r}")
    train = np.asarray(split["train"])
    if fraction == 1.0:
        return dict(split)
    keep = max(1, math.floor(fraction * len(train) + 1e-9))
    order = np.random.default_rng(seed).permutation(len(train))
    return dict(split) | {"train": np.sort(train[order[:keep]])}


def load_or_create_split(
    path: str | os.PathLike,
    data: TrainingData,
    spec: SplitConfig,
    seed: int,
    files: list[dict],
    excluded: np.ndarray | None = None,
    released: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """The split stored at ``path``, or a new random one written there; extended (and
    rewritten) when the data has files beyond the stored ones (see the module docstring).

    Args:
        data: the usable structures; the returned arrays index them.
        files: ``[{"path", "sha256", "n_structures"}]`` of the dataset files.
        excluded: indices into ``data`` of structures to keep out of every split.
        released: indices into ``data`` of structures that an earlier run excluded and that
            go back into the splits now (those never excluded are left where they are).

    Raises ValueError when the stored split belongs to other data or another split setting,
    or when a structure is both excluded and released.
    """
    path = Path(path)
    setting = {k: getattr(spec, k) for k in SPLITS} | {"seed": seed}
    out = set() if excluded is None else {int(i) for i in data.ids[np.asarray(excluded)]}
    back = set() if released is None else {int(i) for i in data.ids[np.asarray(released)]}
    if out & back:
        both = sorted(out & back)
        raise ValueError(
            f"{len(both)} structures are both excluded and released (first: "
            f"{data.describe(int(np.flatnonzero(data.ids == both[0])[0]))}); a label is "
            "either wrong (exclude) or checked and right (release)"
        )
    if not path.exists():
        allowed = np.flatnonzero(~np.isin(data.ids, sorted(out)))
        split = random_split(len(allowed), spec, seed)
        record = {"files": files, "setting": setting}
        record |= {k: data.ids[allowed[v]].tolist() for k, v in split.items()}
        if out:
            record["excluded"] = sorted(out)
        _write(path, record)
        return {k: allowed[v] for k, v in split.items()}
    record = json.loads(path.read_text())
    hint = "use another output directory or start afresh (fusionff train --restart)"
    stored = [f["sha256"] for f in record["files"]]
    current = [f["sha256"] for f in files]
    if current[: len(stored)] != stored:
        raise ValueError(
            f"{path} was made for other dataset files ({record['files']}); the data must list "
            f"them first, unchanged, and may add files after them; {hint}"
        )
    if record["setting"] != setting:
        raise ValueError(
            f"{path} was made with split {record['setting']}, the config asks for {setting}; {hint}"
        )
    out |= set(record.get("excluded", [])) - back
    changed = len(current) > len(stored)
    if changed:
        record = _extend(record, data, spec, seed, files, path, out)
    returning = sorted(back & set(record.get("excluded", [])))
    if returning:
        record = _release(record, spec, seed, path, returning)
        changed = True
    if sorted(out) != record.get("excluded", []):  # newly excluded: out of their splits
        record = dict(record)
        for key in SPLITS:
            record[key] = [i for i in record[key] if i not in out]
        record["excluded"] = sorted(out)
        changed = True
    if changed:
        _write(path, record)
    return _indices(record, data, path)


def split_was_extended(path: str | os.PathLike, files: list[dict]) -> bool:
    """Whether the split at ``path`` covers fewer files than ``files`` (call before
    :func:`load_or_create_split` extends it)."""
    path = Path(path)
    return path.exists() and len(json.loads(path.read_text())["files"]) < len(files)


def _append(record: dict, rows: np.ndarray, spec, seed: int, path, what: str) -> tuple:
    """``record`` (a copy) with ``rows`` split by ``seed`` with the stored fractions and added
    to its splits, and the number that went to each split; ``what`` names the addition in the
    error when the split is given as counts."""
    if not all(isinstance(getattr(spec, k), float) for k in SPLITS):
        raise ValueError(
            f"{path}: {what} needs fractions for train, validation and test, the config gives "
            f"{[getattr(spec, k) for k in SPLITS]}"
        )
    part = random_split(len(rows), spec, seed, added=True)
    record = dict(record)
    for key in SPLITS:
        record[key] = sorted(record[key] + rows[part[key]].tolist())
    return record, {key: len(part[key]) for key in SPLITS}


def _extend(record, data, spec, seed, files, path, out=frozenset()) -> dict:
    """``record`` with the usable structures of the files after its own split and added
    (those of rows in ``out`` left out)."""
    n_before = len(record["files"])
    first_new_row = sum(f["n_structures"] for f in record["files"])
    new = np.flatnonzero((data.ids >= first_new_row) & ~np.isin(data.ids, sorted(out)))
    if len(new) == 0:
        raise ValueError(f"{path}: the added files {files[n_before:]} have no usable structures")
    extension_seed = int(seed) * 1000 + n_before
    record, counts = _append(
        record, data.ids[new], spec, extension_seed, path, "extending a split to added files"
    )
    record["extensions"] = record.get("extensions", []) + [
        {"files_added": files[n_before:], "seed": extension_seed, **counts}
    ]
    record["files"] = files
    return record


def _release(record, spec, seed, path, rows: list[int]) -> dict:
    """``record`` with the excluded ``rows`` split like added structures and taken off its
    ``excluded`` list."""
    earlier = record.get("releases", [])
    release_seed = int(seed) * 1000 + 500 + len(earlier)
    ids = np.asarray(rows, dtype=np.int64)
    record, counts = _append(record, ids, spec, release_seed, path, "releasing excluded structures")
    record["excluded"] = sorted(set(record["excluded"]) - set(rows))
    record["releases"] = earlier + [{"rows": rows, "seed": release_seed, **counts}]
    return record


def _write(path: Path, record: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(record, indent=1))
    os.replace(tmp, path)


def read_split(path: str | os.PathLike, data: TrainingData) -> dict[str, np.ndarray]:
    """The split stored at ``path`` (a run's split.json) as indices into ``data``, which must
    hold the run's dataset files (e.g. for evaluating a trained model on its test split)."""
    return _indices(json.loads(Path(path).read_text()), data, path)


def _indices(record: dict, data: TrainingData, path) -> dict[str, np.ndarray]:
    """split.json stores file rows; map them to positions among the usable structures."""
    position = {int(i): k for k, i in enumerate(data.ids)}
    split = {}
    for key in SPLITS:
        missing = [i for i in record[key] if i not in position]
        if missing:
            raise ValueError(f"{path}: {key} structure {missing[0]} is not usable in the data")
        split[key] = np.array([position[i] for i in record[key]], dtype=np.int64)
    return split


def split_rows(path: str | os.PathLike, subset: str) -> list[tuple[str, int]]:
    """The structures of ``subset`` ("train", "validation" or "test") of the split stored at
    ``path`` (a run's split.json, or the run's directory) as (dataset file, row in that file)
    pairs, in the split's order; reads no dataset file."""
    path = Path(path)
    if path.is_dir():
        path = path / "split.json"
    if subset not in SPLITS:
        raise ValueError(f"{path}: no subset {subset!r}; choose one of {SPLITS}")
    record = json.loads(path.read_text())
    starts = np.cumsum([0] + [f["n_structures"] for f in record["files"]])
    out = []
    for i in record[subset]:
        k = int(np.searchsorted(starts, i, side="right")) - 1
        if not 0 <= k < len(record["files"]):
            raise ValueError(f"{path}: {subset} structure {i} lies beyond its files' rows")
        out.append((record["files"][k]["path"], int(i - starts[k])))
    return out
