"""Which score should pick the next frames to label? Candidate pickers scored on held-out labels.

``committee_signal.py`` measured that the committee force spread ranks S0 force errors well
(Spearman 0.73 on snapshot 14's 202 held-out structures) and S1 energy and gap errors hardly
(0.21-0.26). This script scores other candidates against the same per-structure errors of the
committee mean (``committee_signal.per_structure``), on the held-out structures of a training
run (its test and validation splits by default):

* the committee's spreads: force spread of S0, of S1 and their maximum (eV/Angstrom, as the
  dynamics measure it), energy spread of each state and gap spread (eV);
* the committee-mean gap itself, small first (what ``selection --max-gap`` picks by);
* the committee-mean energies of S0 and S1 (eV, high first: how far from equilibrium);
* **feature novelty** (one model, no committee): each atom's invariant features entering the
  readout of interaction layer ``--layer`` (the scalar channels, or all channels with
  ``--all-channels``), its Euclidean distance to the nearest atom of the same element among the
  run's *training* structures, and per structure the largest over its atoms
  (:func:`novelty`).

For every candidate and every error (forces S0/S1 as the largest atom error norm, energies
S0/S1, the gap) it prints the Spearman rank correlation and the capture (of the worst tenth by
error, the share in the top fifth by score; chance 0.2), and, per source queue (the data file's
name), the held-out count and mean errors: where the errors sit.

Usage (from the repository root; the run's data files must be unchanged):

    OMP_NUM_THREADS=1 python data/stilbene/r3/picker_scores.py potentials/stilbene-r3.fff \\
        potentials/stilbene-r3-partner.fff potentials/stilbene-r3-c12.fff \\
        --run potentials/training/stilbene-r3-cleanwide-snapshot-14 \\
        --json data/stilbene/r3/snapshot-14/picker-scores.json

Units: eV, eV/Angstrom; novelty in the model's feature units (comparable within one model).
"""

from __future__ import annotations

import json
import re
import sys
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from committee_signal import (  # noqa: E402
    committee_parser,
    load_committee,
    parse_committee_args,
    per_structure,
    signal,
)

TARGETS = {
    "force S0": ("force_error", 0),
    "force S1": ("force_error", 1),
    "energy S0": ("energy_error", 0),
    "energy S1": ("energy_error", 1),
    "gap": ("gap_error", 0),
}


def atom_features(model, data, indices: np.ndarray, layer: int, batch_size: int) -> torch.Tensor:
    """Per-atom features (n_atoms of ``indices``, channels) entering readout ``layer``."""
    if not 0 <= layer < len(model.readouts):
        raise ValueError(f"layer {layer} out of range: the model has {len(model.readouts)}")
    seen: list[torch.Tensor] = []
    hook = model.readouts[layer].register_forward_hook(
        lambda module, inputs, output: seen.append(inputs[0].detach())
    )
    try:
        for start in range(0, len(indices), batch_size):
            graph = data.graph(indices[start : start + batch_size], model.dtype, model.device)
            with torch.no_grad():
                model(graph, compute_forces=False)
    finally:
        hook.remove()
    if not seen:
        return torch.zeros(0, 0, dtype=model.dtype)
    return torch.cat(seen).cpu()


def novelty(
    reference: torch.Tensor,
    reference_numbers: np.ndarray,
    query: torch.Tensor,
    query_numbers: np.ndarray,
    query_atoms: np.ndarray,
) -> np.ndarray:
    """Per structure, the largest over its atoms of the distance from the atom's features to the
    nearest reference atom of the same element.

    Args:
        reference: (n_ref, C) features of the reference (training) atoms.
        reference_numbers: (n_ref,) their atomic numbers.
        query: (n_q, C) features of the query atoms, structures one after another.
        query_numbers: (n_q,) their atomic numbers.
        query_atoms: (B,) atoms per query structure (summing to n_q).

    An element absent from the reference gives infinite novelty.
    """
    if query.shape[0] != int(np.sum(query_atoms)):
        raise ValueError(
            f"{query.shape[0]} query atoms, but query_atoms sums to {query_atoms.sum()}"
        )
    nearest = np.full(query.shape[0], np.inf)
    for z in np.unique(query_numbers):
        rows = np.flatnonzero(query_numbers == z)
        ref = np.flatnonzero(reference_numbers == z)
        if len(ref):
            dist = torch.cdist(query[rows].double(), reference[ref].double())
            nearest[rows] = dist.min(dim=1).values.numpy()
    starts = np.concatenate([[0], np.cumsum(query_atoms)[:-1]]).astype(int)
    return np.array([nearest[s : s + n].max() for s, n in zip(starts, query_atoms, strict=True)])


