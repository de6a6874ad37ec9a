"""The layout of a fusionff HDF5 dataset and the checks a reader makes before trusting one.

Layout (version 1). Structures are ragged: structure ``i`` owns atoms
``offsets[i]:offsets[i+1]`` of the flat per-atom arrays.

==================  ============================  ==========  ================================
dataset             shape                         dtype       meaning
==================  ============================  ==========  ================================
``offsets``         (n_struct + 1,)               int64       atom offsets, ``offsets[0] = 0``
``numbers``         (n_atoms_total,)              int16       atomic numbers 1..118
``positions``       (n_atoms_total, 3)            float64     Angstrom
``forces``          (n_atoms_total, S, 3)         float64     eV/Angstrom (0 where unlabelled)
``energies``        (n_struct, S)                 float64     eV (0 where unlabelled)
``energy_mask``     (n_struct, S)                 bool        True where the energy exists
``force_mask``      (n_struct, S)                 bool        True where the forces exist
``status``          (n_struct,)                   str         "ok" / "failed" / "missing"
``error``           (n_struct,)                   str         why labelling failed
``meta``            (n_struct,)                   str         JSON object per structure
``cell``            (n_struct, 3, 3)              float64     optional, Angstrom
``pbc``             (n_struct, 3)                 bool        optional
``nacs``            (n_atoms_total, S, S, 3)      float64     optional, 1/Angstrom
``nac_mask``        (n_struct,)                   bool        with ``nacs``
==================  ============================  ==========  ================================

Root attributes: ``format`` ("fusionff-dataset"), ``version`` (1), ``n_states``, ``units``
(JSON), ``method`` (reference method string), ``provenance`` (JSON: program, version,
keywords, sampling recipe, sources), ``fusionff_version``.

All arrays are chunked, gzip-compressed and resizable along their first axis. A writer
appends rows to every array and writes the new entry of ``offsets`` last: ``offsets``
defines which structures are committed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import h5py
import numpy as np

FORMAT_NAME = "fusionff-dataset"
FORMAT_VERSION = 1
UNITS = {"energy": "eV", "length": "Angstrom", "forces": "eV/Angstrom", "nacs": "1/Angstrom"}


class DatasetError(ValueError):
    """A dataset file is unreadable, of the wrong format, or inconsistent."""


@dataclass(frozen=True)
class ArraySpec:
    """One HDF5 dataset: its rows are per atom or per structure; trailing shape and kind."""

    per_atom: bool
    tail: tuple[str | int, ...]  # "S" stands for n_states
    dtype: object
    required: bool = True

    def shape_tail(self, n_states: int) -> tuple[int, ...]:
        return tuple(n_states if d == "S" else int(d) for d in self.tail)


STRING = h5py.string_dtype("utf-8")

SPECS: dict[str, ArraySpec] = {
    "numbers": ArraySpec(True, (), np.int16),
    "positions": ArraySpec(True, (3,), np.float64),
    "forces": ArraySpec(True, ("S", 3), np.float64),
    "energies": ArraySpec(False, ("S",), np.float64),
    "energy_mask": ArraySpec(False, ("S",), np.bool_),
    "force_mask": ArraySpec(False, ("S",), np.bool_),
    "status": ArraySpec(False, (), STRING),
    "error": ArraySpec(False, (), STRING),
    "meta": ArraySpec(False, (), STRING, required=False),
    "cell": ArraySpec(False, (3, 3), np.float64, required=False),
    "pbc": ArraySpec(False, (3,), np.bool_, required=False),
    "nacs": ArraySpec(True, ("S", "S", 3), np.float64, required=False),
    "nac_mask": ArraySpec(False, (), np.bool_, required=False),
}
"""Every array of the format except ``offsets``."""

OPTIONAL_GROUPS = (("cell", "pbc"), ("nacs", "nac_mask"))
"""Optional arrays that exist together or not at all."""

_ALLOWED_KINDS = {"i": "iu", "f": "f", "b": "b"}


def _kind_ok(spec: ArraySpec, dataset: h5py.Dataset) -> bool:
    if spec.dtype is STRING:
        return h5py.check_string_dtype(dataset.dtype) is not None
    return dataset.dtype.kind in _ALLOWED_KINDS[np.dtype(spec.dtype).kind]


def read_header(f: h5py.File, name: str) -> tuple[int, str, dict, dict]:
    """Check the root attributes; return (n_states, method, provenance, units)."""
    attrs = f.attrs
    if "format" not in attrs:
        raise DatasetError(f"{name}: not a fusionff dataset (no 'format' attribute)")
    fmt = _as_str(attrs["format"])
    if fmt != FORMAT_NAME:
        raise DatasetError(
            f"{name}: not a fusionff dataset ('format' is {fmt!r}, expected {FORMAT_NAME!r})"
        )
    version = attrs.get("version")
    if version is None:
        raise DatasetError(f"{name}: no 'version' attribute")
    if int(version) != FORMAT_VERSION:
        newer = " (written by a newer fusionff)" if int(version) > FORMAT_VERSION else ""
        raise DatasetError(
            f"{name}: format version {int(version)} is not supported{newer}; "
            f"this fusionff reads version {FORMAT_VERSION}"
        )
    if "n_states" not in attrs:
        raise DatasetError(f"{name}: no 'n_states' attribute")
    n_states = int(attrs["n_states"])
    if n_states < 1:
        raise DatasetError(f"{name}: 'n_states' is {n_states}, must be at least 1")
    units = _json_attr(attrs, "units", name)
    if units != UNITS:
        raise DatasetError(f"{name}: 'units' is {units}, expected {UNITS}")
    provenance = _json_attr(attrs, "provenance", name)
    method = _as_str(attrs.get("method", ""))
    return n_states, method, provenance, units


def check_layout(f: h5py.File, name: str, n_states: int, repair: bool = False) -> np.ndarray:
    """Check every array's presence, dtype, shape and row count; return the offsets.

    With ``repair`` (append mode), rows beyond the committed ``offsets`` (left by an
    interrupted append) are dropped instead of reported.
    """
    if "offsets" not in f:
        raise DatasetError(f"{name}: missing dataset 'offsets'")
    offsets = np.asarray(f["offsets"][...])
    if offsets.ndim != 1 or offsets.size == 0 or offsets.dtype.kind not in "iu":
        raise DatasetError(f"{name}: 'offsets' must be a non-empty 1-d integer array")
    if offsets[0] != 0:
        raise DatasetError(f"{name}: 'offsets' must start at 0, starts at {offsets[0]}")
    steps = np.diff(offsets)
    if np.any(steps < 1):
        i = int(np.flatnonzero(steps < 1)[0])
        raise DatasetError(
            f"{name}: structure {i}: 'offsets' give it {int(steps[i])} atoms "
            f"(offsets[{i}]={offsets[i]}, offsets[{i + 1}]={offsets[i + 1]})"
        )
    n_struct, n_atoms = offsets.size - 1, int(offsets[-1])
    for group in OPTIONAL_GROUPS:
        present = [key in f for key in group]
        if any(present) and not all(present):
            missing = group[present.index(False)]
            raise DatasetError(f"{name}: missing dataset {missing!r} (needed with {group})")
    for key, spec in SPECS.items():
        if key not in f:
            if spec.required:
                raise DatasetError(f"{name}: missing dataset {key!r}")
            continue
        dataset = f[key]
        if not isinstance(dataset, h5py.Dataset):
            raise DatasetError(f"{name}: {key!r} is not a dataset")
        tail = spec.shape_tail(n_states)
        if dataset.shape[1:] != tail:
            raise DatasetError(
                f"{name}: {key!r} has shape {dataset.shape}, expected (rows,) + {tail} "
                f"for {n_states} states"
            )
        if not _kind_ok(spec, dataset):
            raise DatasetError(f"{name}: {key!r} has dtype {dataset.dtype}, expected {spec.dtype}")
        rows, need = dataset.shape[0], n_atoms if spec.per_atom else n_struct
        what = "offsets need" if spec.per_atom else "offsets list"
        if rows > need and repair:
            dataset.resize(need, axis=0)
        elif rows != need:
            hint = (
                "; an append was interrupted: open with mode='a', repair=True to drop it"
                if rows > need
                else ""
            )
            unit = "" if spec.per_atom else " structures"
            raise DatasetError(f"{name}: {key!r} has {rows} rows but {what} {need}{unit}{hint}")
    return offsets.astype(np.int64)


def check_contents(arrays: dict[str, np.ndarray], name: str) -> None:
    """Check the values of a dataset's arrays (as returned by ``MultiStateDataset.arrays``).

    Raises ``DatasetError`` naming the structure (and atom or state) at fault.
    """
    from fusionff.data.structure import MAX_ATOMIC_NUMBER, STATUSES

    offsets = arrays["offsets"]

    def owner(atom: int) -> int:
        return int(np.searchsorted(offsets, atom, side="right") - 1)

    numbers = arrays["numbers"]
    bad = np.flatnonzero((numbers < 1) | (numbers > MAX_ATOMIC_NUMBER))
    if bad.size:
        atom = int(bad[0])
        i = owner(atom)
        raise DatasetError(
            f"{name}: structure {i}: atom {atom - offsets[i]} has unknown atomic number "
            f"{numbers[atom]} (must be 1..{MAX_ATOMIC_NUMBER})"
        )
    bad = np.flatnonzero(~np.isfinite(arrays["positions"]).all(axis=1))
    if bad.size:
        i = owner(int(bad[0]))
        raise DatasetError(f"{name}: structure {i}: positions contain NaN or inf")
    bad_e = arrays["energy_mask"] & ~np.isfinite(arrays["energies"])
    if bad_e.any():
        i, s = (int(v) for v in np.argwhere(bad_e)[0])
        raise DatasetError(f"{name}: structure {i}: energies contain NaN or inf (state {s})")
    atom_owner = np.repeat(np.arange(offsets.size - 1), np.diff(offsets))
    bad_f = arrays["force_mask"][atom_owner] & ~np.isfinite(arrays["forces"]).all(axis=2)
    if bad_f.any():
        atom, s = (int(v) for v in np.argwhere(bad_f)[0])
        raise DatasetError(
            f"{name}: structure {owner(atom)}: forces contain NaN or inf (state {s})"
        )
    for key in ("cell", "nacs"):
        if key in arrays and not np.all(np.isfinite(arrays[key])):
            axes = tuple(range(1, arrays[key].ndim))
            row = int(np.flatnonzero(~np.isfinite(arrays[key]).all(axis=axes))[0])
            i = owner(row) if key == "nacs" else row
            raise DatasetError(f"{name}: structure {i}: {key} contain NaN or inf")
    bad = np.flatnonzero(~np.isin(arrays["status"], STATUSES))
    if bad.size:
        i = int(bad[0])
        raise DatasetError(
            f"{name}: structure {i}: status {arrays['status'][i]!r} is not one of {STATUSES}"
        )


def _as_str(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _json_attr(attrs: h5py.AttributeManager, key: str, name: str) -> dict:
    if key not in attrs:
        raise DatasetError(f"{name}: no {key!r} attribute")
    try:
        value = json.loads(_as_str(attrs[key]))
    except json.JSONDecodeError as err:
        raise DatasetError(f"{name}: attribute {key!r} is not valid JSON ({err})") from None
    if not isinstance(value, dict):
        raise DatasetError(f"{name}: attribute {key!r} must be a JSON object")
    return value
