"""Labelled structures in memory, their neighbour lists, and batches for the model.

Datasets are read once (:meth:`MultiStateDataset.arrays`); structures whose status is
"failed" or that carry no label at all are skipped. Neighbour lists are computed once per
structure (positions do not change during training) and a batch is assembled by
concatenating atoms and edges with offsets into one :class:`fusionff.data.graph.Graph`.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from ase.data import atomic_numbers, chemical_symbols

from fusionff.data.dataset import MultiStateDataset
from fusionff.data.graph import Graph
from fusionff.data.neighbors import neighbor_list


@dataclass
class Labels:
    """Reference labels of B structures (n atoms in all), as tensors.

    Attributes:
        energies: (B, S) eV (0 where unlabelled).
        energy_mask: (B, S) bool.
        forces: (n, S, 3) eV/Angstrom (0 where unlabelled).
        force_mask: (n, S) bool, the structure's force mask repeated over its atoms.
        n_atoms: (B,) atoms per structure (floating, for per-atom energies).
        nacs: (n, S, S, 3) 1/Angstrom reference couplings (0 where unlabelled), or None when
            the data have none.
        nac_mask: (B,) bool, True where the structure's couplings are labelled (None with
            ``nacs``).
    """

    energies: torch.Tensor
    energy_mask: torch.Tensor
    forces: torch.Tensor
    force_mask: torch.Tensor
    n_atoms: torch.Tensor
    nacs: torch.Tensor | None = None
    nac_mask: torch.Tensor | None = None


@dataclass
class TrainingData:
    """Usable structures of one or more dataset files, flat and ragged like the file format.

    Attributes:
        paths: the dataset files.
        n_states: S.
        ids: (n_struct,) row of each structure in the files taken one after another.
        atom_offsets: (n_struct + 1,) structure i owns atoms ``atom_offsets[i]:[i+1]``.
        numbers: (n_atoms,) atomic numbers.
        positions: (n_atoms, 3) Angstrom.
        energies, energy_mask: (n_struct, S) eV, bool.
        forces: (n_atoms, S, 3) eV/Angstrom.
        force_mask: (n_struct, S) bool.
        nacs: (n_atoms, S, S, 3) 1/Angstrom non-adiabatic couplings d_ij = <i|grad j> (0 where
            unlabelled), or None when no file has couplings.
        nac_mask: (n_struct,) bool, True where a structure's couplings are labelled (None with
            ``nacs``); structures of files without couplings are False.
        r_max: cutoff of the neighbour lists, Angstrom.
        edge_offsets: (n_struct + 1,) structure i owns edges ``edge_offsets[i]:[i+1]``.
        senders, receivers: (n_edges,) atom indices local to their structure.
        shifts: (n_edges, 3) Angstrom.
        n_skipped: structures left out (failed or unlabelled).
        file_rows: structures in each file (usable or not).
    """

    paths: list[str]
    n_states: int
    ids: np.ndarray
    atom_offsets: np.ndarray
    numbers: np.ndarray
    positions: np.ndarray
    energies: np.ndarray
    energy_mask: np.ndarray
    forces: np.ndarray
    force_mask: np.ndarray
    r_max: float
    edge_offsets: np.ndarray
    senders: np.ndarray
    receivers: np.ndarray
    shifts: np.ndarray
    n_skipped: int
    file_rows: list[int]
    nacs: np.ndarray | None = None
    nac_mask: np.ndarray | None = None

    def __len__(self) -> int:
        return self.ids.size

    @property
    def has_nacs(self) -> bool:
        """Whether any structure has labelled couplings."""
        return self.nac_mask is not None and bool(self.nac_mask.any())

    @property
    def n_atoms(self) -> np.ndarray:
        """(n_struct,) atoms per structure."""
        return np.diff(self.atom_offsets)

    def elements(self) -> list[str]:
        """Chemical symbols present, ordered by atomic number."""
        return [chemical_symbols[z] for z in np.unique(self.numbers)]

    def atom_indices(self, indices: np.ndarray) -> np.ndarray:
        """Flat atom indices of the structures ``indices``, in that order."""
        return _ranges(self.atom_offsets, indices)

    def check_elements(self, elements: list[str]) -> None:
        """ValueError naming the first structure with an element outside ``elements``."""
        unknown = [s for s in elements if s not in atomic_numbers]
        if unknown:
            raise ValueError(f"unknown chemical symbol {unknown[0]!r} in elements {elements}")
        known = np.array([atomic_numbers[s] for s in elements])
        bad = np.flatnonzero(~np.isin(self.numbers, known))
        if bad.size:
            atom = int(bad[0])
            i = int(np.searchsorted(self.atom_offsets, atom, side="right") - 1)
            symbol = chemical_symbols[int(self.numbers[atom])]
            raise ValueError(
                f"{self.describe(i)}: atom {atom - self.atom_offsets[i]} is {symbol}, which is not "
                f"among the model's elements {elements}"
            )

    def mask_forces_above(self, limit: float) -> list[int]:
        """Mark the force labels of a structure's state as missing where an atom's force in
        that state is larger than ``limit`` (eV/Angstrom); returns how many per state."""
        norms = np.linalg.norm(self.forces, axis=-1)  # (n_atoms, S)
        largest = np.maximum.reduceat(norms, self.atom_offsets[:-1], axis=0)  # (n_struct, S)
        too_large = self.force_mask & (largest > limit)
        self.force_mask = self.force_mask & ~too_large
        return [int(n) for n in too_large.sum(axis=0)]

    def find_labels(
        self, path: str | os.PathLike, position_tol: float = 1e-4, energy_tol: float = 1e-3
    ) -> tuple[np.ndarray, int]:
        """The structures that carry the labels listed in an extended XYZ file (see
        ``TrainConfig.exclude``): (sorted indices into this data, number of listed labels
        that match none). Raises ValueError naming the frame when one has no ``energies``
        or a number of them other than the data's states."""
        from ase.io import read

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"label list (exclude or release): no file {path}")
        found: set[int] = set()
        unmatched = 0
        sizes = np.diff(self.atom_offsets)
        for k, frame in enumerate(read(path, index=":")):
            energies = frame.info.get("energies")
            if energies is None or np.size(energies) != self.n_states:
                raise ValueError(
                    f"{path} frame {k}: info 'energies' must hold the label's {self.n_states} "
                    f"state energies (eV), got {energies!r}"
                )
            energies = np.asarray(energies, dtype=float).reshape(self.n_states)
            hits = []
            for i in np.flatnonzero(sizes == len(frame)):
                a, b = self.atom_offsets[i], self.atom_offsets[i + 1]
                if not np.array_equal(self.numbers[a:b], frame.numbers):
                    continue
                if np.abs(self.positions[a:b] - frame.positions).max() > position_tol:
                    continue
                both = np.isfinite(energies) & self.energy_mask[i]
                if np.all(np.abs(self.energies[i][both] - energies[both]) <= energy_tol):
                    hits.append(int(i))
            found.update(hits)
            unmatched += not hits
        return np.array(sorted(found), dtype=np.int64), unmatched

    def source(self, i: int) -> tuple[str, int]:
        """(file, row in that file) of structure ``i``."""
        row, k = int(self.ids[i]), 0
        for path, n in zip(self.paths, self.file_rows, strict=True):
            if row < k + n:
                return str(path), row - k
            k += n
        raise IndexError(f"structure {i}: row {row} lies beyond the files' {k} rows")

    def describe(self, i: int) -> str:
        """'<file>: structure <k>' for structure ``i``."""
        path, row = self.source(i)
        return f"{path}: structure {row}"

    def labels(self, indices: np.ndarray, dtype: torch.dtype, device: torch.device) -> Labels:
        """The labels of structures ``indices`` as tensors."""
        atoms = self.atom_indices(indices)
        counts = self.n_atoms[indices]
        nacs = nac_mask = None
        if self.nacs is not None:
            nacs = torch.as_tensor(self.nacs[atoms], dtype=dtype, device=device)
            nac_mask = torch.as_tensor(self.nac_mask[indices], device=device)
        return Labels(
            energies=torch.as_tensor(self.energies[indices], dtype=dtype, device=device),
            energy_mask=torch.as_tensor(self.energy_mask[indices], device=device),
            forces=torch.as_tensor(self.forces[atoms], dtype=dtype, device=device),
            force_mask=torch.as_tensor(
                np.repeat(self.force_mask[indices], counts, axis=0), device=device
            ),
            n_atoms=torch.as_tensor(counts, dtype=dtype, device=device),
            nacs=nacs,
            nac_mask=nac_mask,
        )

    def graph(self, indices: np.ndarray, dtype: torch.dtype, device: torch.device) -> Graph:
        """One graph of structures ``indices`` (their precomputed edges, offset and joined)."""
        atoms = self.atom_indices(indices)
        edges = _ranges(self.edge_offsets, indices)
        counts = self.n_atoms[indices]
        node_start = np.concatenate([[0], np.cumsum(counts)[:-1]])
        edge_counts = np.diff(self.edge_offsets)[indices]
        edge_shift = np.repeat(node_start, edge_counts)
        edge_index = np.stack(
            [self.senders[edges] + edge_shift, self.receivers[edges] + edge_shift]
        )
        return Graph(
            numbers=torch.as_tensor(self.numbers[atoms], device=device),
            positions=torch.as_tensor(self.positions[atoms], dtype=dtype, device=device),
            batch=torch.as_tensor(np.repeat(np.arange(len(indices)), counts), device=device),
            edge_index=torch.as_tensor(edge_index, device=device),
            shifts=torch.as_tensor(self.shifts[edges], dtype=dtype, device=device),
            n_graphs=len(indices),
        )


