"""``fusionff analyze RUN_DIR``: populations, decay time, products, yields and hops of an ensemble.

Writes ``RUN_DIR/analysis/{populations.png, dihedral.png, hops.png, diagnostics.png,
analysis.json}`` (``dihedral.png`` only with a dihedral) and prints a short report. The
project's command line registers the subcommand with::

    sub = subparsers.add_parser("analyze", help="...")
    add_analyze_arguments(sub).set_defaults(func=analyze_main)

Heavy imports (h5py, MDAnalysis, scipy, matplotlib) happen inside :func:`analyze_main`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

_DEFAULTS = {
    "n_boot_fit": 200,
    "seed": 0,
    "cis_below": 90.0,
    "trans_above": 90.0,
    "dhp_below": 2.0,
    "reached_by_fs": (500.0,),
}  # the same as AnalysisOptions (a test checks), kept here so --help stays light


def add_analyze_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the arguments of ``fusionff analyze`` to ``parser`` and return it."""
    d = _DEFAULTS
    parser.add_argument("run_dir", help="directory written by 'fusionff run' (summary.json, ...)")
    parser.add_argument(
        "--dihedral",
        nargs=4,
        type=int,
        metavar=("I", "J", "K", "L"),
        help="atoms (0-based) of the dihedral that tells the isomers apart "
        "(default: detect stilbene's C(ipso)-C=C-C(ipso))",
    )
    parser.add_argument(
        "--no-dihedral",
        dest="products",
        action="store_false",
        help="no dihedral, products or yields (systems without isomers, e.g. Tully's models)",
    )
    parser.add_argument(
        "--include-failed",
        action="store_true",
        help="analyse trajectories that blew up or drifted in energy too (default: counted only)",
    )
    parser.add_argument(
        "--no-hold",
        dest="hold_last",
        action="store_false",
        help="trajectories leave the populations when they end (default: they keep their "
        "last state, e.g. S0 after stopping)",
    )
    parser.add_argument(
        "--grid",
        type=float,
        metavar="FS",
        help="population time grid spacing, fs (default: the smallest frame interval)",
    )
    parser.add_argument(
        "--decay-state", type=int, help="state whose decay is fitted (default: the initial one)"
    )
    parser.add_argument(
        "--cis-below",
        type=float,
        default=d["cis_below"],
        help=f"|dihedral| below this is cis, degrees (default: {d['cis_below']:g})",
    )
    parser.add_argument(
        "--trans-above",
        type=float,
        default=d["trans_above"],
        help=f"|dihedral| above this is trans, degrees (default: {d['trans_above']:g})",
    )
    parser.add_argument(
        "--dhp-below",
        type=float,
        default=d["dhp_below"],
        metavar="ANGSTROM",
        help="a trajectory ending on S0 with two ortho carbons of stilbene's rings closer than "
        "this is the photocyclisation product DHP (bond ~1.55 Angstrom; ~3.1-3.4 in "
        f"cis-stilbene), Angstrom (default: {d['dhp_below']:g})",
    )
    parser.add_argument(
        "--no-dhp",
        dest="dhp_below",
        action="store_const",
        const=None,
        help="no DHP classification (products by the dihedral only)",
    )
    parser.add_argument(
        "--domain-min-distance",
        type=float,
        metavar="ANGSTROM",
        help="re-apply the run's domain pairs (config.dynamics.domain) at this distance, "
        "Angstrom, not below the run's own limit: a trajectory whose pair came closer at a "
        "written frame is excluded as out-of-domain (a dip between written frames is missed)",
    )
    parser.add_argument(
        "--hazard-after",
        type=float,
        default=0.0,
        metavar="FS",
        help="the first-passage rate to S0 (a constant hazard; every started trajectory, "
        "failed ones censored where stopped) counts passages and time at risk after this "
        "time, fs, leaving the induction period out (default: 0)",
    )
    parser.add_argument(
        "--hazard-edges",
        type=float,
        nargs="+",
        metavar="FS",
        help="test that one rate fits the passages on each interval between these times, fs "
        "(default: four equal intervals from --hazard-after to the longest trajectory)",
    )
    parser.add_argument(
        "--reached-by",
        type=float,
        nargs="*",
        default=list(d["reached_by_fs"]),
        metavar="FS",
        help="report the fraction of trajectories that reached the ground state by each of "
        "these times, fs, with its 95%% interval (default: %(default)s; none: no such line)",
    )
    parser.add_argument(
        "--n-boot-fit",
        type=int,
        default=d["n_boot_fit"],
        help=f"bootstrap resamples for decay-time errors (default: {d['n_boot_fit']})",
    )
    parser.add_argument(
        "--seed", type=int, default=d["seed"], help="seed of the bootstrap (default: 0)"
    )
    parser.add_argument(
        "--output", help="directory for figures and analysis.json (default: RUN_DIR/analysis)"
    )
    parser.add_argument("--no-plots", action="store_true", help="write analysis.json only")
    return parser


