"""How well a committee's spread points at its own errors: the active-learning signal, measured.

Active learning here picks the frames of largest committee force spread for labelling
(``python -m fusionff.analysis.selection``). That only pays if the spread ranks structures as
their true errors do. This script scores a committee on held-out labelled structures of a
training run (its test and validation splits by default, `test validation`) and prints, per state:

* the Spearman rank correlation between the force spread and the committee mean's force error,
  both as the dynamics measure them: the largest over atoms of the norm of an atom's force
  standard deviations over the members (``fusionff.dynamics.spread.max_force_deviation``), and
  the largest over atoms of the norm of the mean's force error (eV/Angstrom);
* the same for the energy (spread: standard deviation over members; error: |mean - label|) and
  for the S1 - S0 gap;
* capture: of the worst tenth of the structures by true error, the share that the top fifth by
  spread holds (0.2 would be chance);
* the median of error / spread (how far a committee of this size underestimates its error).

Usage (from the repository root; the run's data files must be unchanged, as for ``fusionff
eval --run``):

    OMP_NUM_THREADS=1 python data/stilbene/r3/committee_signal.py potentials/stilbene-r3.fff \\
        potentials/stilbene-r3-c12.fff \\
        --run potentials/training/stilbene-r3-cleanwide-snapshot-13 \\
        --json data/stilbene/r3/snapshot-13/committee-signal.json

Units: eV, eV/Angstrom.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr

from fusionff.dynamics.spread import max_force_deviation
from fusionff.models.io import load_model
from fusionff.train.cli import run_data_files
from fusionff.train.data import load_training_data
from fusionff.train.evaluate import check_compatible, predict
from fusionff.train.split import read_split


def signal(spread: np.ndarray, error: np.ndarray, worst: float = 0.1, top: float = 0.2) -> dict:
    """Rank correlation, capture of the worst ``worst`` by the top ``top`` of the spread, and
    the median error / spread ratio, over structures where both are finite."""
    keep = np.isfinite(spread) & np.isfinite(error)
    spread, error = spread[keep], error[keep]
    n = len(spread)
    if n < 3:
        raise ValueError(f"need at least 3 structures with both spread and error, got {n}")
    n_worst = max(1, round(worst * n))
    n_top = max(1, round(top * n))
    worst_set = set(np.argsort(-error, kind="stable")[:n_worst].tolist())
    top_set = set(np.argsort(-spread, kind="stable")[:n_top].tolist())
    ratio = error / np.where(spread > 0, spread, np.nan)
    return {
        "n": int(n),
        "spearman": float(spearmanr(spread, error).statistic),
        "capture": len(worst_set & top_set) / n_worst,
        "capture_chance": n_top / n,
        "median_error_over_spread": float(np.nanmedian(ratio)),
        "mean_spread": float(spread.mean()),
        "mean_error": float(error.mean()),
    }


def per_structure(models, data, indices: np.ndarray, batch_size: int) -> dict[str, np.ndarray]:
    """Spreads and errors of each structure ``indices`` (rows: structures; columns: states),
    and ``energy_mean``, the committee's mean energies (eV)."""
    each = [predict(m, data, indices, batch_size, couplings=False) for m in models]
    energies = torch.stack([p.energies.double().cpu() for p in each]).numpy()  # (M, B, S)
    forces = torch.stack([p.forces.double().cpu() for p in each]).numpy()  # (M, n, S, 3)
    ref_e = data.energies[indices]
    e_mask = data.energy_mask[indices].astype(bool)
    f_mask = data.force_mask[indices].astype(bool)
    atoms = data.atom_indices(indices)
    ref_f = data.forces[atoms]
    n_atoms = data.n_atoms[indices]
    starts = np.concatenate([[0], np.cumsum(n_atoms)[:-1]])
    n_states = energies.shape[-1]
    out = {
        key: np.full((len(indices), n_states), np.nan)
        for key in ("force_spread", "force_error", "energy_spread", "energy_error")
    }
    mean_e = energies.mean(0)
    out["energy_mean"] = mean_e
    out["energy_spread"][:] = energies.std(0)
    out["energy_error"][:] = np.where(e_mask, np.abs(mean_e - ref_e), np.nan)
    for b, (start, n) in enumerate(zip(starts, n_atoms, strict=True)):
        f = forces[:, start : start + n]  # (M, N, S, 3)
        spread = max_force_deviation(torch.from_numpy(f.std(0)).permute(1, 0, 2))
        err = np.linalg.norm(f.mean(0) - ref_f[start : start + n], axis=-1).max(0)
        out["force_spread"][b] = spread.numpy()
        out["force_error"][b] = np.where(f_mask[b], err, np.nan)
    gaps = energies[..., 1:] - energies[..., :1]  # (M, B, S-1)
    ref_gap = ref_e[:, 1:] - ref_e[:, :1]
    gap_ok = e_mask[:, 1:] & e_mask[:, :1]
    out["gap_spread"] = gaps.std(0)
    out["gap_error"] = np.where(gap_ok, np.abs(gaps.mean(0) - ref_gap), np.nan)
    return out


def load_committee(paths: list[str], run: str):
    """The models at ``paths``, the run's data (its files checked unchanged) and its split,
    on one torch thread."""
    torch.set_num_threads(1)
    models = [load_model(path) for path in paths]
    data = load_training_data(run_data_files(run), models[0].r_max)
    for model in models:
        check_compatible(model, data)
    return models, data, read_split(Path(run) / "split.json", data)


def committee_parser(description: str) -> argparse.ArgumentParser:
    """The arguments every committee-on-held-out-labels script takes: models, --run,
    --subsets, --batch-size, --json."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("models", nargs="+", help="the committee's model files (*.fff), 2 or more")
    parser.add_argument("--run", required=True, help="training run directory (its split.json)")
    parser.add_argument(
        "--subsets",
        nargs="+",
        default=["test", "validation"],
        help="splits to pool (default: test validation)",
    )
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--json", help="write the numbers here")
    return parser


def parse_committee_args(parser: argparse.ArgumentParser, argv: list[str] | None):
    """Parsed arguments; fewer than two models is an error."""
    args = parser.parse_args(argv)
    if len(args.models) < 2:
        parser.error("a committee needs at least two models")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_committee_args(committee_parser(__doc__.split("\n\n")[0]), argv)
    models, data, split = load_committee(args.models, args.run)
    indices = np.concatenate([np.asarray(split[s]) for s in args.subsets])
    rows = per_structure(models, data, indices, args.batch_size)
    result = {"models": args.models, "run": args.run, "subsets": args.subsets, "states": []}
    pooled = "+".join(args.subsets)
    print(f"committee {', '.join(args.models)} on {len(indices)} structures ({pooled})")
    print("quantity        state  n    spearman  capture (chance)  median err/spread")
    for s in range(rows["force_spread"].shape[1]):
        entry = {"state": s}
        quantities = [(kind, f"S{s}", kind, s) for kind in ("force", "energy")]
        if s > 0:
            quantities.append(("gap", f"S{s}-S0", "gap", s - 1))
        for name, label, kind, column in quantities:
            score = signal(rows[f"{kind}_spread"][:, column], rows[f"{kind}_error"][:, column])
            entry[name] = score
            print(
                f"{name:<15s} {label:<6s} {score['n']:<4d} {score['spearman']:8.2f}  "
                f"{score['capture']:.2f} ({score['capture_chance']:.2f})       "
                f"{score['median_error_over_spread']:.2f}"
            )
        result["states"].append(entry)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
