"""Helpers of the training tests: the tiny model and the training config they train it with."""

from __future__ import annotations

from pathlib import Path
from typing import Any

TINY_MODEL = {
    "channels": 4,
    "num_layers": 1,
    "r_max": 4.0,
    "l_max": 1,
    "hidden_l_max": 1,
    "correlation": 2,
    "radial_mlp": [8],
    "readout_hidden": 4,
}
"""The ``model`` section of a tiny network (a few hundred weights) that trains in seconds."""


def tiny_training(data: Path, output: Path, **changes: Any) -> dict[str, Any]:
    """The raw training config (as read from YAML) of :data:`TINY_MODEL` on ``data``, output
    ``output``: split 0.6 / 0.2 / 0.2, batches of 8, 4 epochs, CPU, float64, seed 1, loss
    weights 10 (energy) and 10 (forces), learning rate halved after each epoch without a lower
    validation loss; ``changes`` replace top-level keys."""
    raw = {
        "data": str(data),
        "output": str(output),
        "model": dict(TINY_MODEL),
        "split": {"train": 0.6, "validation": 0.2, "test": 0.2},
        "batch_size": 8,
        "max_epochs": 4,
        "device": "cpu",
        "dtype": "float64",
        "seed": 1,
        "loss": {"energy": 10.0, "forces": 10.0},
        "schedule": {"name": "plateau", "patience": 1, "factor": 0.5},
    }
    raw.update(changes)
    return raw
