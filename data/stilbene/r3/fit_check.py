"""Can a model fit the structures it trained on? Errors of a training run's weights on the part
of its training split it trained on (``split.train_subsample`` honoured) and on its test split.

    python data/stilbene/r3/fit_check.py RUN_DIR [--weights last|best] [--json OUT]

``last``: the EMA weights of the last finished epoch, read from ``RUN_DIR/checkpoint.pt`` (what
the run had reached, whatever validation says); ``best``: the EMA weights of the epoch with the
lowest validation loss (``model.fff``). Energies in meV, forces in meV/Angstrom. A model that is
off by as much on the structures it trained on as on its test split underfits: more labels will
not lower its test errors, more capacity or optimisation might.
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
from fusionff.train.config import TrainConfig
from fusionff.train.data import load_training_data
from fusionff.train.evaluate import evaluate
from fusionff.train.metrics import summary_line
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


def fit_check(run: str | os.PathLike, weights: str = "last") -> dict:
    """Metrics (as :func:`fusionff.train.evaluate.evaluate`) on ``trained`` (the structures the
    run trained on) and ``test``, with the epoch the weights come from."""
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
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--weights", choices=("last", "best"), default="last")
    parser.add_argument("--json", type=Path, help="also write the metrics here")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    result = fit_check(args.run, args.weights)
    for key in ("trained", "test"):
        n = result[key]["n_structures"]
        print(
            f"{args.run} ({args.weights} weights, epoch {result['epoch']}), {key} "
            f"({n} structures): {summary_line(result[key])}"
        )
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
