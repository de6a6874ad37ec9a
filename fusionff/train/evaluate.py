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
    """energies (B, S) eV, forces (n, S, 3) eV/Angstrom and, when predicted, couplings
    ``nacs`` (n, S, S, 3) 1/Angstrom of B structures, as tensors; models with ``couplings:
    outer`` also ``nac_outer`` (M, P, 3, 3) 1/Angstrom^2 (D = d d^T over the atom pairs of
    :func:`fusionff.nn.outer_couplings.structure_pairs`)."""

    energies: torch.Tensor
    forces: torch.Tensor
    nacs: torch.Tensor | None = None
    nac_outer: torch.Tensor | None = None


def predict(
    model: MultiStateMACE,
    data: TrainingData,
    indices: np.ndarray,
    batch_size: int,
    couplings: bool | None = None,
) -> Predictions:
    """Energies, forces and (``couplings``) couplings of the structures ``indices``, in
    batches, on the model's device. ``couplings=None``: where the model gives couplings and
    the data have some."""
    if couplings is None:
        couplings = model.provides_nacs and data.has_nacs
    energies, forces, nacs, outer = [], [], [], []
    for start in range(0, len(indices), batch_size):
        chunk = indices[start : start + batch_size]
        graph = data.graph(chunk, model.dtype, model.device)
        with torch.enable_grad():
            out = model(graph, compute_forces=True, training=False, compute_couplings=couplings)
        energies.append(out["energies"].detach())
        forces.append(out["forces"].detach())
        if couplings:
            nacs.append(out["nacs"].detach())
        if "nac_outer" in out:
            outer.append(out["nac_outer"].detach())
    s, opts = model.n_states, dict(dtype=model.dtype, device=model.device)
    if not energies:
        empty = torch.zeros(0, s, s, 3, **opts) if couplings else None
        with_outer = couplings and model.config.couplings == "outer"
        empty_outer = torch.zeros(0, s * (s - 1) // 2, 3, 3, **opts) if with_outer else None
        return Predictions(
            torch.zeros(0, s, **opts), torch.zeros(0, s, 3, **opts), empty, empty_outer
        )
    return Predictions(
        torch.cat(energies),
        torch.cat(forces),
        torch.cat(nacs) if nacs else None,
        torch.cat(outer) if outer else None,
    )


def metrics_of(
    data: TrainingData,
    indices: np.ndarray,
    predictions: Predictions,
    gap_edges: list[float] | None = None,
) -> dict[str, Any]:
    """:func:`compute_metrics` of predictions for the structures ``indices`` (``gap_edges``:
    also per bin of the reference gap, eV)."""
    atoms = data.atom_indices(indices)
    couplings = {}
    if predictions.nacs is not None and data.nacs is not None:
        couplings = {
            "pred_nacs": predictions.nacs.cpu().numpy(),
            "ref_nacs": data.nacs[atoms],
            "nac_mask": data.nac_mask[indices],
        }
    return compute_metrics(
        predictions.energies.cpu().numpy(),
        data.energies[indices],
        data.energy_mask[indices],
        data.n_atoms[indices],
        predictions.forces.cpu().numpy(),
        data.forces[atoms],
        data.force_mask[indices],
        gap_edges=gap_edges,
        **couplings,
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
    gap_edges: list[float] | None = None,
) -> dict[str, Any]:
    """Metrics of ``model`` on the structures ``indices`` of ``data`` (default: all);
    ``gap_edges`` (eV): also per bin of the reference gap."""
    check_compatible(model, data)
    indices = np.arange(len(data)) if indices is None else np.asarray(indices)
    return metrics_of(data, indices, predict(model, data, indices, batch_size), gap_edges)


def mean_predictions(each: list[Predictions]) -> Predictions:
    """The members' mean energies and forces, in float64 on the CPU (one member: its own
    predictions); couplings are left out (members' couplings carry signs of their own)."""
    return Predictions(
        torch.stack([p.energies.double().cpu() for p in each]).mean(0),
        torch.stack([p.forces.double().cpu() for p in each]).mean(0),
    )


def evaluate_committee(
    models: list[MultiStateMACE],
    data: TrainingData,
    indices: np.ndarray | None = None,
    batch_size: int = 16,
    gap_edges: list[float] | None = None,
) -> dict[str, Any]:
    """Metrics of a committee's mean energies and forces (what
    :class:`fusionff.dynamics.ml.MLElectronicStructure` gives the dynamics) on the structures
    ``indices`` of ``data``, with each member's own metrics under ``"members"``. Couplings are
    not scored here (members' couplings carry signs of their own); ``gap_edges`` (eV): the
    committee's errors also per bin of the reference gap."""
    for model in models:
        check_compatible(model, data)
    indices = np.arange(len(data)) if indices is None else np.asarray(indices)
    each = [predict(model, data, indices, batch_size, couplings=False) for model in models]
    return metrics_of(data, indices, mean_predictions(each), gap_edges) | {
        "members": [metrics_of(data, indices, p) for p in each]
    }
