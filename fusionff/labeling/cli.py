"""``fusionff label INPUT OUTPUT``: label the geometries of an (ext)xyz file with MOPAC (R1,
the default) or with SA-CASSCF(2,2) through OpenMolcas (``--backend casscf``, R2).

The project's command line registers the subcommand with::

    sub = subparsers.add_parser("label", help="label geometries with MOPAC (R1)")
    add_label_arguments(sub)
    sub.set_defaults(func=label_main)
"""

from __future__ import annotations

import argparse
import logging
import os

from fusionff.labeling.mopac import R1_KEYWORDS

logger = logging.getLogger(__name__)


def add_label_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the arguments of ``fusionff label`` to ``parser`` and return it."""
    parser.add_argument(
        "input", help="xyz/extxyz file of geometries (Angstrom); every frame is labelled"
    )
    parser.add_argument("output", help="HDF5 dataset to create, or to continue if it exists")
    parser.add_argument(
        "--n-states", type=int, default=2, help="states to label, S0 upwards (default: 2)"
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=len(os.sched_getaffinity(0)),
        help="reference calculations in parallel processes (default: the usable cores)",
    )
    parser.add_argument(
        "--dask",
        metavar="ADDRESS",
        help="run the calculations on a Dask cluster instead (--workers is then ignored): "
        "a scheduler address such as tcp://host:8786, or local[:N] for N worker processes "
        "here; this process writes the output (see README, Scale-out with Dask)",
    )
    parser.add_argument(
        "--backend",
        choices=("mopac", "casscf"),
        default="mopac",
        help="mopac: MOPAC at R1 (default); casscf: SA-CASSCF(2,2) with OpenMolcas (R2: "
        "energies, gradients and couplings; see fusionff.labeling.molcas)",
    )
    parser.add_argument(
        "--active-atoms",
        type=int,
        nargs=2,
        metavar=("I", "J"),
        default=(0, 1),
        help="casscf: the two atoms (0-based) of the C=C bond whose pi/pi* pair is active "
        "(stilbene: 0 13; default 0 1)",
    )
    parser.add_argument("--basis", default="STO-3G", help="casscf: basis set (default STO-3G)")
    parser.add_argument(
        "--orbital-store",
        metavar="DIR",
        help="casscf: folder of converged orbitals; each structure starts from its nearest "
        "stored neighbour's (default: OUTPUT without .h5 + '.orbitals')",
    )
    parser.add_argument(
        "--no-couplings", action="store_true", help="casscf: skip the non-adiabatic couplings"
    )
    parser.add_argument(
        "--both-starts",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="casscf: converge RASSCF from the followed and from fresh RHF orbitals and keep "
        "the solution of lower state-averaged energy, then compute its gradients (default; "
        "about 1.1-1.5x the cost of one start; when one start fails, the next-nearest "
        "neighbour's orbitals are screened too). --no-both-starts follows alone, which on "
        "stilbene can land on a solution 1.7 eV too high that passes the active-space guard",
    )
    parser.add_argument(
        "--screen-integrals",
        choices=("exact", "ricd"),
        default="ricd",
        help="casscf: integrals of the two screening RASSCF runs of --both-starts (default "
        "ricd: OpenMolcas's RICD; a label at 6-31G takes 1.3-1.5x fewer CPU seconds, at STO-3G "
        "about the same; they only choose the start, the "
        "labels always come from exact integrals); exact: screens on exact integrals too",
    )
    parser.add_argument(
        "--keywords",
        default=R1_KEYWORDS,
        help=f"mopac: keywords without ROOT/AUX (default: R1, {R1_KEYWORDS!r})",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        help="seconds allowed to one program run (default: 600 for MOPAC, one state; 1800 "
        "for OpenMolcas, one structure)",
    )
    parser.add_argument("--mopac", default="mopac", help="MOPAC executable (default: mopac)")
    parser.add_argument(
        "--overwrite", action="store_true", help="start OUTPUT afresh instead of continuing it"
    )
    parser.add_argument(
        "--check-gradients",
        type=float,
        metavar="TOL",
        help="check each state's forces against a central difference of its energies along a "
        "random direction (3x the cost) and reject forces off by more than TOL eV/A "
        "(e.g. 0.05); energies are kept",
    )
    return parser


def label_main(args: argparse.Namespace) -> int:
    """Run ``fusionff label`` with parsed arguments; returns the exit status (0 when the job
    finished, even if some structures failed: those are recorded in the output)."""
    from ase.io import read

    from fusionff.labeling.mopac import MopacBackend
    from fusionff.labeling.runner import label

    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    structures = read(args.input, index=":")
    if args.backend == "casscf":
        from pathlib import Path

        from fusionff.labeling.molcas import MolcasCasscfBackend

        output = Path(args.output)
        store = args.orbital_store or str(output.with_suffix("")) + ".orbitals"
        backend = MolcasCasscfBackend(
            tuple(args.active_atoms),
            basis=args.basis,
            couplings=not args.no_couplings,
            orbital_store=store,
            both_starts=args.both_starts,
            screen_integrals=args.screen_integrals,
            timeout=args.timeout or 1800.0,
        )
    else:
        backend = MopacBackend(args.keywords, timeout=args.timeout or 600.0, executable=args.mopac)
    if args.check_gradients is not None:
        from fusionff.labeling.gradient_check import GradientCheckedBackend

        backend = GradientCheckedBackend(backend, tolerance=args.check_gradients)
    if args.dask:
        from fusionff.executor import DaskPool

        with DaskPool(args.dask) as pool:
            summary = label(
                structures, backend, args.n_states, args.output, overwrite=args.overwrite, pool=pool
            )
    else:
        summary = label(
            structures,
            backend,
            args.n_states,
            args.output,
            workers=args.workers,
            overwrite=args.overwrite,
        )
    print(
        f"{args.output}: {summary.total} structures, {summary.already_done} already labelled, "
        f"{summary.ok} labelled now, {summary.failed} failed, {summary.seconds:.1f} s"
        + (
            f"; forces of {summary.forces_rejected} rejected by the gradient check"
            if args.check_gradients is not None
            else ""
        )
    )
    return 0
