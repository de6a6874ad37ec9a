"""``fusionff train CONFIG.yaml`` and ``fusionff eval MODEL DATA``.

The project's command line registers the subcommands with::

    p = sub.add_parser("train", help=...)
    add_train_arguments(p)
    p.set_defaults(func=train_main)
"""

from __future__ import annotations

import argparse
import json
import signal
from pathlib import Path


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
    """Run ``fusionff train``: train (or continue), then print the test metrics table.

    Under ``torchrun`` every rank runs this and trains its shards; rank 0 alone prints (see
    :mod:`fusionff.train.distributed`)."""
    from fusionff.train.config import TrainConfig
    from fusionff.train.distributed import leave
    from fusionff.train.metrics import format_metrics
    from fusionff.train.trainer import Trainer

    config = TrainConfig.from_yaml(args.config)
    trainer = Trainer(config, restart=args.restart, new_stage=args.new_stage)
    result = trainer.fit()
    leave()
    code = 0 if result.interrupted is None else 128 + signal.Signals[result.interrupted].value
    if not trainer.ranks.is_main:
        return code
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
    if result.interrupted:
        print(f"stopped by {result.interrupted}; run the same command again to continue")
    return code


def add_eval_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the arguments of ``fusionff eval`` to ``parser`` and return it."""
    parser.add_argument(
        "files",
        nargs="+",
        metavar="MODEL [MODEL ...] [DATA]",
        help="model file(s) (*.fff), then a multi-state dataset (HDF5; or give --run). "
        "Several models: a committee, scored by the mean of its members' energies and forces "
        "(as the dynamics uses it), each member's errors listed below it",
    )
    parser.add_argument(
        "--run",
        metavar="RUN_DIR",
        help="evaluate on a split of a training run instead: its split.json names the data "
        "files (checked against their stored SHA-256) and the structures",
    )
    parser.add_argument(
        "--subset",
        choices=("train", "validation", "test"),
        default="test",
        help="with --run: which split (default: test)",
    )
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
    parser.add_argument(
        "--gap-bins",
        type=float,
        nargs="+",
        metavar="EV",
        help="also the errors per bin of the reference gap E1 - E0 split at these increasing "
        "gaps (eV), e.g. 0.5 4: the seam, the middle, a hot ground state",
    )
    return parser


def eval_main(args: argparse.Namespace) -> int:
    """Run ``fusionff eval``: metrics of a model on every usable structure of a dataset."""
    from fusionff.device import resolve_device
    from fusionff.models.io import load_model
    from fusionff.train.data import load_training_data
    from fusionff.train.evaluate import evaluate, evaluate_committee
    from fusionff.train.metrics import check_gap_edges, format_metrics, summary_line
    from fusionff.train.report import write_json
    from fusionff.train.split import read_split

    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.gap_bins is not None:
        check_gap_edges(args.gap_bins)  # before any model or data is loaded
    model_paths = [f for f in args.files if f.endswith(".fff")]
    data_paths = [f for f in args.files if not f.endswith(".fff")]
    if not model_paths:
        raise ValueError(f"no model file (*.fff) among {args.files}")
    if len(data_paths) > 1:
        raise ValueError(f"one dataset at a time, got {data_paths}")
    data_path = data_paths[0] if data_paths else None
    if (data_path is None) == (args.run is None):
        raise ValueError("give either a dataset file or --run RUN_DIR (not both)")
    models = [load_model(path, device=resolve_device(args.device)) for path in model_paths]
    model = models[0]
    for path, member in zip(model_paths[1:], models[1:], strict=True):
        if member.r_max != model.r_max or member.n_states != model.n_states:
            raise ValueError(
                f"{path}: a committee's members need the same cutoff and states; it has "
                f"r_max {member.r_max} A and {member.n_states} states, {model_paths[0]} "
                f"{model.r_max} A and {model.n_states}"
            )
    named = ", ".join(model_paths)
    if len(models) > 1:
        named = f"the mean of {len(models)} models ({named})"
    if args.run is not None:
        paths = run_data_files(args.run)
        title = f"{args.subset} split of {args.run} with {named}"
    else:
        paths, title = [data_path], f"{data_path} with {named}"
    data = load_training_data(paths, model.r_max)
    indices = None
    if args.run is not None:
        indices = read_split(Path(args.run) / "split.json", data)[args.subset]
    if args.mask_forces_above is not None:
        masked = data.mask_forces_above(args.mask_forces_above)
        print(f"force labels left out (above {args.mask_forces_above} eV/A): {masked} per state")
    if len(models) == 1:
        metrics = evaluate(model, data, indices, args.batch_size, gap_edges=args.gap_bins)
    else:
        metrics = evaluate_committee(models, data, indices, args.batch_size, args.gap_bins)
    print(format_metrics(metrics, title))
    for path, member in zip(model_paths, metrics.get("members", []), strict=False):
        print(f"  member {path}: {summary_line(member)}")
    if args.json:
        write_json(metrics, args.json)
    return 0


def run_data_files(run: str | Path) -> list[str]:
    """The data files of a training run, from its split.json, each checked to exist and to
    have the SHA-256 stored there (the split's row numbers refer to those exact files)."""
    from fusionff.train.data import file_sha256

    split_path = Path(run) / "split.json"
    if not split_path.is_file():
        raise FileNotFoundError(f"{split_path} not found: is {run} a training run directory?")
    files = json.loads(split_path.read_text())["files"]
    for f in files:
        if not Path(f["path"]).is_file():
            raise FileNotFoundError(
                f"{f['path']} (named in {split_path}) not found; paths are relative to the "
                "directory the run was trained from"
            )
        if file_sha256(f["path"]) != f["sha256"]:
            raise ValueError(
                f"{f['path']} changed since the run {run} was trained (SHA-256 differs from "
                f"{split_path}); its split does not apply to it"
            )
    return [f["path"] for f in files]
