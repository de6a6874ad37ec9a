"""Model files (``*.fff``): a JSON header and the weights, loaded without executing code.

Layout: a PyTorch zip archive holding a dict of plain types and tensors::

    {"format": "fusionff-model", "version": 1, "header": "<JSON text>", "weights": state_dict}

read with ``torch.load(weights_only=True)``, which refuses anything but tensors and plain
containers, so a model file cannot run code when loaded. The header holds the architecture
(``ModelConfig``; its ``head`` defaults to ``adiabatic`` for files written before heads existed),
elements, number of states, the head, units, the fusionff version, the parameter count
and free-form metadata (training data hash, metrics).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from fusionff import __version__
from fusionff.models.config import ModelConfig
from fusionff.models.multistate_mace import MultiStateMACE

FORMAT = "fusionff-model"
VERSION = 1
UNITS = {"energy": "eV", "length": "Angstrom", "forces": "eV/Angstrom"}


class ModelFileError(ValueError):
    """A model file that cannot be read: wrong format, truncated, unknown version, bad header."""


def save_model(
    model: MultiStateMACE, path: str | os.PathLike, metadata: dict | None = None
) -> None:
    """Write ``model`` to ``path`` (one ``*.fff`` file); ``metadata`` must be JSON-serialisable."""
    header = {
        "format": FORMAT,
        "version": VERSION,
        "fusionff_version": __version__,
        "model": "MultiStateMACE",
        "config": model.config.to_dict(),
        "elements": model.elements,
        "n_states": model.n_states,
        "head": model.config.head,
        "units": UNITS,
        "n_parameters": model.num_parameters(),
        "metadata": metadata or {},
    }
    weights = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "header": json.dumps(header),
        "weights": weights,
    }
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)  # never leave a half-written model file under the final name


def read_header(path: str | os.PathLike) -> dict[str, Any]:
    """The JSON header of a model file (validated), without building the model."""
    return _read(path)[0]


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> MultiStateMACE:
    """Build the model described by the file's header and load its weights (no code runs)."""
    header, weights = _read(path)
    try:
        config = ModelConfig.from_dict(header["config"])
    except (KeyError, TypeError, ValueError) as err:
        raise ModelFileError(f"{path}: invalid model config in header: {err}") from err
    model = MultiStateMACE(config=config)
    try:
        model.load_state_dict(weights, strict=True)
    except RuntimeError as err:
        raise ModelFileError(f"{path}: weights do not match the architecture: {err}") from err
    return model.to(device).eval()


def _read(path: str | os.PathLike) -> tuple[dict, dict]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model file not found: {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for foreign or truncated archives
        raise ModelFileError(
            f"{path}: not a readable fusionff model file (truncated, corrupted or another "
            f"format): {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
        ) from err
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ModelFileError(f"{path}: not a fusionff model file (no '{FORMAT}' format marker)")
    version = payload.get("version")
    if version != VERSION:
        raise ModelFileError(
            f"{path}: model file version {version!r} is not supported "
            f"(this fusionff {__version__} reads version {VERSION})"
        )
    try:
        header = json.loads(payload["header"])
    except (KeyError, TypeError, json.JSONDecodeError) as err:
        raise ModelFileError(f"{path}: missing or invalid JSON header: {err}") from err
    weights = payload.get("weights")
    if not isinstance(weights, dict) or not all(
        isinstance(v, torch.Tensor) for v in weights.values()
    ):
        raise ModelFileError(f"{path}: missing or invalid 'weights'")
    return header, weights
