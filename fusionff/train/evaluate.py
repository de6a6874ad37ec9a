"""Predictions of a model on structures of a :class:`TrainingData`, and their metrics."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from fusionff.models.multistate_mace import MultiStateMACE
from fusionff.train.data import TrainingData
from fusionff.train.metrics import compute_metrics


@dataclass
class Predictions:
    """energies (B, S) eV and forces (n, S, 3) eV/Angstrom of B structures, as tensors."""

    energies: torch.Tensor
    forces: torch.Tensor


def predict(
    model: MultiStateMACE, data: TrainingData, indices: np.ndarray, batch_size: int
) -> Predictions:
    """Energies and forces of the structures ``indices``, in batches, on the model's device."""
    energies, forces = [], []
    for start in range(0, len(indices), batch_size):
        chunk = indices[start : start + batch_size]
        graph = data.graph(chunk, model.dtype, model.device)
        with torch.enable_grad():
            out = model(graph, compute_forces=True, training=False)
        energies.append(out["energies"].detach())
        forces.append(out["forces"].detach())
    if not energies:
        s, dev = model.n_states, model.device
        return Predictions(
            torch.zeros(0, s, dtype=model.dtype, device=dev),
            torch.zeros(0, s, 3, dtype=model.dtype, device=dev),
        )
    return Predictions(torch.cat(energies), torch.cat(forces))


def metrics_of(data: TrainingData, indices: np.ndarray, predictions: Predictions) -> dict[str, Any]:
    """:func:`compute_metrics` of predictions for the structures ``indices``."""
    atoms = data.atom_indices(indices)
    return compute_metrics(
        predictions.energies.cpu().numpy(),
        data.energies[indices],
        data.energy_mask[indices],
        data.n_atoms[indices],
        predictions.forces.cpu().numpy(),
        data.forces[atoms],
        data.force_mask[indices],
    )


def check_compatible(model: MultiStateMACE, data: TrainingData) -> None:
    """ValueError when the data's number of states or elements do not fit the model."""
    if data.n_states != model.n_states:
        raise ValueError(
            f"{', '.join(data.paths)}: the data have {data.n_states} states, the model "
            f"{model.n_states}"
        )
    data.check_elements(model.elements)


def evaluate(
    model: MultiStateMACE,
    data: TrainingData,
    indices: np.ndarray | None = None,
    batch_size: int = 16,
) -> dict[str, Any]:
    """Metrics of ``model`` on the structures ``indices`` of ``data`` (default: all)."""
    check_compatible(model, data)
    indices = np.arange(len(data)) if indices is None else np.asarray(indices)
    return metrics_of(data, indices, predict(model, data, indices, batch_size))
