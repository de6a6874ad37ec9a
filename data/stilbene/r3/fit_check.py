"""Can a model fit the structures it trained on? Errors of a training run's weights on the part
of its training split it trained on (``split.train_subsample`` honoured) and on its test split.

    python data/stilbene/r3/fit_check.py RUN_DIR [--weights last|best] [--per-atom] [--json OUT]

``last``: the EMA weights of the last finished epoch, read from ``RUN_DIR/checkpoint.pt`` (what
the run had reached, whatever validation says); ``best``: the EMA weights of the epoch with the
lowest validation loss (``model.fff``). Energies in meV, forces in meV/Angstrom. A model that is
off by as much on the structures it trained on as on its test split underfits: more labels will
not lower its test errors, more capacity or optimisation might. ``--per-atom``: the force MAE of
each atom index (structures of one molecule with one atom order, as the stilbene queues), which
shows where on the molecule the misfit sits.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
import torch

from fusionff.models.config import ModelConfig
from fusionff.models.io import load_model
from fusionff.models.multistate_mace import MultiStateMACE
from fusionff.train.checkpoint import load_checkpoint
from fusionff.train.cli import member_line
from fusionff.train.config import TrainConfig
from fusionff.train.data import TrainingData, load_training_data
from fusionff.train.evaluate import evaluate, predict
from fusionff.train.split import read_split, train_subsample


def run_model(run: Path, weights: str) -> tuple[MultiStateMACE, TrainConfig, dict]:
    """The run's model with the chosen weights, its config, and checkpoint facts (epochs)."""
    state = load_checkpoint(run / "checkpoint.pt")
    config = TrainConfig.from_dict(state["config"])
    facts = {"epoch": int(state["epoch"]), "best_epoch": int(state["best_epoch"])}
    if weights == "best":
        return load_model(run / "model.fff"), config, facts
    model = MultiStateMACE(config=ModelConfig.from_dict(state["model_config"]))
    model.load_state_dict(state["ema"]["weights"])
    return model.eval(), config, facts


def per_atom_force_mae(
    model: MultiStateMACE, data: TrainingData, indices: np.ndarray
) -> np.ndarray:
    """(n_atoms, S) force MAE in meV/Angstrom of each atom index over ``indices``, whose
    structures must all have the same elements in the same order (ValueError naming the first
    that does not); unlabelled forces are left out (NaN where a state has none)."""
    indices = np.asarray(indices)
    lengths = np.diff(data.atom_offsets)[indices]
    first = data.numbers[data.atom_indices(indices[:1])]
    for i, n in zip(indices, lengths, strict=True):
        numbers = data.numbers[data.atom_indices(np.array([i]))]
        if n != len(first) or not np.array_equal(numbers, first):
            raise ValueError(
                f"{data.describe(int(i))}: elements {numbers.tolist()} differ from the first "
                f"structure's {first.tolist()}; per-atom errors need one atom order"
            )
    forces = predict(model, data, indices, batch_size=16, couplings=False).forces
    error = np.abs(forces.cpu().numpy() - data.forces[data.atom_indices(indices)])
    error = error.reshape(len(indices), len(first), data.n_states, 3)
    mask = data.force_mask[indices][:, None, :, None]  # (B, 1, S, 1)
    with np.errstate(invalid="ignore"):
        total = np.where(mask, error, 0.0).sum(axis=(0, 3))
        return 1000.0 * total / (3 * mask.sum(axis=0)[0, :, 0])


def fit_check(run: str | os.PathLike, weights: str = "last", per_atom: bool = False) -> dict:
    """Metrics (as :func:`fusionff.train.evaluate.evaluate`) on ``trained`` (the structures the
    run trained on) and ``test``, with the epoch the weights come from; ``per_atom``: also
    ``per_atom`` {"elements", "trained", "test"}, :func:`per_atom_force_mae` as lists."""
    run = Path(run)
    model, config, facts = run_model(run, weights)
    data = load_training_data(config.data, model.r_max)
    split = read_split(run / "split.json", data)
    split = train_subsample(split, config.split.train_subsample, config.split_seed)
    result = {
        "run": str(run),
        "weights": weights,
        "epoch": facts["epoch"] if weights == "last" else facts["best_epoch"],
    }
    for key, subset in (("trained", "train"), ("test", "test")):
        result[key] = evaluate(model, data, np.asarray(split[subset]))
    if per_atom:
        first = data.atom_indices(np.asarray(split["train"][:1]))
        result["per_atom"] = {"elements": data.numbers[first].tolist()} | {
            key: per_atom_force_mae(model, data, np.asarray(split[subset])).tolist()
            for key, subset in (("trained", "train"), ("test", "test"))
        }
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--weights", choices=("last", "best"), default="last")
    parser.add_argument("--per-atom", action="store_true", help="force MAE per atom index")
    parser.add_argument("--json", type=Path, help="also write the metrics here")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    result = fit_check(args.run, args.weights, args.per_atom)
    for key in ("trained", "test"):
        n = result[key]["n_structures"]
        print(
            f"{args.run} ({args.weights} weights, epoch {result['epoch']}), {key} "
            f"({n} structures): {member_line(result[key])}"
        )
    if args.per_atom:
        table = result["per_atom"]
        print("per-atom force MAE (meV/A), atom: Z, then S0 S1 ... trained | test")
        for k, z in enumerate(table["elements"]):
            cols = [" ".join(f"{v:5.0f}" for v in table[key][k]) for key in ("trained", "test")]
            print(f"  {k:3d}: {z:2d}  {cols[0]} | {cols[1]}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
