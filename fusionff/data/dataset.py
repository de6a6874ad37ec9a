"""The multi-state HDF5 dataset: ragged structures, S-state labels with masks, provenance.

The layout is described in :mod:`fusionff.data.schema`. Typical use::

    with MultiStateDataset.create("data.h5", n_states=2, method="AM1 OPEN(2,2) C.I.=2",
                                  provenance={"program": "mopac", "version": "22"}) as ds:
        ds.append(structure)             # on disk on return: a killed labelling run loses nothing
    with MultiStateDataset.open("data.h5", "a") as ds:
        ds.extend(more_structures)       # resume
    arrays = MultiStateDataset.open("data.h5").arrays()   # flat arrays for training

Labels whose mask is False are stored as 0.0 (not NaN), so masked losses stay finite.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import h5py
import numpy as np

import fusionff
from fusionff.atomic_files import WriterLock, h5_transaction
from fusionff.data.schema import (
    FORMAT_NAME,
    FORMAT_VERSION,
    SPECS,
    STRING,
    UNITS,
    DatasetError,
    check_contents,
    check_layout,
    read_header,
)
from fusionff.data.structure import Structure

_CHUNK_ATOMS = 2048
_CHUNK_STRUCTS = 256
_CHUNK_CACHE_BYTES = 64 * 2**20  # keeps the chunks being appended to in memory
_BLOCK = 1024  # structures read or written per HDF5 call when iterating or extending


class MultiStateDataset:
    """A multi-state dataset file opened for reading ("r") or appending ("a").

    Attributes:
        path: the file.
        n_states: S, the number of electronic states labelled per structure.
        method: the reference method (e.g. MOPAC keywords).
        provenance: program, version, keywords, sampling recipe, sources (a JSON object).
    """

    def __init__(self, file: h5py.File, path: Path, offsets: np.ndarray, lock: WriterLock | None):
        """Use :meth:`create` or :meth:`open`; ``lock``: the writer's claim (None: read-only)."""
        self._file = file
        self.path = path
        self._name = str(path)
        self.n_states, self.method, self.provenance, self.units = read_header(file, self._name)
        self._offsets = offsets
        self._lock = lock

    # ------------------------------------------------------------------ opening and closing
    @classmethod
    def create(
        cls,
        path: str | Path,
        n_states: int,
        *,
        method: str = "",
        provenance: dict | None = None,
        overwrite: bool = False,
    ) -> MultiStateDataset:
        """Create an empty dataset for ``n_states`` states and open it for appending."""
        path = Path(path)
        if int(n_states) < 1:
            raise ValueError(f"n_states must be at least 1, got {n_states}")
        if path.exists() and not overwrite:
            raise FileExistsError(f"{path} exists; pass overwrite=True to replace it")
        try:
            provenance_json = json.dumps(provenance or {}, sort_keys=True)
        except TypeError as err:
            raise ValueError(f"provenance must be JSON-serialisable: {err}") from None
        lock = WriterLock(path)
        with h5_transaction(path, new=True) as f:
            f.attrs["format"] = FORMAT_NAME
            f.attrs["version"] = FORMAT_VERSION
            f.attrs["n_states"] = int(n_states)
            f.attrs["units"] = json.dumps(UNITS, sort_keys=True)
            f.attrs["method"] = str(method)
            f.attrs["provenance"] = provenance_json
            f.attrs["fusionff_version"] = fusionff.__version__
            f.create_dataset(
                "offsets", data=np.zeros(1, np.int64), maxshape=(None,), chunks=(_CHUNK_STRUCTS,)
            )
            for key, spec in SPECS.items():
                if spec.required or key == "meta":
                    _create_array(f, key, int(n_states))
        f = h5py.File(path, "r", rdcc_nbytes=_CHUNK_CACHE_BYTES)
        return cls(f, path, np.zeros(1, np.int64), lock)

    @classmethod
    def open(cls, path: str | Path, mode: str = "r", *, repair: bool = False) -> MultiStateDataset:
        """Open an existing dataset, checking its format, version and layout.

        Args:
            path: the file.
            mode: "r" to read, "a" to read and append.
            repair: in mode "a", drop rows that an interrupted append wrote beyond the
                committed offsets (otherwise they are reported as an error).
        """
        if mode not in ("r", "a"):
            raise ValueError(f"mode must be 'r' or 'a', got {mode!r}")
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such dataset file")
        lock = WriterLock(path) if mode == "a" else None
        f = None
        try:
            if repair and lock is not None:
                _repair(path)
            f = h5py.File(path, "r", rdcc_nbytes=_CHUNK_CACHE_BYTES)
            n_states, *_ = read_header(f, str(path))
            offsets = check_layout(f, str(path), n_states)
            return cls(f, path, offsets, lock)
        except (DatasetError, OSError, KeyError) as err:
            if f is not None:
                f.close()
            if lock is not None:
                lock.release()
            if isinstance(err, DatasetError):
                raise
            what = "not a readable HDF5 file" if f is None else "corrupted dataset"
            raise DatasetError(f"{path}: {what} ({err})") from None

    def close(self) -> None:
        """Close the file (every append is already on disk) and end the writer's claim."""
        if self._file.id.valid:
            self._file.close()
        if self._lock is not None:
            self._lock.release()

    def __enter__(self) -> MultiStateDataset:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"MultiStateDataset({self._name!r}, n_structures={len(self)}, "
            f"n_states={self.n_states}, method={self.method!r})"
        )

    # ------------------------------------------------------------------ writing
    def append(self, structure: Structure) -> int:
        """Add one structure, on disk when this returns, and return the structure's index."""
        self.extend([structure])
        return len(self) - 1

    def extend(self, structures: Iterable[Structure]) -> None:
        """Add many structures as one transaction (:mod:`fusionff.atomic_files`): a kill at
        any moment leaves the file with all of them or none, and every earlier row intact."""
        if self._lock is None:
            raise PermissionError(f"{self._name}: opened read-only; use mode='a' to append")
        self._file.close()
        offsets = self._offsets
        try:
            with h5_transaction(self.path, rdcc_nbytes=_CHUNK_CACHE_BYTES) as f:
                block: list[Structure] = []
                for structure in structures:
                    block.append(structure)
                    if len(block) == _BLOCK:
                        offsets = self._write(f, offsets, block)
                        block = []
                if block:
                    offsets = self._write(f, offsets, block)
            self._offsets = offsets
        finally:
            self._file = h5py.File(self.path, "r", rdcc_nbytes=_CHUNK_CACHE_BYTES)

    def _write(self, f: h5py.File, offsets: np.ndarray, structures: list[Structure]) -> np.ndarray:
        """Append ``structures`` after the rows ``offsets`` counts; return the new offsets."""
        s, i0 = self.n_states, offsets.size - 1
        for k, structure in enumerate(structures):
            name = f"{self._name}: structure {i0 + k}"
            structure.validate(s, name=name)
            try:
                _meta_json(structure.meta)
            except TypeError as err:
                raise ValueError(f"{name}: meta is not JSON-serialisable ({err})") from None
        rows = _rows(structures, s)
        if "meta" not in f:
            _create_array(f, "meta", s, n_rows=i0)
        if "cell" not in f and ("cell" in rows):
            for key in ("cell", "pbc"):
                _create_array(f, key, s, n_rows=i0)
        if "nacs" not in f and ("nacs" in rows):
            _create_array(f, "nacs", s, n_rows=int(offsets[-1]))
            _create_array(f, "nac_mask", s, n_rows=i0)
        if "cell" in f and "cell" not in rows:
            rows["cell"] = np.zeros((len(structures), 3, 3))
            rows["pbc"] = np.zeros((len(structures), 3), bool)
        if "nacs" in f and "nacs" not in rows:
            rows["nacs"] = np.zeros((len(rows["numbers"]), s, s, 3))
            rows["nac_mask"] = np.zeros(len(structures), bool)
        a0 = int(offsets[-1])
        for key, values in rows.items():
            _append_rows(f[key], a0 if SPECS[key].per_atom else i0, values)
        counts = np.array([st.n_atoms for st in structures], dtype=np.int64)
        new_offsets = a0 + np.cumsum(counts)
        _append_rows(f["offsets"], i0 + 1, new_offsets)
        return np.concatenate([offsets, new_offsets])

    # ------------------------------------------------------------------ reading
    def __len__(self) -> int:
        return self._offsets.size - 1

    def __getitem__(self, i: int) -> Structure:
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"{self._name}: structure {i} out of range ({n} structures)")
        i = int(i) % n
        return self._read(i, i + 1)[0]

    def __iter__(self) -> Iterator[Structure]:
        for start in range(0, len(self), _BLOCK):
            yield from self._read(start, min(start + _BLOCK, len(self)))

    def _read(self, start: int, stop: int) -> list[Structure]:
        """Structures start..stop-1, each validated."""
        a0, a1 = int(self._offsets[start]), int(self._offsets[stop])
        atoms = {k: self._load(k, a0, a1) for k in SPECS if SPECS[k].per_atom and k in self._file}
        per = {k: self._load(k, start, stop) for k in SPECS if not SPECS[k].per_atom}
        per = {k: v for k, v in per.items() if v is not None}
        structures = []
        for j in range(stop - start):
            b0, b1 = int(self._offsets[start + j]) - a0, int(self._offsets[start + j + 1]) - a0
            has_cell = "cell" in per and (per["cell"][j].any() or per["pbc"][j].any())
            has_nacs = "nac_mask" in per and bool(per["nac_mask"][j])
            structure = Structure(
                numbers=atoms["numbers"][b0:b1].astype(np.int64),
                positions=atoms["positions"][b0:b1],
                energies=per["energies"][j],
                forces=atoms["forces"][b0:b1],
                energy_mask=per["energy_mask"][j],
                force_mask=per["force_mask"][j],
                cell=per["cell"][j] if has_cell else None,
                pbc=per["pbc"][j] if has_cell else None,
                status=str(per["status"][j]),
                error=str(per["error"][j]),
                meta=self._meta(per.get("meta"), j, start),
                nacs=atoms["nacs"][b0:b1] if has_nacs else None,
            )
            try:
                structure.validate(self.n_states, name=f"{self._name}: structure {start + j}")
            except ValueError as err:
                raise DatasetError(str(err)) from None
            structures.append(structure)
        return structures

    def _meta(self, meta: np.ndarray | None, j: int, start: int) -> dict[str, Any]:
        if meta is None or not meta[j]:
            return {}
        try:
            return json.loads(meta[j])
        except json.JSONDecodeError as err:
            name = f"{self._name}: structure {start + j}"
            raise DatasetError(f"{name}: 'meta' is not valid JSON ({err})") from None

    def _load(self, key: str, start: int, stop: int) -> np.ndarray | None:
        if key not in self._file:
            return None
        dataset = self._file[key]
        try:
            if h5py.check_string_dtype(dataset.dtype) is not None:
                return np.asarray(dataset.asstr()[start:stop], dtype=object)
            return dataset[start:stop]
        except (OSError, ValueError) as err:
            raise DatasetError(f"{self._name}: cannot read {key!r} (corrupted? {err})") from None

    def arrays(self, validate: bool = True) -> dict[str, np.ndarray]:
        """Every array in memory: the fast path for training.

        Returns a dict with ``offsets`` (n_struct+1,), ``numbers`` (n_atoms_total,) int64,
        ``positions`` (n_atoms_total, 3) Angstrom, ``forces`` (n_atoms_total, S, 3)
        eV/Angstrom, ``energies`` (n_struct, S) eV, ``energy_mask`` / ``force_mask``
        (n_struct, S) bool, ``status`` / ``error`` / ``meta`` (n_struct,) str, and where present
        ``cell`` (n_struct, 3, 3), ``pbc`` (n_struct, 3), ``nacs`` (n_atoms_total, S, S, 3),
        ``nac_mask`` (n_struct,). With ``validate`` the values are checked first.
        """
        n, n_atoms = len(self), int(self._offsets[-1])
        out: dict[str, Any] = {"offsets": self._offsets.copy()}
        for key, spec in SPECS.items():
            value = self._load(key, 0, n_atoms if spec.per_atom else n)
            if value is not None:
                out[key] = value
        out["numbers"] = out["numbers"].astype(np.int64)
        for key in ("status", "error", "meta"):
            if key in out:
                out[key] = out[key].astype(str)
        if validate:
            check_contents(out, self._name)
        return out

    def validate(self) -> None:
        """Check every value in the file (the layout was checked when it was opened)."""
        self.arrays(validate=True)

    def summary(self) -> dict[str, Any]:
        """Counts for a quick look (``fusionff info``): structures, atoms, elements, statuses
        and, per state, how many structures have energies and forces."""
        arrays = self.arrays(validate=False)
        statuses, counts = np.unique(arrays["status"], return_counts=True)
        return {
            "path": self._name,
            "n_structures": len(self),
            "n_atoms": int(self._offsets[-1]),
            "n_states": self.n_states,
            "method": self.method,
            "elements": sorted(int(z) for z in np.unique(arrays["numbers"])),
            "status": {str(k): int(v) for k, v in zip(statuses, counts, strict=True)},
            "energies_per_state": arrays["energy_mask"].sum(axis=0).tolist(),
            "forces_per_state": arrays["force_mask"].sum(axis=0).tolist(),
        }


