"""``fusionff run CONFIG.yaml``: the surface-hopping ensemble runner.

The project's command line registers the subcommand with::

    p = sub.add_parser("run", help=...)
    add_run_arguments(p).set_defaults(func=run_main)
"""

from __future__ import annotations

import argparse


def add_run_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Arguments of ``fusionff run`` (this module imports no PyTorch: ``fusionff --help``
    starts without it)."""
    parser.add_argument("config", help="run input (YAML; see md/tully1_fssh.yaml)")
    parser.add_argument(
        "--restart",
        action="store_true",
        help="delete the output directory's run files and start afresh (default: continue "
        "from its checkpoint.pt when there is one)",
    )
    return parser


def run_main(args: argparse.Namespace) -> int:
    """``fusionff run``: the ensemble runner, imported only when used."""
    from fusionff.dynamics.runner import run_main as main_

    return main_(args)
