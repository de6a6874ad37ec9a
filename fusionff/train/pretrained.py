"""Starting a training run from a model file's weights (``init_from``: pre-train, then fine-tune).

A fresh run with ``init_from: PATH.fff`` builds its model as usual (the ``model`` keys, the
statistics of its own training split, the seed's initial weights) and then copies every
*parameter* of the file whose name and shape match. The others keep their fresh
initialisation, e.g. the readouts when a diabatic head (S(S+1)/2 outputs per atom) starts from
an adiabatic one (S outputs), or learned couplings the file does not have.

Buffers are never copied: ``e0`` (per-element, per-state reference energies), ``scale`` and
``shift`` (and ``coupling_scale``) come from the new run's training split, because two
reference levels put their energy zeros and force scales anywhere (MOPAC heats of formation
against CASSCF total energies). ``elements`` and ``avg_num_neighbors`` (a fixed normalisation of
the neighbour sums the copied weights were trained with) are taken from the file unless the
config sets them; ``r_max``, ``cutoff_p``, ``fusion_tree`` and ``elements`` must be the file's,
since they change what a parameter means without changing its shape.

The file is read by :func:`fusionff.models.io.load_model` (no code runs).
"""

from __future__ import annotations

from typing import Any

import torch

from fusionff.models.config import ModelConfig
from fusionff.models.multistate_mace import MultiStateMACE
from fusionff.train.config import ConfigError

MUST_MATCH = ("r_max", "cutoff_p", "fusion_tree", "elements")
"""ModelConfig keys whose values give the copied weights their meaning."""
FROM_FILE = ("elements", "avg_num_neighbors")
"""ModelConfig keys taken from the file when the config does not set them."""


def fine_tune_model_keys(
    model_keys: dict[str, Any], pretrained: ModelConfig, path: str
) -> dict[str, Any]:
    """The run's ``model`` keys with :data:`FROM_FILE` defaulted from ``pretrained``.

    Raises ConfigError naming the key when one of :data:`MUST_MATCH` (set in ``model_keys`` or
    left at its default) differs from the file's.
    """
    keys = dict(model_keys)
    for key in FROM_FILE:
        keys.setdefault(key, getattr(pretrained, key))
    fields = ModelConfig.__dataclass_fields__
    for key in MUST_MATCH:  # elements is set by now; the others may be left at the default
        ours = keys.get(key, fields[key].default)
        theirs = getattr(pretrained, key)
        if ours != theirs:
            raise ConfigError(
                f"model.{key}: {ours!r} here, but init_from {path} was trained with {theirs!r}; "
                f"fine-tuning needs the same {key}"
            )
    return keys


def copy_matching_parameters(
    model: MultiStateMACE, source: MultiStateMACE
) -> tuple[list[str], dict[str, str]]:
    """Copy into ``model`` each parameter of ``source`` with the same name and shape.

    Returns the copied names and ``{name: why not}`` for the parameters of ``model`` left as
    they were. Buffers (reference energies, scale, shift, constant tables) are not touched.
    """
    theirs = dict(source.named_parameters())
    copied: list[str] = []
    fresh: dict[str, str] = {}
    with torch.no_grad():
        for name, param in model.named_parameters():
            other = theirs.get(name)
            if other is None:
                fresh[name] = "not in the file"
            elif other.shape != param.shape:
                fresh[name] = f"shape {tuple(param.shape)} here, {tuple(other.shape)} in the file"
            else:
                param.copy_(other.to(dtype=param.dtype, device=param.device))
                copied.append(name)
    return copied, fresh


def describe(record: dict[str, Any], model: MultiStateMACE) -> str:
    """One log line: what ``init_from`` copied, what it left fresh, and what came from data."""
    sizes = {n: p.numel() for n, p in model.named_parameters()}
    n_copied = sum(sizes[n] for n in record["copied"])
    line = (
        f"init_from {record['path']} (sha256 {record['sha256'][:12]}): copied "
        f"{len(record['copied'])} of {len(sizes)} parameter tensors ({n_copied:,} of "
        f"{sum(sizes.values()):,} parameters)"
    )
    if record["fresh"]:
        line += "; freshly initialised: " + ", ".join(
            f"{n} ({why})" for n, why in record["fresh"].items()
        )
    return line + "; e0s, scale and shift from this run's training split"
