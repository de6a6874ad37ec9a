"""Import multi-state labels from extended XYZ, the xxMD layout and ASE databases; export back.

Key names (units eV and eV/Angstrom, as in the dataset):

* **extended XYZ** (one file, S states): per-frame info keys ``energy_0 .. energy_{S-1}`` and
  per-atom arrays ``forces_0 .. forces_{S-1}``; a missing key means a missing label. Optional
  info keys ``n_states`` (S, when the last states are unlabelled), ``status`` and ``error``.
  Every other scalar info key goes to :attr:`Structure.meta`. A file with only the usual
  single-state ``energy`` / ``forces`` is read as one state. Written with ASE's extxyz writer
  (positions and forces with 8 decimals, energies in full precision).
* **xxMD** (Pengmei, Liu, Shu 2024): one extended-XYZ file per state with the same frames, e.g.
  ``xxMD-CASSCF/sti/s0/sti_s0/sti_train_s0.xyz``, ``.../s1/sti_s1/sti_train_s1.xyz``, each frame
  with ``energy`` (eV) and ``forces`` (eV/Angstrom) of that state. :func:`read_xxmd` merges
  them and checks that the files agree frame by frame.
* **ASE database**: per row, ``data["energies"]`` (S,) and ``data["state_forces"]`` (S, N, 3)
  (the layout of ``FusionCalculator.results``), optional ``data["energy_mask"]`` /
  ``data["force_mask"]`` (S,) bool, key-value pairs ``n_states``, ``status``, ``error``;
  alternatively key-value pairs ``energy_<k>`` with ``data["forces_<k>"]``; or, for one
  state, the row's own calculator energy and forces.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import ase
import ase.db
import ase.io
import numpy as np

from fusionff.data.dataset import MultiStateDataset
from fusionff.data.structure import Structure

PathLike = str | Path
_ENERGY_KEY = re.compile(r"^energy_(\d+)$")
_FORCES_KEY = re.compile(r"^forces_(\d+)$")
_RESERVED_INFO = ("n_states", "status", "error", "energy", "forces")
XYZ_SUFFIXES = (".xyz", ".extxyz")
DB_SUFFIXES = (".db", ".json", ".aselmdb")
H5_SUFFIXES = (".h5", ".hdf5")


# ---------------------------------------------------------------------- extended XYZ
def read_extxyz(path: PathLike, n_states: int | None = None) -> list[Structure]:
    """Read every frame of an extended-XYZ file with per-state labels (see module docstring).

    Args:
        path: the file.
        n_states: S; None to infer it (the largest state index found, plus one).
    """
    frames = _read_frames(path)
    labels = [_frame_labels(atoms, f"{path}: frame {i}") for i, atoms in enumerate(frames)]
    if n_states is None:
        pairs = zip(labels, frames, strict=True)
        n_states = max((_count_states(e, f, atoms.info) for (e, f), atoms in pairs), default=1)
    structures = []
    for i, (atoms, (energies, forces)) in enumerate(zip(frames, labels, strict=True)):
        meta = _meta(atoms.info, source=str(path), frame=i)
        structures.append(
            _assemble(atoms, energies, forces, n_states, f"{path}: frame {i}", atoms.info, meta)
        )
    return structures


def write_extxyz(path: PathLike, structures: Sequence[Structure]) -> None:
    """Write structures as extended XYZ with ``energy_k`` / ``forces_k`` for labelled states."""
    frames = []
    for structure in structures:
        atoms = structure.to_atoms()
        s = structure.n_states or 0
        energy_mask, force_mask = structure.masks(s)
        for k in range(s):
            if energy_mask[k]:
                atoms.info[f"energy_{k}"] = float(structure.energies[k])
            if force_mask[k]:
                atoms.arrays[f"forces_{k}"] = np.asarray(structure.forces[:, k], np.float64)
        atoms.info["n_states"] = s
        atoms.info["status"] = structure.status
        if structure.error:
            atoms.info["error"] = structure.error
        for key, value in structure.meta.items():
            if key not in atoms.info and key not in ("source", "frame"):
                if isinstance(value, str | int | float | bool):
                    atoms.info[key] = value
        frames.append(atoms)
    ase.io.write(path, frames, format="extxyz")


# ---------------------------------------------------------------------- xxMD
def find_xxmd_files(directory: PathLike, split: str | None = None) -> list[Path]:
    """The per-state files of one split under an xxMD directory, ordered by state.

    Files are found recursively by the xxMD naming ``<molecule>_<split>_s<k>.xyz``.
    """
    pattern = re.compile(r"^(?P<mol>[A-Za-z0-9]+)_(?P<split>[A-Za-z0-9]+)_s(?P<k>\d+)\.xyz$")
    found: dict[tuple[str, str], dict[int, Path]] = {}
    for file in sorted(Path(directory).rglob("*.xyz")):
        m = pattern.match(file.name)
        if m and (split is None or m["split"] == split):
            states = found.setdefault((m["mol"], m["split"]), {})
            if int(m["k"]) in states:
                raise ValueError(f"xxMD: {states[int(m['k'])]} and {file} are both state {m['k']}")
            states[int(m["k"])] = file
    if not found:
        what = f" for split {split!r}" if split else ""
        raise FileNotFoundError(f"{directory}: no xxMD files <mol>_<split>_s<k>.xyz{what}")
    if len(found) > 1:
        names = ", ".join(f"{mol}_{sp}" for mol, sp in sorted(found))
        raise ValueError(f"{directory}: several xxMD sets ({names}); choose one with split=")
    (states,) = found.values()
    if sorted(states) != list(range(len(states))):
        raise ValueError(f"{directory}: xxMD states {sorted(states)} are not 0..{len(states) - 1}")
    return [states[k] for k in range(len(states))]


def read_xxmd(
    paths: PathLike | Sequence[PathLike],
    *,
    split: str | None = None,
    position_tolerance: float = 1e-6,
    truncate: bool = False,
) -> list[Structure]:
    """Merge xxMD per-state files (one per state, same frames) into S-state structures.

    Args:
        paths: the files in state order (file k holds state k), or a directory searched with
            :func:`find_xxmd_files`.
        split: with a directory, which split to read ("train", "val", "test").
        position_tolerance: Angstrom; the frames of all files must agree this well.
        truncate: keep only the frames all files have (with a warning) instead of raising
            when the files have different lengths (some published xxMD files are cut short).
    """
    if isinstance(paths, str | Path) and Path(paths).is_dir():
        files = find_xxmd_files(paths, split)
    else:
        files = [Path(paths)] if isinstance(paths, str | Path) else [Path(p) for p in paths]
    per_state = [_read_frames(file) for file in files]
    n_frames = [len(frames) for frames in per_state]
    if len(set(n_frames)) > 1:
        counts = ", ".join(f"{f.name}: {n}" for f, n in zip(files, n_frames, strict=True))
        if not truncate:
            raise ValueError(f"xxMD: the files have different numbers of frames ({counts})")
        warnings.warn(f"xxMD: keeping the first {min(n_frames)} frames ({counts})", stacklevel=2)
    s = len(files)
    structures = []
    for i in range(min(n_frames)):
        reference = per_state[0][i]
        energies, forces = {}, {}
        for k, (file, frames) in enumerate(zip(files, per_state, strict=True)):
            atoms = frames[i]
            where = f"xxMD: frame {i} of {file.name}"
            _check_same_frame(reference, atoms, where, files[0].name, position_tolerance)
            e, f = _frame_labels(atoms, where)
            if 0 not in e or 0 not in f or len(e) != 1 or len(f) != 1:
                raise ValueError(f"{where}: expected one 'energy' and 'forces', found {e} {f}")
            energies[k], forces[k] = e[0], f[0]
        meta = {"source": str(files[0]), "frame": i}
        structures.append(_assemble(reference, energies, forces, s, f"xxMD frame {i}", {}, meta))
    return structures


def _check_same_frame(
    reference: ase.Atoms, atoms: ase.Atoms, where: str, reference_name: str, tolerance: float
) -> None:
    if not np.array_equal(reference.numbers, atoms.numbers):
        raise ValueError(
            f"{where}: atomic numbers {atoms.get_chemical_formula()} disagree with "
            f"{reference_name} ({reference.get_chemical_formula()})"
        )
    deviation = np.abs(reference.positions - atoms.positions).max(axis=1)
    if deviation.max() > tolerance:
        atom = int(deviation.argmax())
        raise ValueError(
            f"{where}: positions disagree with {reference_name} by {deviation[atom]:.3g} "
            f"Angstrom at atom {atom} (tolerance {tolerance:g})"
        )


# ---------------------------------------------------------------------- ASE database
def read_ase_db(
    path: PathLike, n_states: int | None = None, selection: Any = None
) -> list[Structure]:
    """Read the rows of an ASE database (see module docstring for where labels live)."""
    structures: list[Structure] = []
    rows = list(ase.db.connect(str(path)).select(selection))
    parsed = [_row_labels(row) for row in rows]
    if n_states is None:
        pairs = zip(parsed, rows, strict=True)
        n_states = max(
            (_count_states(e, f, row.key_value_pairs) for (e, f), row in pairs), default=1
        )
    for row, (energies, forces) in zip(rows, parsed, strict=True):
        where = f"{path}: row id={row.id}"
        info = dict(row.key_value_pairs)
        meta = _meta(info, source=str(path), row_id=row.id)
        structures.append(_assemble(row.toatoms(), energies, forces, n_states, where, info, meta))
    return structures


def write_ase_db(path: PathLike, structures: Sequence[Structure]) -> None:
    """Append structures to an ASE database in the layout :func:`read_ase_db` reads."""
    with ase.db.connect(str(path)) as db:
        for structure in structures:
            s = structure.n_states or 0
            energy_mask, force_mask = structure.masks(s)
            n = structure.n_atoms
            energies = np.full(s, np.nan) if structure.energies is None else structure.energies
            forces = np.full((n, s, 3), np.nan) if structure.forces is None else structure.forces
            data = {
                "energies": np.where(energy_mask, energies, np.nan),
                "state_forces": np.where(
                    force_mask[:, None, None], forces.transpose(1, 0, 2), np.nan
                ),
                "energy_mask": energy_mask,
                "force_mask": force_mask,
            }
            kvp = {"n_states": s, "status": structure.status}
            if structure.error:
                kvp["error"] = structure.error
            db.write(structure.to_atoms(), key_value_pairs=kvp, data=data)


def _row_labels(row: Any) -> tuple[dict[int, float], dict[int, np.ndarray]]:
    """Per-state labels of one database row (states masked out in the row are left out)."""
    data = row.data
    if "energies" in data or "state_forces" in data:
        energies = dict(enumerate(np.atleast_1d(data.get("energies", [])).astype(float)))
        forces = dict(enumerate(np.asarray(data.get("state_forces", []), float)))
        for key, labels in (("energy_mask", energies), ("force_mask", forces)):
            for k in np.flatnonzero(~np.asarray(data.get(key, np.ones(len(labels))), bool)):
                labels.pop(int(k), None)
        return energies, forces
    kvp = row.key_value_pairs
    energies = {int(m[1]): float(v) for k, v in kvp.items() if (m := _ENERGY_KEY.match(k))}
    forces = {int(m[1]): np.asarray(v) for k, v in data.items() if (m := _FORCES_KEY.match(k))}
    if not energies and not forces:
        energies = {0: float(row.energy)} if row.get("energy") is not None else {}
        forces = {0: np.asarray(row.forces)} if row.get("forces") is not None else {}
    return energies, forces


# ---------------------------------------------------------------------- dispatch
def import_any(path_or_paths: PathLike | Sequence[PathLike], **kwargs: Any) -> list[Structure]:
    """Read structures from any supported source, chosen by suffix.

    A sequence of several ``.xyz`` files, or a directory, is read as the xxMD layout
    (:func:`read_xxmd`); one ``.xyz``/``.extxyz`` file with :func:`read_extxyz`;
    ``.db``/``.json``/``.aselmdb`` with :func:`read_ase_db`; ``.h5``/``.hdf5`` as a fusionff
    dataset. Keyword arguments go to the reader.
    """
    if not isinstance(path_or_paths, str | Path):
        paths = [Path(p) for p in path_or_paths]
        if len(paths) == 1:
            return import_any(paths[0], **kwargs)
        if all(p.suffix in XYZ_SUFFIXES for p in paths):
            return read_xxmd(paths, **kwargs)
        raise ValueError(f"several files are read only as xxMD .xyz files, got {paths}")
    path = Path(path_or_paths)
    if path.is_dir():
        return read_xxmd(path, **kwargs)
    suffix = path.suffix.lower()
    if suffix in XYZ_SUFFIXES:
        return read_extxyz(path, **kwargs)
    if suffix in DB_SUFFIXES:
        return read_ase_db(path, **kwargs)
    if suffix in H5_SUFFIXES:
        with MultiStateDataset.open(path) as ds:
            return list(ds)
    known = XYZ_SUFFIXES + DB_SUFFIXES + H5_SUFFIXES
    raise ValueError(f"{path}: unknown suffix {suffix!r}; known: {', '.join(known)}")


def import_to_dataset(
    source: PathLike | Sequence[PathLike],
    destination: PathLike,
    *,
    method: str = "",
    provenance: dict | None = None,
    overwrite: bool = False,
    **kwargs: Any,
) -> int:
    """Import ``source`` (as :func:`import_any`) into a new dataset; return the count written.

    The sources are recorded in the provenance under ``"imported_from"``.
    """
    structures = import_any(source, **kwargs)
    if not structures:
        raise ValueError(f"{source}: no structures to import")
    n_states = max(s.n_states or 1 for s in structures)
    sources = [str(source)] if isinstance(source, str | Path) else [str(p) for p in source]
    provenance = {**(provenance or {}), "imported_from": sources}
    with MultiStateDataset.create(
        destination, n_states, method=method, provenance=provenance, overwrite=overwrite
    ) as ds:
        ds.extend(structures)
        return len(ds)


# ---------------------------------------------------------------------- shared helpers
def _read_frames(path: PathLike) -> list[ase.Atoms]:
    try:
        frames = ase.io.read(path, index=":", format="extxyz")
    except FileNotFoundError:
        raise
    except Exception as err:  # ASE raises many types for malformed text
        raise ValueError(
            f"{path}: cannot read as extended XYZ ({type(err).__name__}: {err})"
        ) from err
    return list(frames)


def _frame_labels(atoms: ase.Atoms, where: str) -> tuple[dict[int, float], dict[int, np.ndarray]]:
    """Per-state labels of one frame: ({state: energy eV}, {state: (N,3) eV/Angstrom})."""
    energies = {int(m[1]): float(v) for k, v in atoms.info.items() if (m := _ENERGY_KEY.match(k))}
    forces = {int(m[1]): v for k, v in atoms.arrays.items() if (m := _FORCES_KEY.match(k))}
    if energies or forces:
        return energies, forces
    results = atoms.calc.results if atoms.calc is not None else {}
    energy = results.get("energy", atoms.info.get("energy"))
    force = results.get("forces", atoms.arrays.get("forces"))
    return (
        {0: float(energy)} if energy is not None else {},
        {0: np.asarray(force)} if force is not None else {},
    )


def _count_states(energies: dict, forces: dict, info: dict) -> int:
    """S of one frame: its declared ``n_states``, else its largest labelled state plus one."""
    declared = info.get("n_states")
    if declared is not None:
        return int(declared)
    return max([*energies, *forces], default=-1) + 1


def _assemble(
    atoms: ase.Atoms,
    energies: dict[int, float],
    forces: dict[int, np.ndarray],
    n_states: int,
    where: str,
    info: dict,
    meta: dict,
) -> Structure:
    """A validated Structure from per-state label dicts (missing states are masked out)."""
    beyond = [k for k in [*energies, *forces] if k >= n_states]
    if beyond:
        raise ValueError(f"{where}: has labels for state {max(beyond)} but n_states is {n_states}")
    n = len(atoms)
    energy_array, force_array = np.full(n_states, np.nan), np.full((n, n_states, 3), np.nan)
    for k, e in energies.items():
        energy_array[k] = e
    for k, f in forces.items():
        if np.shape(f) != (n, 3):
            raise ValueError(f"{where}: forces of state {k} have shape {np.shape(f)}, not {(n, 3)}")
        force_array[:, k] = f
    energy_mask = np.isin(np.arange(n_states), list(energies))
    force_mask = np.isin(np.arange(n_states), list(forces))
    labelled = energy_mask.any() or force_mask.any()
    structure = Structure(
        numbers=np.asarray(atoms.numbers, np.int64),
        positions=np.asarray(atoms.positions, np.float64),
        energies=energy_array,
        forces=force_array,
        energy_mask=energy_mask,
        force_mask=force_mask,
        cell=np.asarray(atoms.cell[:]) if atoms.cell.rank > 0 else None,
        pbc=np.asarray(atoms.pbc, bool) if atoms.pbc.any() else None,
        status=str(info.get("status", "ok" if labelled else "missing")),
        error=str(info.get("error", "")),
        meta=meta,
    )
    structure.validate(n_states, name=where)
    return structure


def _meta(info: dict[str, Any], **origin: Any) -> dict[str, Any]:
    """The scalar entries of ``info`` that are not labels, plus where the structure came from."""
    meta = {}
    for key, value in info.items():
        if key not in _RESERVED_INFO and not _ENERGY_KEY.match(key):
            if (value := _plain(value)) is not None:
                meta[key] = value
    return {**meta, **origin}


def _plain(value: Any) -> Any:
    """A JSON-friendly scalar, or None for values that are not scalars."""
    if isinstance(value, np.generic):
        return value.item()
    return value if isinstance(value, str | int | float | bool) else None
