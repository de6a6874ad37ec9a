"""Data-parallel training over the ranks of a ``torchrun`` job (``torch.distributed``).

``torchrun --nproc_per_node N -m fusionff.cli train CONFIG`` starts N processes (ranks) that
train one model together; without torchrun (no ``WORLD_SIZE`` in the environment) there is
one rank and every operation below is the identity, so a plain run is exactly as before.

How a step is shared, and why it equals a one-process step:

- ``batch_size`` is the *global* batch. Every rank draws the same epoch order from the seeded
  shuffler; each batch is cut into contiguous, near-equal shards, one per rank
  (:meth:`Ranks.shard`), and each rank evaluates the model on its shard.
- The model outputs of all shards are gathered (:meth:`Ranks.gather_rows`) so that every rank
  holds the outputs of the whole batch, its own rows with their autograd graph and the others'
  as constants. Every rank then computes the loss of the whole batch, the same number a single
  process computes (masked means over the global batch, not means of per-rank means).
- Backward on a rank gives the gradient through its own rows; the gradients of all ranks are
  summed (:meth:`Ranks.sum_gradients`, one all-reduce of a flat buffer per step), which by the
  chain rule is the gradient of the whole-batch loss. Every rank applies the same update, so
  weights, optimizer, EMA and scheduler stay identical everywhere, as does the shuffler.
  The result equals one process with the same ``batch_size`` up to the order of floating-point
  sums (a few ulp per step), for any split of the batch, even or not.
- Validation and the final metrics are sharded and gathered the same way; the numbers that
  steer the run (losses, the time limit) come from rank 0 (:meth:`Ranks.from_main`) and a stop
  signal on any rank stops all of them after the same batch (:meth:`Ranks.max`), so every
  decision (best epoch, LR schedule, early stopping, stopping) is taken alike on all ranks.

This is the gradient sum of ``DistributedDataParallel``, written out: DDP's wrapper averages
the gradients (the whole-batch loss would have to be multiplied by the number of ranks) and
expects every parameter to get a gradient in every backward pass; one all-reduce after
backward needs neither, and for models of tens of thousands of parameters there is little to
gain from DDP's overlap of the all-reduce with the backward pass.

Rank 0 alone writes files (checkpoint, model, history, logs); the output directory must be
one that every rank can read (a resumed job reads the checkpoint on every rank). Backend:
``nccl`` when the run's device is CUDA (rank k of a node on ``cuda:<LOCAL_RANK>``), ``gloo``
on the CPU. PyTorch CPU threads per rank: ``OMP_NUM_THREADS`` (which torchrun sets to 1 unless
it is set), else 1.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import numpy as np
import torch
import torch.distributed as dist

from fusionff.device import resolve_device, set_threads

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class Ranks:
    """This process's place among the ranks of a training job.

    Attributes:
        rank: this process's rank (0 is the main one, which writes the files).
        size: the number of ranks (1 without torchrun).
        device: this rank's torch device.
    """

    rank: int
    size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        """Whether there is more than one rank (else every operation is the identity)."""
        return self.size > 1

    def shard(self, indices: np.ndarray) -> np.ndarray:
        """This rank's contiguous part of ``indices`` (parts differ in length by at most one;
        ranks after the last structure get an empty part)."""
        if not self.active:
            return indices
        bounds = np.linspace(0, len(indices), self.size + 1).round().astype(np.int64)
        return indices[bounds[self.rank] : bounds[self.rank + 1]]

    def gather_rows(self, tensors: dict[str, Any], own: bool = True) -> dict[str, Any]:
        """Each tensor of ``tensors`` joined along its first dimension over the ranks, in rank
        order: this rank's rows are the given tensor (with its autograd graph), the other
        ranks' rows are constants. Every rank must pass the same keys, tensors of one floating
        dtype with the same trailing shapes; entries that are not tensors pass unchanged.
        ``own=False``: the tensors are a stand-in (a rank that a short batch left without
        structures evaluates one, so that its backward pass runs like the others'); this rank
        contributes no rows."""
        if not self.active:
            return tensors
        keys = [k for k, v in tensors.items() if isinstance(v, torch.Tensor)]
        local = [tensors[k] if own else tensors[k][:0] for k in keys]
        rows = torch.tensor([t.shape[0] for t in local], dtype=torch.int64, device=self.device)
        all_rows = [torch.empty_like(rows) for _ in range(self.size)]
        dist.all_gather(all_rows, rows)
        widths = [int(np.prod(t.shape[1:])) for t in local]
        counts = [int((r.cpu() * torch.tensor(widths)).sum()) for r in all_rows]
        flat = torch.cat([t.detach().reshape(-1) for t in local])
        buffer = torch.zeros(max(counts), dtype=flat.dtype, device=self.device)
        buffer[: flat.numel()] = flat
        received = [torch.empty_like(buffer) for _ in range(self.size)]
        dist.all_gather(received, buffer)
        parts: dict[str, list[torch.Tensor]] = {k: [] for k in keys}
        for r, (data, n_rows) in enumerate(zip(received, all_rows, strict=True)):
            offset = 0
            for k, t, w, n in zip(keys, local, widths, n_rows.tolist(), strict=True):
                theirs = data[offset : offset + n * w].reshape(n, *t.shape[1:])
                parts[k].append(t if r == self.rank else theirs)
                offset += n * w
        return {**tensors, **{k: torch.cat(parts[k]) for k in keys}}

    def gather_predictions(self, predictions: T) -> T:
        """:meth:`gather_rows` of the tensor fields of a dataclass (e.g. ``Predictions``)."""
        if not self.active:
            return predictions
        fields = {f.name: getattr(predictions, f.name) for f in dataclasses.fields(predictions)}
        return dataclasses.replace(predictions, **self.gather_rows(fields))

    def sum_gradients(self, parameters: Iterable[torch.nn.Parameter]) -> None:
        """Replace each parameter's gradient by its sum over the ranks (one all-reduce); a
        parameter without a gradient on every rank keeps none, as in a single process."""
        if not self.active:
            return
        params = list(parameters)
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        has = [float(p.grad is not None) for p in params]
        flat = torch.cat([g.reshape(-1) for g in grads])
        flat = torch.cat([flat, torch.tensor(has, dtype=flat.dtype, device=flat.device)])
        dist.all_reduce(flat)
        offset = 0
        for p, n_ranks in zip(params, flat[-len(params) :].tolist(), strict=True):
            n = p.numel()
            p.grad = flat[offset : offset + n].view_as(p) if n_ranks > 0 else None
            offset += n

    def max(self, value: float) -> float:
        """The largest of the ranks' ``value`` (all ranks get the same answer)."""
        if not self.active:
            return float(value)
        t = torch.tensor([float(value)], dtype=torch.float64, device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return float(t.item())

    def from_main(self, *values: float) -> tuple[float, ...]:
        """Rank 0's ``values`` (floats or bools as floats) on every rank."""
        if not self.active:
            return tuple(float(v) for v in values)
        t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=self.device)
        dist.broadcast(t, src=0)
        return tuple(t.tolist())

    def barrier(self) -> None:
        """Wait until every rank got here."""
        if self.active:
            dist.barrier()

    def main_first(self, fn: Callable[[], T]) -> T:
        """``fn()`` on rank 0, then on the other ranks: for a file that rank 0 writes and the
        others read (every rank has reached this point before rank 0 starts)."""
        if not self.active:
            return fn()
        dist.barrier()
        if self.is_main:
            result = fn()
        dist.barrier()
        if not self.is_main:
            result = fn()
        return result

    def broadcast_module(self, module: torch.nn.Module) -> None:
        """Copy rank 0's parameters and buffers into ``module`` on every rank."""
        if not self.active:
            return
        with torch.no_grad():
            for t in module.state_dict().values():
                dist.broadcast(t, src=0)


def join(device: str) -> Ranks:
    """This process's ranks for a run on ``device`` (``auto``, ``cpu``, ``cuda[:k]``).

    Without torchrun (no ``WORLD_SIZE``): one rank on ``resolve_device(device)``. Under
    torchrun: joins the process group (``nccl`` on CUDA, with rank k of a node on
    ``cuda:<LOCAL_RANK>``; ``gloo`` on the CPU) unless it is joined already, and sets the
    CPU threads (see the module docstring).
    """
    if "WORLD_SIZE" not in os.environ:
        return Ranks(rank=0, size=1, device=resolve_device(device))
    size, rank = int(os.environ["WORLD_SIZE"]), int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    resolved = resolve_device(device)
    if resolved.type == "cuda":
        if resolved.index is not None and size > 1:
            raise ValueError(
                f"device {device!r} names one GPU, but under torchrun each rank takes "
                "cuda:<LOCAL_RANK>; set device to 'cuda' or 'auto'"
            )
        resolved = torch.device("cuda", local_rank)
        torch.cuda.set_device(resolved)
    if not dist.is_initialized():
        backend = "nccl" if resolved.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, rank=rank, world_size=size)
    set_threads(None)
    return Ranks(rank=rank, size=size, device=resolved)


def leave() -> None:
    """Leave the process group, if this process joined one."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