def load_training_data(paths: list[str | os.PathLike], r_max: float) -> TrainingData:
    """Read dataset files into memory and compute every structure's neighbour list.

    Couplings (``nacs``, ``nac_mask``) are read where a file has them; when only some files
    do, the structures of the others count as unlabelled couplings.

    Raises FileNotFoundError for a missing file, ValueError when files disagree on the
    number of states or no usable structure remains.
    """
    parts, n_states, row0, n_skipped = [], None, 0, 0
    for path in map(str, paths):
        if not Path(path).is_file():
            raise FileNotFoundError(f"dataset file not found: {path}")
        with MultiStateDataset.open(path) as ds:
            arrays = ds.arrays()
            s = ds.n_states
        if n_states is not None and s != n_states:
            raise ValueError(f"{path} has {s} states but {paths[0]} has {n_states}")
        n_states = s
        labelled = arrays["energy_mask"].any(axis=1) | arrays["force_mask"].any(axis=1)
        usable = labelled & (arrays["status"] != "failed")
        n_skipped += int((~usable).sum())
        parts.append((arrays, np.flatnonzero(usable), row0))
        row0 += usable.size
    if not any(keep.size for _, keep, _ in parts):
        raise ValueError(f"no labelled structures in {[str(p) for p in paths]}")
    return _concatenate(parts, [str(p) for p in paths], int(n_states), n_skipped, float(r_max))


