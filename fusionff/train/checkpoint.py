"""Training checkpoints: one file of tensors and plain python values, written atomically.

A checkpoint loads with ``torch.load(weights_only=True)``: it holds state dicts, numbers,
strings, lists and dicts only, never pickled objects, so loading one runs no code.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from fusionff.atomic_files import write_atomically

FORMAT = "fusionff-checkpoint"
VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint that cannot be read or does not belong to this run."""


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike) -> None:
    """Write ``state`` to ``path`` via a temporary file and ``os.replace`` (never half-written)."""
    write_atomically(
        path, lambda tmp: torch.save({"format": FORMAT, "version": VERSION, **state}, tmp)
    )


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a checkpoint (tensors on the CPU) written by :func:`save_checkpoint`."""
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for foreign or truncated files
        raise CheckpointError(
            f"{path}: not a readable checkpoint ({type(err).__name__}: {err}); "
            "start afresh with fusionff train --restart"
        ) from err
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a fusionff training checkpoint")
    if state.get("version") != VERSION:
        raise CheckpointError(f"{path}: checkpoint version {state.get('version')!r} unsupported")
    return state


def rng_state(shuffle: torch.Generator, device: torch.device) -> dict[str, Any]:
    """The random states a resumed run needs: torch's global one(s) and the batch shuffler's."""
    state = {"torch": torch.get_rng_state(), "shuffle": shuffle.get_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any], shuffle: torch.Generator, device: torch.device) -> None:
    """Restore what :func:`rng_state` saved."""
    torch.set_rng_state(state["torch"])
    shuffle.set_state(state["shuffle"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state_all(state["cuda"])
