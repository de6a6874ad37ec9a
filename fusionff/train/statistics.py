"""Statistics of the training split that set a model's fixed parts before training.

``e0s`` (per-element, per-state reference energies by least squares), ``avg_num_neighbors``
(normalises neighbour sums), ``scale`` and ``shift`` (per-state scale and per-atom shift of the
learned interaction energy) and, for learned couplings, ``coupling_scale`` (RMS of the
reference couplings; the outer mode's D = d d^T scales with its square);
:func:`model_config_for` puts them into the model's config.
"""

from __future__ import annotations

import numpy as np
from ase.data import atomic_numbers

from fusionff.models.config import ModelConfig
from fusionff.train.config import TrainConfig
from fusionff.train.data import TrainingData


def composition(data: TrainingData, indices: np.ndarray, elements: list[str]) -> np.ndarray:
    """(len(indices), n_elements) count of each element in each structure.

    Every atom's element must be in ``elements`` (see :meth:`TrainingData.check_elements`).
    """
    column = np.full(119, -1)
    column[[atomic_numbers[s] for s in elements]] = np.arange(len(elements))
    owner = np.repeat(np.arange(len(indices)), data.n_atoms[indices])
    counts = np.zeros((len(indices), len(elements)))
    np.add.at(counts, (owner, column[data.numbers[data.atom_indices(indices)]]), 1.0)
    return counts


def fit_e0s(data: TrainingData, indices: np.ndarray, elements: list[str]) -> np.ndarray:
    """Per-element reference energies (n_elements, S) eV by least squares.

    For each state s, over the structures of ``indices`` with an energy label for s:
    ``E_s ~= sum_elements count * E0[element, s]``. Elements absent from these structures get 0
    (the minimum-norm solution also fixes the gauge when compositions are collinear).
    """
    counts = composition(data, indices, elements)
    e0 = np.zeros((len(elements), data.n_states))
    for s in range(data.n_states):
        rows = data.energy_mask[indices, s]
        if rows.any():
            e0[:, s] = np.linalg.lstsq(counts[rows], data.energies[indices, s][rows], rcond=None)[0]
    return e0


def average_num_neighbors(data: TrainingData, indices: np.ndarray) -> float:
    """Mean number of neighbours within r_max per atom of the structures ``indices`` (>0)."""
    edges = np.diff(data.edge_offsets)[indices].sum()
    atoms = data.n_atoms[indices].sum()
    return float(edges / atoms) if edges > 0 else 1.0


def scale_and_shift(
    data: TrainingData, indices: np.ndarray, elements: list[str], e0s: np.ndarray
) -> tuple[list[float], list[float]]:
    """Per-state ``scale`` (eV) and ``shift`` (eV per atom) of the learned energy.

    scale: RMS of the labelled force components (eV/Angstrom over a length of 1 Angstrom),
    or, for a state without force labels, the standard deviation of the per-atom residual
    energy ``(E - sum count*E0) / N``; 1.0 when neither is available or it is zero.
    shift: the mean per-atom residual energy (0.0 without energy labels).
    """
    counts = composition(data, indices, elements)
    n_atoms = data.n_atoms[indices]
    residual = (data.energies[indices] - counts @ e0s) / n_atoms[:, None]  # (B, S)
    atom_mask = np.repeat(data.force_mask[indices], n_atoms, axis=0)  # (n, S)
    forces = data.forces[data.atom_indices(indices)]  # (n, S, 3)
    scale, shift = [], []
    for s in range(data.n_states):
        e_rows = data.energy_mask[indices, s]
        f_rows = atom_mask[:, s]
        value = 0.0
        if f_rows.any():
            value = float(np.sqrt(np.mean(forces[f_rows, s] ** 2)))
        elif e_rows.sum() > 1:
            value = float(np.std(residual[e_rows, s]))
        scale.append(value if value > 0 else 1.0)
        shift.append(float(np.mean(residual[e_rows, s])) if e_rows.any() else 0.0)
    return scale, shift


def coupling_rms(data: TrainingData, indices: np.ndarray) -> float:
    """RMS (1/Angstrom) of the components of the labelled couplings d_ij (i < j) of the
    structures ``indices``; 1.0 when there are none or they are all zero."""
    if data.nacs is None:
        return 1.0
    labelled = indices[data.nac_mask[indices]]
    rows, cols = np.triu_indices(data.n_states, k=1)
    nacs = data.nacs[data.atom_indices(labelled)][:, rows, cols]
    value = float(np.sqrt(np.mean(nacs**2))) if nacs.size else 0.0
    return value if value > 0 else 1.0


def model_config_for(config: TrainConfig, data: TrainingData, train: np.ndarray) -> ModelConfig:
    """The model's config: the ``model`` keys, with elements, states and statistics from data.

    Raises ValueError when ``model.n_states``, ``model.elements`` or ``loss.states`` do not fit
    the data.
    """
    keys = dict(config.model)
    n_states = keys.setdefault("n_states", data.n_states)
    if n_states != data.n_states:
        raise ValueError(
            f"model.n_states is {n_states} but {', '.join(data.paths)} has {data.n_states} states"
        )
    if config.loss.states is not None and len(config.loss.states) != n_states:
        raise ValueError(f"loss.states has {len(config.loss.states)} weights for {n_states} states")
    elements = keys.setdefault("elements", data.elements())
    data.check_elements(elements)
    keys["dtype"] = config.dtype
    if "e0s" not in keys:
        e0 = fit_e0s(data, train, elements)
        keys["e0s"] = {sym: e0[k].tolist() for k, sym in enumerate(elements)}
    if "avg_num_neighbors" not in keys:
        keys["avg_num_neighbors"] = average_num_neighbors(data, train)
    if "scale" not in keys or "shift" not in keys:
        e0 = np.array([keys["e0s"].get(sym, [0.0] * n_states) for sym in elements])
        scale, shift = scale_and_shift(data, train, elements, e0)
        keys.setdefault("scale", scale)
        keys.setdefault("shift", shift)
    if keys.get("couplings") and "coupling_scale" not in keys:
        keys["coupling_scale"] = coupling_rms(data, train)
    return ModelConfig(**keys)