def _concatenate(parts, paths, n_states, n_skipped, r_max) -> TrainingData:
    cols: dict[str, list[np.ndarray]] = {
        k: []
        for k in ("ids", "numbers", "positions", "energies", "energy_mask", "forces", "force_mask")
    }
    counts, senders, receivers, shifts, edge_counts = [], [], [], [], []
    for arrays, keep, row0 in parts:
        offsets = arrays["offsets"]
        atoms = _ranges(offsets, keep)
        cols["ids"].append(keep + row0)
        for key in ("numbers", "positions", "forces"):
            cols[key].append(arrays[key][atoms])
        for key in ("energies", "energy_mask", "force_mask"):
            cols[key].append(arrays[key][keep])
        for i in keep:
            x = arrays["positions"][offsets[i] : offsets[i + 1]]
            cell = arrays["cell"][i] if "cell" in arrays else None
            pbc = arrays["pbc"][i] if "pbc" in arrays else None
            recv, send, shift = neighbor_list(x, r_max, cell, pbc)
            counts.append(len(x))
            receivers.append(recv)
            senders.append(send)
            shifts.append(shift)
            edge_counts.append(len(recv))
    joined = {k: np.concatenate(v) for k, v in cols.items()}
    if any("nacs" in arrays for arrays, _, _ in parts):
        joined["nacs"], joined["nac_mask"] = _joined_couplings(parts, n_states)
    return TrainingData(
        paths=paths,
        n_states=n_states,
        atom_offsets=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
        r_max=r_max,
        edge_offsets=np.concatenate([[0], np.cumsum(edge_counts)]).astype(np.int64),
        senders=np.concatenate(senders).astype(np.int64),
        receivers=np.concatenate(receivers).astype(np.int64),
        shifts=np.concatenate(shifts).reshape(-1, 3),
        n_skipped=n_skipped,
        file_rows=[arrays["energies"].shape[0] for arrays, _, _ in parts],
        **joined,
    )


def _joined_couplings(parts, n_states: int) -> tuple[np.ndarray, np.ndarray]:
    """Couplings (n_atoms, S, S, 3) and their mask (n_struct,) of the kept structures of every
    file, zeros and False for files without couplings."""
    nacs, mask = [], []
    for arrays, keep, _ in parts:
        atoms = _ranges(arrays["offsets"], keep)
        if "nacs" in arrays:
            nacs.append(arrays["nacs"][atoms])
            mask.append(arrays["nac_mask"][keep].astype(bool))
        else:
            nacs.append(np.zeros((atoms.size, n_states, n_states, 3)))
            mask.append(np.zeros(keep.size, dtype=bool))
    return np.concatenate(nacs), np.concatenate(mask)


def _ranges(offsets: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """Concatenation of ``arange(offsets[i], offsets[i+1])`` for i in ``indices``."""
    indices = np.asarray(indices, dtype=np.int64)
    starts, stops = offsets[indices], offsets[indices + 1]
    lengths = stops - starts
    if lengths.sum() == 0:
        return np.zeros(0, dtype=np.int64)
    first = np.repeat(starts - np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths)
    return first + np.arange(lengths.sum())


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 hex digest of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