def _repair(path: Path) -> None:
    """Drop rows that an interrupted append (of a file written before appends became
    transactions) left beyond the committed offsets."""
    try:
        with h5_transaction(path) as f:
            n_states, *_ = read_header(f, str(path))
            check_layout(f, str(path), n_states, repair=True)
    except OSError as err:
        raise DatasetError(f"{path}: not a readable HDF5 file ({err})") from None


def _create_array(f: h5py.File, key: str, n_states: int, n_rows: int = 0) -> None:
    """An empty (or zero/False-filled, ``n_rows`` long) resizable, compressed array."""
    spec = SPECS[key]
    tail = spec.shape_tail(n_states)
    chunk_rows = _CHUNK_ATOMS if spec.per_atom else _CHUNK_STRUCTS
    filters = {"compression": "gzip", "shuffle": True, "fletcher32": True}  # checksummed
    compress = {} if spec.dtype is STRING else filters
    dataset = f.create_dataset(
        key,
        shape=(n_rows, *tail),
        maxshape=(None, *tail),
        dtype=spec.dtype,
        chunks=(chunk_rows, *tail),
        **compress,
    )
    if n_rows and spec.dtype is STRING:
        dataset[...] = ""


def _append_rows(dataset: h5py.Dataset, start: int, values: np.ndarray | list) -> None:
    stop = start + len(values)
    if dataset.shape[0] != start:
        dataset.resize(start, axis=0)  # drop an uncommitted tail (never committed rows)
    dataset.resize(stop, axis=0)
    dataset[start:stop] = values


