"""Batched multi-state evaluation of a model: B structures in one graph, on CPU or GPU.

``Potential`` is what the ASE calculator and the dynamics use: positions in Angstrom in,
energies (eV) and forces (eV/Angstrom) of every state out; couplings (1/Angstrom) from
diabatic heads and from adiabatic heads with learned couplings; means and spreads from a
committee of models.

Reproducibility on the CPU: an evaluation gives the same bits every time in one process and
across processes with the same number of threads. PyTorch's CPU backward of indexing
(``h[sender]``: ``index_put_`` with accumulation) adds float32 values with atomic additions
from several threads when more than one thread is set, so their order, and the last bits of
the forces of the structures whose atoms two threads share, depend on thread timing (on a
busy 2-core machine: the middle structures of a batch). Evaluations therefore run with
PyTorch's deterministic algorithms switched on (:func:`deterministic_cpu`), which makes that
accumulation serial. With one thread nothing changes (the atomic path needs two).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from fusionff.data.graph import build_graph, molecular_batch_graph
from fusionff.device import resolve_device, tune_cpu_allocator
from fusionff.models.io import load_model
from fusionff.models.multistate_mace import MultiStateMACE

ModelSource = MultiStateMACE | str | os.PathLike


@contextmanager
def deterministic_cpu(device: torch.device) -> Iterator[None]:
    """On the CPU, run the block with ``torch.use_deterministic_algorithms(True)`` (without
    filling new tensors with NaN, which only costs time) and restore the previous settings
    after it; on other devices change nothing. The settings are process-wide: do not evaluate
    from several Python threads at once while one of them relies on this."""
    if device.type != "cpu":
        yield
        return
    fill = torch.utils.deterministic
    before = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        fill.fill_uninitialized_memory,
    )
    torch.use_deterministic_algorithms(True)
    fill.fill_uninitialized_memory = False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before[0], warn_only=before[1])
        fill.fill_uninitialized_memory = before[2]


class Potential:
    """A multi-state model, or a committee of models, ready to evaluate batches of structures.

    A committee (a list or tuple of models, even of one) reports the mean over its members of
    the energies, the forces and, where every member predicts them, the couplings, plus their
    spread: ``energies_std`` (B, S) eV, ``forces_std`` (B, S, N, 3) eV/Angstrom and
    ``gap_std`` (B,) eV, the spread of E_1 - E_0, each the population standard deviation over
    the M members (``np.std``, ddof = 0). Before averaging, each member's coupling d_ij is
    flipped where it points against the first member's (coupling signs are a convention of
    each model). Members must share elements and number of states; each keeps its own cutoff
    and dtype (outputs in the first member's dtype).

    Couplings: when every model gives them (``provides_nacs``) they are returned as ``nacs``:
    a diabatic head's from its eigenvectors (K = S(S+1)/2 extra backward passes per model), an
    adiabatic head's learned ones (``couplings`` ``vector`` or ``outer``; no extra backward
    pass). A single diabatic model also returns its ``diabatic_hamiltonian`` (a committee does
    not: the diabatic bases of its members need not agree). Adiabatic models without learned
    couplings cost what they did.

    Args:
        model: a :class:`MultiStateMACE`, the path of a ``*.fff`` model file, or a list or
            tuple of them (a committee).
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
    """

    def __init__(
        self,
        model: ModelSource | Sequence[ModelSource],
        device: str = "auto",
    ):
        self.device = resolve_device(device)
        if self.device.type == "cpu":
            tune_cpu_allocator()  # large batched graphs: reuse memory instead of page faults
        self.committee = isinstance(model, list | tuple)
        sources = list(model) if self.committee else [model]
        if not sources:
            raise ValueError("a committee needs at least one model")
        self.models = [self._prepared(source) for source in sources]
        _check_members(self.models, [_source_name(s, i) for i, s in enumerate(sources)])
        self.model = self.models[0]
        self.provides_nacs = all(m.provides_nacs for m in self.models)

    def _prepared(self, source: ModelSource) -> MultiStateMACE:
        model = source if isinstance(source, MultiStateMACE) else load_model(source)
        model = model.to(self.device).eval()
        for p in model.parameters():
            p.requires_grad_(False)
        return model

    @property
    def n_states(self) -> int:
        return self.model.n_states

    @property
    def dtype(self) -> torch.dtype:
        return self.model.dtype

    def evaluate(
        self, numbers: Sequence[int] | np.ndarray | torch.Tensor, positions
    ) -> dict[str, torch.Tensor]:
        """B configurations of one isolated molecule in one graph (per model).

        Args:
            numbers: (N,) atomic numbers.
            positions: (B, N, 3) Angstrom (tensor or array).

        Returns:
            ``energies`` (B, S) eV and ``forces`` (B, S, N, 3) eV/Angstrom, on the model's
            device; models with couplings (``provides_nacs``) add ``nacs`` (B, S, S, N, 3)
            1/Angstrom (d_ij = <i|grad j>, antisymmetric), a single diabatic model
            ``diabatic_hamiltonian`` (B, S, S) eV;
            committees add ``energies_std`` (B, S), ``forces_std`` (B, S, N, 3) and
            ``gap_std`` (B,) (class docstring).
        """
        x = torch.as_tensor(positions, dtype=self.dtype, device=self.device)
        if x.ndim != 3 or x.shape[-1] != 3:
            raise ValueError(f"positions must have shape (B, N, 3), got {tuple(x.shape)}")
        z = torch.as_tensor(numbers, dtype=torch.long, device=self.device)
        if z.shape != (x.shape[1],):
            raise ValueError(f"{z.numel()} atomic numbers for {x.shape[1]} atoms per structure")
        members = [self._evaluate_molecules(model, z, x) for model in self.models]
        return committee_mean(members) if self.committee else members[0]

    def _evaluate_molecules(
        self, model: MultiStateMACE, z: torch.Tensor, x: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        b, n, _ = x.shape
        s = model.n_states
        x = x.to(model.dtype).detach().requires_grad_(True)
        with torch.enable_grad(), deterministic_cpu(self.device):
            out = model(
                molecular_batch_graph(z, x, model.r_max), compute_couplings=self.provides_nacs
            )
        result = {
            "energies": out["energies"].detach(),
            "forces": out["forces"].detach().reshape(b, n, s, 3).transpose(1, 2),
        }
        if self.provides_nacs:
            result["nacs"] = out["nacs"].detach().reshape(b, n, s, s, 3).permute(0, 2, 3, 1, 4)
        if "diabatic_hamiltonian" in out:
            result["diabatic_hamiltonian"] = out["diabatic_hamiltonian"].detach()
        return {k: v.to(self.dtype) for k, v in result.items()}

    def evaluate_structures(
        self,
        numbers: Sequence[np.ndarray],
        positions: Sequence[np.ndarray],
        cells: Sequence[np.ndarray | None] | None = None,
        pbcs: Sequence[np.ndarray | None] | None = None,
    ) -> list[dict[str, np.ndarray]]:
        """Structures of any sizes, molecules or periodic cells, in one graph (per model).

        Returns one dict per structure with ``energies`` (S,) eV and ``forces`` (S, N, 3)
        eV/Angstrom as numpy arrays; models with couplings add ``nacs`` (S, S, N, 3)
        1/Angstrom, a single diabatic model ``diabatic_hamiltonian`` (S, S) eV; committees add
        ``energies_std`` (S,), ``forces_std`` (S, N, 3) and ``gap_std`` (a 0-d array) (class
        docstring).
        """
        members = [
            self._evaluate_graph(model, numbers, positions, cells, pbcs) for model in self.models
        ]
        results = []
        for outputs in zip(*members, strict=True):  # one structure, every model
            out = committee_mean(list(outputs)) if self.committee else outputs[0]
            results.append({k: v.cpu().numpy() for k, v in out.items()})
        return results

    def _evaluate_graph(self, model, numbers, positions, cells, pbcs) -> list[dict]:
        """One model on the graph of every structure -> one dict of tensors per structure."""
        graph = build_graph(numbers, positions, model.r_max, cells, pbcs, model.dtype, self.device)
        with torch.enable_grad(), deterministic_cpu(self.device):
            out = model(graph, compute_couplings=self.provides_nacs)
        keys = ("energies", "forces", "nacs", "diabatic_hamiltonian")
        out = {k: out[k].detach().to(self.dtype) for k in keys if k in out}
        results, start = [], 0
        for b, z in enumerate(numbers):
            atoms = slice(start, start + len(z))
            result = {
                "energies": out["energies"][b],
                "forces": out["forces"][atoms].transpose(0, 1),
            }
            if self.provides_nacs:
                result["nacs"] = out["nacs"][atoms].permute(1, 2, 0, 3)
            if "diabatic_hamiltonian" in out:
                result["diabatic_hamiltonian"] = out["diabatic_hamiltonian"][b]
            results.append(result)
            start += len(z)
        return results


def model_tag(path: str | Path) -> str:
    """A model file's name in results and file names: its run directory's for a training run's
    ``model.fff`` (``.../stilbene-r3-cleanwide-snapshot-14/model.fff``), else the file's stem
    (``potentials/stilbene-r3-partner.fff`` -> ``stilbene-r3-partner``)."""
    path = Path(path)
    return path.parent.name if path.name == "model.fff" else path.stem


def committee_mean(members: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Mean and spread over the outputs of M models for the same structures.

    Each member's dict holds ``energies`` (..., S), ``forces`` (..., S, N, 3) and optionally
    ``nacs`` (..., S, S, N, 3) (``...``: a batch dimension or none). Returns their means,
    ``nacs`` only where every member has them (each d_ij flipped first where its overlap with
    the first member's is negative), and the population standard deviations (ddof = 0)
    ``energies_std``, ``forces_std`` and ``gap_std`` (of E_1 - E_0; with S >= 2). A single
    member's ``diabatic_hamiltonian`` is passed on.
    """
    energies = torch.stack([m["energies"] for m in members])
    forces = torch.stack([m["forces"] for m in members])
    out = {
        "energies": energies.mean(0),
        "forces": forces.mean(0),
        "energies_std": energies.std(0, correction=0),
        "forces_std": forces.std(0, correction=0),
    }
    if energies.shape[-1] >= 2:
        out["gap_std"] = (energies[..., 1] - energies[..., 0]).std(0, correction=0)
    if all("nacs" in m for m in members):
        nacs = torch.stack([m["nacs"] for m in members])
        overlap = (nacs * nacs[:1]).sum(dim=(-1, -2))
        nacs = nacs * torch.where(overlap < 0, -1.0, 1.0).to(nacs.dtype)[..., None, None]
        out["nacs"] = nacs.mean(0)
    if len(members) == 1 and "diabatic_hamiltonian" in members[0]:
        out["diabatic_hamiltonian"] = members[0]["diabatic_hamiltonian"]
    return out


def _source_name(source: ModelSource, index: int) -> str:
    return f"model {index}" if isinstance(source, MultiStateMACE) else str(source)


def _check_members(models: list[MultiStateMACE], names: list[str]) -> None:
    """Committee members must share elements and number of states (ValueError naming one)."""
    first = models[0]
    for model, name in zip(models[1:], names[1:], strict=True):
        if set(model.config.atomic_numbers) != set(first.config.atomic_numbers):
            raise ValueError(
                f"committee member {name} has elements {model.elements}, but {names[0]} has "
                f"{first.elements}"
            )
        if model.n_states != first.n_states:
            raise ValueError(
                f"committee member {name} has {model.n_states} states, but {names[0]} has "
                f"{first.n_states}"
            )
