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

A deeper run (more ``num_layers`` than the file's, which has at least two) grows the file's
network without changing what it computes: the file's layers 0 .. L-2 stay where they are, its
last layer becomes the run's last, and each inserted layer starts as the identity (its skip
passes the features through, its product and its readout start at zero; its interaction keeps
the seed's fresh weights). The grown network gives the file's energies and forces to round-off
wherever e0, scale and shift are the file's (fine-tuning on the file's own training split),
and its inserted layers learn from there: a way to ask whether depth helps a trained model
without paying for a fresh start.

The file is read by :func:`fusionff.models.io.load_model` (no code runs).
"""

from __future__ import annotations

from typing import Any

import torch
from e3nn import o3

from fusionff.models.config import ModelConfig
from fusionff.models.multistate_mace import FusionProduct, MultiStateMACE
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


LAYER_LISTS = ("interactions", "products", "skips", "readouts")
"""The module lists of :class:`MultiStateMACE` that hold one entry per layer."""


def grown_layers(n_file: int, n_model: int) -> dict[int, int]:
    """Where the file's layers go in a deeper model: ``{file layer: model layer}``.

    Layers 0 .. n_file-2 keep their index and the last goes last; empty unless the model is
    deeper and the file has at least two layers (a one-layer file's only layer maps scalars to
    scalars, which no deeper model's last layer does).
    """
    if n_model <= n_file or n_file < 2:
        return {}
    return {**{k: k for k in range(n_file - 1)}, n_file - 1: n_model - 1}


def _renamed(name: str, layers: dict[int, int]) -> str:
    """A file parameter's name in the grown model (``interactions.1.x`` -> ``interactions.2.x``)."""
    parts = name.split(".")
    if layers and len(parts) > 2 and parts[0] in LAYER_LISTS:
        parts[1] = str(layers[int(parts[1])])
    return ".".join(parts)


def identity_skip(skip: o3.FullyConnectedTensorProduct) -> None:
    """Set a layer's skip (features (x) one-hot element -> features) to pass every atom's
    features through unchanged, whatever its element. Raises ValueError when its input and
    output irreps differ (then no identity exists)."""
    if skip.irreps_in1 != skip.irreps_out:
        raise ValueError(f"skip {skip.irreps_in1} -> {skip.irreps_out}: no identity")
    n_el = skip.irreps_in2.dim
    probe = torch.ones(1, skip.irreps_in1.dim, dtype=skip.weight.dtype, device=skip.weight.device)
    element = torch.zeros(1, n_el, dtype=probe.dtype, device=probe.device)
    element[0, 0] = 1.0
    with torch.no_grad():
        skip.weight.zero_()
        views = [(ins, view) for _, ins, view in skip.weight_views(yield_instruction=True)]
        for ins, view in views:
            if ins.i_in1 == ins.i_out:  # l (x) 0e -> l: a multiple of the identity per channel
                eye = torch.eye(view.shape[0], dtype=view.dtype, device=view.device)
                view.copy_(eye[:, None, :].expand_as(view))
        # the normalisations (path weight, CG convention) scale each block: divide them out
        gain = skip(probe, element)[0]
        for ins, view in views:
            if ins.i_in1 == ins.i_out:
                view.div_(gain[skip.irreps_out.slices()[ins.i_out]][0])
        # varied features without drawing from the global RNG (the run's seed stays its own)
        check = torch.arange(4 * probe.shape[1], dtype=probe.dtype, device=probe.device)
        check = check.reshape(4, -1).sin()
        elements = torch.eye(n_el, dtype=probe.dtype, device=probe.device)[torch.arange(4) % n_el]
        if not torch.allclose(skip(check, elements), check, rtol=1e-5, atol=1e-5):
            raise RuntimeError(f"skip {skip}: could not be set to the identity")


def _start_as_identity(model: MultiStateMACE, layer: int) -> None:
    """Inserted ``layer`` of ``model``: skip the identity, product output and readout zero."""
    identity_skip(model.skips[layer])
    product = model.products[layer]
    last = product.block.output if isinstance(product, FusionProduct) else product.linear
    with torch.no_grad():
        last.weight.zero_()
        for param in model.readouts[layer].parameters():
            param.zero_()


def copy_matching_parameters(
    model: MultiStateMACE, source: MultiStateMACE
) -> tuple[list[str], dict[str, str]]:
    """Copy into ``model`` each parameter of ``source`` with the same name and shape.

    A deeper ``model`` takes the file's layers where :func:`grown_layers` puts them, and its
    inserted layers start as identities (see the module's docstring). Returns the copied names (the
    model's) and ``{name: why not}`` for the parameters of ``model`` not copied. Buffers
    (reference energies, scale, shift, constant tables) are not touched.
    """
    layers = grown_layers(len(source.interactions), len(model.interactions))
    inserted = [k for k in range(len(model.interactions)) if layers and k not in layers.values()]
    for layer in inserted:
        _start_as_identity(model, layer)
    theirs = {_renamed(n, layers): p for n, p in source.named_parameters()}
    copied: list[str] = []
    fresh: dict[str, str] = {}
    with torch.no_grad():
        for name, param in model.named_parameters():
            other = theirs.get(name)
            parts = name.split(".")
            if parts[0] in LAYER_LISTS and int(parts[1]) in inserted:
                fresh[name] = f"layer {parts[1]} inserted, starts as the identity"
            elif other is None:
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
        by_reason: dict[str, list[str]] = {}
        for name, why in record["fresh"].items():
            by_reason.setdefault(why, []).append(name)
        line += "; freshly initialised: " + "; ".join(
            f"{', '.join(names)} ({why})" if len(names) < 4 else f"{len(names)} tensors ({why})"
            for why, names in by_reason.items()
        )
    return line + "; e0s, scale and shift from this run's training split"