def _rows(structures: list[Structure], n_states: int) -> dict[str, Any]:
    """The rows a block of validated structures adds to each array (masked labels -> 0)."""
    s = n_states
    energies = np.zeros((len(structures), s))
    energy_mask = np.zeros((len(structures), s), bool)
    force_mask = np.zeros((len(structures), s), bool)
    forces, numbers, positions, nacs = [], [], [], []
    cells, pbcs, nac_mask = [], [], []
    any_cell = any(st.cell is not None or st.pbc is not None for st in structures)
    any_nacs = any(st.nacs is not None for st in structures)
    for k, st in enumerate(structures):
        emask, fmask = st.masks(s)
        energy_mask[k], force_mask[k] = emask, fmask
        if st.energies is not None:
            energies[k, emask] = np.asarray(st.energies, np.float64)[emask]
        f = np.zeros((st.n_atoms, s, 3))
        if st.forces is not None:
            f[:, fmask] = np.asarray(st.forces, np.float64)[:, fmask]
        forces.append(f)
        numbers.append(np.asarray(st.numbers, np.int16))
        positions.append(np.asarray(st.positions, np.float64))
        if any_cell:
            cells.append(np.zeros((3, 3)) if st.cell is None else np.asarray(st.cell, float))
            pbcs.append(np.zeros(3, bool) if st.pbc is None else np.asarray(st.pbc, bool))
        if any_nacs:
            has = st.nacs is not None
            nacs.append(np.asarray(st.nacs, float) if has else np.zeros((st.n_atoms, s, s, 3)))
            nac_mask.append(has)
    rows: dict[str, Any] = {
        "numbers": np.concatenate(numbers),
        "positions": np.concatenate(positions),
        "forces": np.concatenate(forces),
        "energies": energies,
        "energy_mask": energy_mask,
        "force_mask": force_mask,
        "status": [st.status for st in structures],
        "error": [st.error for st in structures],
        "meta": [_meta_json(st.meta) for st in structures],
    }
    if any_cell:
        rows["cell"], rows["pbc"] = np.stack(cells), np.stack(pbcs)
    if any_nacs:
        rows["nacs"], rows["nac_mask"] = np.concatenate(nacs), np.array(nac_mask)
    return rows


def _meta_json(meta: dict[str, Any]) -> str:
    """JSON text of a structure's meta ("" when empty); numpy scalars and arrays allowed."""

    def plain(value: object) -> object:
        if isinstance(value, np.generic | np.ndarray):
            return value.tolist()
        raise TypeError(f"{type(value).__name__} {value!r} is not JSON-serialisable")

    return json.dumps(meta, sort_keys=True, default=plain) if meta else ""
