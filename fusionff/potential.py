"""Batched multi-state evaluation of a model: B structures in one graph, on CPU or GPU.

``Potential`` is what the ASE calculator and the dynamics use: positions in Angstrom in,
energies (eV) and forces (eV/Angstrom) of every state out.

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

import numpy as np
import torch

from fusionff.data.graph import build_graph, molecular_batch_graph
from fusionff.device import resolve_device, tune_cpu_allocator
from fusionff.models.io import load_model
from fusionff.models.multistate_mace import MultiStateMACE


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
    """A multi-state model ready to evaluate batches of structures.

    Args:
        model: a :class:`MultiStateMACE` or the path of a ``*.fff`` model file.
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
    """

    def __init__(self, model: MultiStateMACE | str | os.PathLike, device: str = "auto"):
        self.device = resolve_device(device)
        if self.device.type == "cpu":
            tune_cpu_allocator()  # large batched graphs: reuse memory instead of page faults
        if not isinstance(model, MultiStateMACE):
            model = load_model(model)
        self.model = model.to(self.device).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    @property
    def n_states(self) -> int:
        return self.model.n_states

    @property
    def dtype(self) -> torch.dtype:
        return self.model.dtype

    def evaluate(
        self, numbers: Sequence[int] | np.ndarray | torch.Tensor, positions
    ) -> dict[str, torch.Tensor]:
        """B configurations of one isolated molecule in one graph.

        Args:
            numbers: (N,) atomic numbers.
            positions: (B, N, 3) Angstrom (tensor or array).

        Returns:
            ``energies`` (B, S) eV and ``forces`` (B, S, N, 3) eV/Angstrom, on the model's device.
        """
        x = torch.as_tensor(positions, dtype=self.dtype, device=self.device)
        if x.ndim != 3 or x.shape[-1] != 3:
            raise ValueError(f"positions must have shape (B, N, 3), got {tuple(x.shape)}")
        z = torch.as_tensor(numbers, dtype=torch.long, device=self.device)
        if z.shape != (x.shape[1],):
            raise ValueError(f"{z.numel()} atomic numbers for {x.shape[1]} atoms per structure")
        b, n, _ = x.shape
        x = x.detach().requires_grad_(True)
        with torch.enable_grad(), deterministic_cpu(self.device):
            out = self.model(molecular_batch_graph(z, x, self.model.r_max))
        forces = out["forces"].detach().reshape(b, n, self.n_states, 3).transpose(1, 2)
        return {"energies": out["energies"].detach(), "forces": forces}

    def evaluate_structures(
        self,
        numbers: Sequence[np.ndarray],
        positions: Sequence[np.ndarray],
        cells: Sequence[np.ndarray | None] | None = None,
        pbcs: Sequence[np.ndarray | None] | None = None,
    ) -> list[dict[str, np.ndarray]]:
        """Structures of any sizes, molecules or periodic cells, in one graph.

        Returns one dict per structure with ``energies`` (S,) eV and ``forces`` (S, N, 3)
        eV/Angstrom as numpy arrays.
        """
        graph = build_graph(
            numbers, positions, self.model.r_max, cells, pbcs, self.dtype, self.device
        )
        with torch.enable_grad(), deterministic_cpu(self.device):
            out = self.model(graph)
        energies = out["energies"].detach().cpu().numpy()
        forces = out["forces"].detach().cpu().numpy()
        results, start = [], 0
        for b, z in enumerate(numbers):
            n = len(z)
            results.append(
                {"energies": energies[b], "forces": forces[start : start + n].transpose(1, 0, 2)}
            )
            start += n
        return results