def source_names(data, indices: np.ndarray) -> np.ndarray:
    """The queue each structure came from: its data file's name without the level prefix and
    row range (``stilbene-r3-al4-rows0-80.h5`` -> ``al4``)."""
    names = []
    for i in indices:
        stem = Path(data.source(int(i))[0]).name
        names.append(re.sub(r"^stilbene-r\d-|-rows\d+-\d+|\.h5$", "", stem))
    return np.array(names)


def main(argv: list[str] | None = None) -> int:
    parser = committee_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--layer", type=int, default=0, help="readout layer of the features")
    parser.add_argument(
        "--all-channels",
        action="store_true",
        help="novelty on every feature channel, not only the scalar ones",
    )
    args = parse_committee_args(parser, argv)
    models, data, split = load_committee(args.models, args.run)
    held = np.concatenate([np.asarray(split[s]) for s in args.subsets])
    train = np.asarray(split["train"])
    rows = per_structure(models, data, held, args.batch_size)
    mean_e = rows["energy_mean"]
    first = models[0]
    ref_f = atom_features(first, data, train, args.layer, args.batch_size)
    held_f = atom_features(first, data, held, args.layer, args.batch_size)
    if not args.all_channels:
        scalars = first.config.channels
        ref_f, held_f = ref_f[:, :scalars], held_f[:, :scalars]
    novel = novelty(
        ref_f,
        data.numbers[data.atom_indices(train)],
        held_f,
        data.numbers[data.atom_indices(held)],
        data.n_atoms[held],
    )
    candidates = {
        "force spread S0": rows["force_spread"][:, 0],
        "force spread S1": rows["force_spread"][:, 1],
        "force spread max": rows["force_spread"].max(axis=1),
        "energy spread S0": rows["energy_spread"][:, 0],
        "energy spread S1": rows["energy_spread"][:, 1],
        "gap spread": rows["gap_spread"][:, 0],
        "small gap": -(mean_e[:, 1] - mean_e[:, 0]),
        "energy S0": mean_e[:, 0],
        "energy S1": mean_e[:, 1],
        f"novelty (layer {args.layer})": novel,
    }
    channels = "all channels" if args.all_channels else "scalar channels"
    print(f"{len(held)} structures ({'+'.join(args.subsets)}); novelty on {channels}")
    print("Spearman / capture (chance 0.20) of each candidate against each error:")
    print(f"{'candidate':<22s}" + "".join(f"{t:>14s}" for t in TARGETS))
    result = {
        "models": args.models,
        "run": args.run,
        "subsets": args.subsets,
        "layer": args.layer,
        "all_channels": args.all_channels,
        "candidates": {},
        "sources": {},
    }
    for name, score in candidates.items():
        cells, entry = [], {}
        for target, (key, column) in TARGETS.items():
            with warnings.catch_warnings():  # a score that is no spread has no error/spread
                warnings.simplefilter("ignore", RuntimeWarning)
                s = signal(score, rows[key][:, column])
            entry[target] = {"spearman": s["spearman"], "capture": s["capture"]}
            cells.append(f"{s['spearman']:7.2f} /{s['capture']:5.2f}")
        result["candidates"][name] = entry
        print(f"{name:<22s}" + "".join(f"{c:>14s}" for c in cells))
    names = source_names(data, held)
    ref_gap = data.energies[held, 1] - data.energies[held, 0]
    print("\nWhere the errors sit (mean over each source's held-out structures; meV, meV/A):")
    print(f"{'source':<12s}{'n':>4s}{'gap eV':>8s}" + "".join(f"{t:>11s}" for t in TARGETS))
    for source in sorted(set(names.tolist())):
        keep = names == source
        means = {t: float(np.nanmean(rows[k][keep, c])) for t, (k, c) in TARGETS.items()}
        gap = float(np.nanmean(ref_gap[keep]))
        result["sources"][source] = {"n": int(keep.sum()), "mean_gap": gap, "mean_error": means}
        cells = "".join(f"{1000 * v:11.0f}" for v in means.values())
        print(f"{source:<12s}{int(keep.sum()):4d}{gap:8.2f}{cells}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
