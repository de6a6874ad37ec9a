"""``fusionff train CONFIG.yaml`` and ``fusionff eval MODEL DATA``.

The project's command line registers the subcommands with::

    p = sub.add_parser("train", help=...)
    add_train_arguments(p)
    p.set_defaults(func=train_main)
"""

from __future__ import annotations

import argparse


def add_train_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the arguments of ``fusionff train`` to ``parser`` and return it."""
    parser.add_argument("config", help="training config (YAML; see data/examples/train_tiny.yaml)")
    parser.add_argument(
        "--restart",
        action="store_true",
        help="delete the output directory's run files and start afresh (default: continue "
        "from its checkpoint.pt when there is one)",
    )
    parser.add_argument(
        "--new-stage",
        action="store_true",
        help="continue the run in the output directory as a new stage with this config's loss, "
        "optimizer, schedule, batch size, EMA decay and force mask: from the best weights so "
        "far, with a fresh optimizer and schedule",
    )
    return parser


def train_main(args: argparse.Namespace) -> int:
    """Run ``fusionff train``: train (or continue), then print the test metrics table."""
    from fusionff.train.config import TrainConfig
    from fusionff.train.metrics import format_metrics
    from fusionff.train.trainer import Trainer

    config = TrainConfig.from_yaml(args.config)
    result = Trainer(config, restart=args.restart, new_stage=args.new_stage).fit()
    metrics = result.test_metrics
    if metrics is None:
        metrics, title = result.validation_metrics, "validation split (the test split is empty)"
    else:
        title = "test split"
    print(format_metrics(metrics, title))
    print(
        f"model: {result.model_path} (epoch {result.best_epoch} of {result.epochs}, "
        f"{result.training_time_s:.1f} s)"
    )
    return 0


def add_eval_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the arguments of ``fusionff eval`` to ``parser`` and return it."""
    parser.add_argument("model", help="model file (*.fff)")
    parser.add_argument("data", help="multi-state dataset (HDF5)")
    parser.add_argument(
        "--batch-size", type=int, default=16, help="structures per evaluation (default: 16)"
    )
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda[:k] (default: auto)")
    parser.add_argument("--json", metavar="PATH", help="also write the metrics to this JSON file")
    parser.add_argument(
        "--mask-forces-above",
        type=float,
        metavar="EV_PER_A",
        help="leave out the force labels of a structure's state with an atom's force above "
        "this (eV/A), as a training run's mask_forces_above does",
    )
    return parser


def eval_main(args: argparse.Namespace) -> int:
    """Run ``fusionff eval``: metrics of a model on every usable structure of a dataset."""
    from fusionff.device import resolve_device
    from fusionff.models.io import load_model
    from fusionff.train.data import load_training_data
    from fusionff.train.evaluate import evaluate
    from fusionff.train.metrics import format_metrics
    from fusionff.train.report import write_json

    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be at least 1, got {args.batch_size}")
    model = load_model(args.model, device=resolve_device(args.device))
    data = load_training_data([args.data], model.r_max)
    if args.mask_forces_above is not None:
        masked = data.mask_forces_above(args.mask_forces_above)
        print(f"force labels left out (above {args.mask_forces_above} eV/A): {masked} per state")
    metrics = evaluate(model, data, batch_size=args.batch_size)
    print(format_metrics(metrics, f"{args.data} with {args.model}"))
    if args.json:
        write_json(metrics, args.json)
    return 0