def analyze_main(args: argparse.Namespace) -> int:
    """Run ``fusionff analyze`` with parsed arguments; returns the exit status."""
    from fusionff.analysis.analyze import (
        AnalysisOptions,
        analysis_to_dict,
        analyze_run,
        format_report,
    )
    from fusionff.analysis.run import read_run

    options = AnalysisOptions(
        dihedral=tuple(args.dihedral) if args.dihedral else None,
        products=args.products,
        include_failed=args.include_failed,
        hold_last=args.hold_last,
        grid_spacing_fs=args.grid,
        decay_state=args.decay_state,
        cis_below=args.cis_below,
        trans_above=args.trans_above,
        dhp_below=args.dhp_below,
        n_boot_fit=args.n_boot_fit,
        seed=args.seed,
        domain_min_distance=args.domain_min_distance,
        hazard_after_fs=args.hazard_after,
        hazard_edges_fs=tuple(args.hazard_edges) if args.hazard_edges else None,
        reached_by_fs=tuple(args.reached_by),
    )
    run = read_run(args.run_dir, include_failed=options.include_failed)
    analysis = analyze_run(run, options)
    output = Path(args.output) if args.output else Path(args.run_dir) / "analysis"
    output.mkdir(parents=True, exist_ok=True)
    written = []
    if not args.no_plots:
        from fusionff.analysis.plots import plot_all

        written = plot_all(analysis, output)
    json_path = output / "analysis.json"
    json_path.write_text(json.dumps(analysis_to_dict(analysis), indent=1, allow_nan=False))
    written.append(json_path)
    print(format_report(analysis))
    print("wrote " + ", ".join(str(p) for p in written))
    return 0


def add_compare_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the arguments of ``fusionff compare`` to ``parser`` and return it."""
    parser.add_argument(
        "run_a", help="run directory analysed by 'fusionff analyze' (or its analysis.json)"
    )
    parser.add_argument("run_b", help="the other run (or its analysis.json)")
    parser.add_argument(
        "--alpha",
        type=float,
        default=0.05,
        help="family-wise significance level over all tests (Holm; default 0.05)",
    )
    parser.add_argument(
        "--within",
        type=float,
        default=None,
        metavar="FS",
        help="also compare the fraction that first reaches the ground state "
        "within FS fs (default: half the shorter run)",
    )
    parser.add_argument("--out", default=None, help="write the comparison as JSON to this file")
    return parser


def compare_main(args: argparse.Namespace) -> int:
    """Run ``fusionff compare``; returns 0 (consistent) or 3 (a significant difference)."""
    from fusionff.analysis.compare import compare_analyses, format_report, load_analysis

    result = compare_analyses(
        load_analysis(args.run_a),
        load_analysis(args.run_b),
        alpha=args.alpha,
        within_fs=args.within,
    )
    print(format_report(result))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1, allow_nan=False))
        print(f"wrote {args.out}")
    return 0 if result["consistent"] else 3
