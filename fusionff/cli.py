"""Command line: ``fusionff info | label | train | eval | run | analyze``."""

from __future__ import annotations

import argparse
import json
import sys

from fusionff import __version__
from fusionff.analysis.cli import (
    add_analyze_arguments,
    add_compare_arguments,
    analyze_main,
    compare_main,
)
from fusionff.dynamics.cli import add_run_arguments, run_main
from fusionff.labeling.cli import add_label_arguments, label_main
from fusionff.train.cli import add_eval_arguments, add_train_arguments, eval_main, train_main

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def _dataset_info(path: str, as_json: bool) -> int:
    """Counts of a multi-state dataset (structures, atoms, elements, statuses, labels)."""
    from fusionff.data.dataset import MultiStateDataset

    with MultiStateDataset.open(path) as ds:
        summary = ds.summary()
    if as_json:
        print(json.dumps(summary, indent=2))
        return 0
    width = max(len(k) for k in summary)
    for key, value in summary.items():
        print(f"{key:<{width}}  {value}")
    return 0


def _info(args: argparse.Namespace) -> int:
    from fusionff.models.io import load_model

    with open(args.model, "rb") as f:
        if f.read(len(HDF5_SIGNATURE)) == HDF5_SIGNATURE:
            return _dataset_info(args.model, args.json)
    model = load_model(args.model)
    c = model.config
    rows = [
        ("file", args.model),
        ("model", "MultiStateMACE (fusion blocks)" if c.fusion else "MultiStateMACE (plain MACE)"),
        ("elements", " ".join(c.elements)),
        ("states", str(c.n_states)),
        ("parameters", f"{model.num_parameters():,}"),
        ("r_max", f"{c.r_max} Angstrom"),
        ("channels", str(c.channels)),
        ("l_max / hidden_l_max", f"{c.l_max} / {c.hidden_l_max}"),
        ("correlation", str(c.correlation)),
        ("layers", str(c.num_layers)),
        ("dtype", c.dtype),
    ]
    if c.fusion:
        rows.append(("fusion diagram", model.products[0].diagram.describe()))
        rows.append(("l_int_max", str(c.l_int_max)))
    if args.json:
        from fusionff.models.io import read_header

        print(json.dumps(read_header(args.model), indent=2))
        return 0
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{width}}  {v}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fusionff", description=__doc__)
    parser.add_argument("--version", action="version", version=f"fusionff {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser(
        "info",
        help="architecture, elements, states and size of a model file; counts of a dataset",
    )
    p.add_argument("model", help="model file (*.fff) or multi-state dataset (*.h5)")
    p.add_argument(
        "--json", action="store_true", help="print the model's JSON header (dataset: counts)"
    )
    p.set_defaults(func=_info)

    p = sub.add_parser("label", help="label geometries with a reference program (MOPAC, R1)")
    add_label_arguments(p).set_defaults(func=label_main)
    p = sub.add_parser("train", help="train a model on multi-state datasets (YAML config)")
    add_train_arguments(p).set_defaults(func=train_main)
    p = sub.add_parser("eval", help="error metrics of a model on a dataset, per state and gap")
    add_eval_arguments(p).set_defaults(func=eval_main)
    p = sub.add_parser("run", help="run a surface-hopping ensemble (YAML input, e.g. md/*.yaml)")
    add_run_arguments(p).set_defaults(func=run_main)
    p = sub.add_parser("analyze", help="populations, decay time, products and yields of a run")
    add_analyze_arguments(p).set_defaults(func=analyze_main)
    p = sub.add_parser(
        "compare", help="are two analysed ensembles the same within statistics? (yields, hops)"
    )
    add_compare_arguments(p).set_defaults(func=compare_main)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError, RuntimeError) as err:
        print(f"fusionff {args.command}: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
