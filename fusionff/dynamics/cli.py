"""``fusionff run CONFIG.yaml``: the surface-hopping ensemble runner.

The project's command line registers the subcommand with::

    p = sub.add_parser("run", help=...)
    add_run_arguments(p).set_defaults(func=run_main)
"""

from __future__ import annotations

import argparse

DESCRIPTION = """\
Run a surface-hopping ensemble described by a YAML run input (see md/*.yaml and
fusionff/dynamics/run_config.py). Trajectories run in batches; each writes an H5MD file to
the output directory, with checkpoint.pt after every chunk and summary.json at the end.
Running the same input again resumes from the checkpoint (and says from where).

The options below replace the input's keys of the same name, exactly as if the file said
them (--time-fs replaces n_steps too; batch_size, when the file does not give it, follows
n_traj). --threads sets PyTorch's CPU threads (also the 'threads:' key); the default is 1, or
OMP_NUM_THREADS when set: more threads than free cores slow a run down many times over.
Threads, --output and MOPAC workers do not change results, so a run resumes with other
values; with --extend a longer --time-fs and a larger --n-traj grow a finished (or
unfinished) run: its trajectories continue from their last step and new ones run in new
batches, equal to a run made in one go with the same batches; any other change needs another
output directory or --restart. --dask runs the
batches on a Dask cluster (one batch per task) and combines with all of these; a run
resumes with or without it."""


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {value}")
    return value


def add_run_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Arguments of ``fusionff run`` (this module imports no PyTorch: ``fusionff --help``
    starts without it)."""
    parser.description = DESCRIPTION
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("config", help="run input (YAML; e.g. md/tully1_fssh.yaml)")
    parser.add_argument(
        "--restart",
        action="store_true",
        help="delete the output directory's run files and start afresh (default: continue "
        "from its checkpoint.pt when there is one)",
    )
    parser.add_argument(
        "--extend",
        action="store_true",
        help="the output directory holds this run, shorter or with fewer trajectories: "
        "grow it to the new --time-fs and --n-traj (every other setting must be the same; "
        "the result equals a run made in one go with the same batches)",
    )
    parser.add_argument(
        "--show-config",
        action="store_true",
        help="print every key of the resolved input (value, unit, default) and exit",
    )
    parser.add_argument("--n-traj", type=_positive_int, metavar="N", help="trajectories")
    parser.add_argument(
        "--time-fs", type=_positive_float, metavar="FS", help="length of each trajectory, fs"
    )
    parser.add_argument("--seed", type=int, help="seed of the ensemble's random streams")
    parser.add_argument("--output", metavar="DIR", help="output directory")
    parser.add_argument("--device", help="auto, cpu or cuda[:k]")
    parser.add_argument(
        "--threads",
        type=_positive_int,
        metavar="N",
        help="PyTorch CPU threads (default: OMP_NUM_THREADS if set, else 1)",
    )
    parser.add_argument(
        "--dask",
        metavar="ADDRESS",
        help="run the batches as tasks on a Dask cluster: a scheduler address such as "
        "tcp://host:8786, or local[:N] for N worker processes here; this process writes "
        "the files, which equal those of a run without it (README, Scale-out with Dask)",
    )
    return parser


def run_main(args: argparse.Namespace) -> int:
    """``fusionff run``: the ensemble runner, imported only when used."""
    from fusionff.dynamics.runner import run_main as main_

    return main_(args)
