"""Where does the third state of the (2,2) space come near S1? SA-3 energies at R3 geometries.

    OMP_NUM_THREADS=1 HDF5_USE_FILE_LOCKING=FALSE python data/stilbene/r3/third_state_probe.py \\
        [--geometry NAME=PATH ...] [--frames XYZ ...] [--rows FILE[:START-STOP] ...] \\
        [--split RUN_DIR[:SUBSET] ...] [--out third-state-probe.json]

R3 is SA-2-CASSCF(2,2)/6-31G: the state average holds S0 and S1 only, while the (2,2) space
has three singlet roots. Where the third comes near S1 (the two zwitterionic states of a
twisted C=C), SA-2's S1 can bend sharply or switch character between nearby geometries
(``state_average_probe.py`` found such pairs). For each geometry this computes
SA-3-CASSCF(2,2)/6-31G energies by RASSCF alone from a fresh start, exact integrals, the
active-space guard on (``MolcasCasscfBackend.energies``), and records S2 - S1 and, for rows of
labelled R3 files, the stored SA-2 gap beside the SA-3 one. Points already in ``--out`` are
not computed again (the probe resumes); a failed point is recorded with its reason. Energies
eV, geometries Angstrom. ``--summary`` prints the table of a finished file without computing.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]
from basis_probe import DEFAULT_GEOMETRIES  # noqa: E402  (R3's landmarks: cis FC, crossing, P*)
from r2_crossing import describe_geometry  # noqa: E402


def parse_rows(spec: str) -> tuple[str, int | None, int | None]:
    """``FILE`` or ``FILE:START-STOP`` (rows START..STOP-1) -> (file, start, stop)."""
    if ":" not in spec:
        return spec, None, None
    path, span = spec.rsplit(":", 1)
    try:
        start, stop = (int(v) for v in span.split("-"))
    except ValueError:
        raise ValueError(f"--rows {spec!r}: expected FILE or FILE:START-STOP") from None
    if not 0 <= start < stop:
        raise ValueError(f"--rows {spec!r}: need 0 <= START < STOP")
    return path, start, stop


def split_specs(spec: str) -> list[str]:
    """``RUN_DIR[:SUBSET]`` (a training run and one of its subsets, default test) -> one
    ``FILE:ROW-ROW+1`` row spec per structure of that subset of the run's stored split."""
    from fusionff.train.split import split_rows

    run, _, subset = spec.partition(":")
    return [f"{path}:{row}-{row + 1}" for path, row in split_rows(run, subset or "test")]


def labelled_rows(spec: str) -> list[tuple[str, int, object]]:
    """(file, row, Structure) of each ok row of ``spec`` (``FILE[:START-STOP]``); the probe
    names the row "<file name>:<row>"."""
    from fusionff.data.dataset import MultiStateDataset

    path, start, stop = parse_rows(spec)
    out = []
    with MultiStateDataset.open(path) as ds:
        stop = len(ds) if stop is None else min(stop, len(ds))
        for i in range(start or 0, stop):
            entry = ds[i]
            if entry.status == "ok" and entry.energies is not None:
                out.append((path, i, entry))
    return out


def point_summary(point: dict) -> dict:
    """S1-S0 and S2-S1 of an SA-3 point (eV), and the SA-2 gap and the change of S1-S0 from
    SA-2 to SA-3 where the point has stored SA-2 energies; {} for a failed point."""
    if "E_eV" not in point:
        return {}
    e = point["E_eV"]
    out = {"gap10_eV": e[1] - e[0], "gap21_eV": e[2] - e[1]}
    if "sa2_E_eV" in point:
        sa2 = point["sa2_E_eV"][1] - point["sa2_E_eV"][0]
        out |= {"sa2_gap10_eV": sa2, "gap10_change_eV": out["gap10_eV"] - sa2}
    return out


def table(points: dict, near_eV: float = 0.5, sa2_fc: list[float] | None = None) -> str:
    """One line per point (name, twist, C1/C2 angle sums, gaps; with a ``cis_FC`` point, S1
    relative to the FC S1 at SA-3, and at SA-2 where the point has SA-2 energies and
    ``sa2_fc``, SA-2's energies at cis_FC, is given), then how many points have S2 within
    ``near_eV`` of S1."""
    fc = points.get("cis_FC", {}).get("E_eV")
    lines = [
        "point  dihedral  C1/C2 angle sums  S1-S0 (SA-3)  S2-S1  S1-S0 (SA-2)"
        "  S1 - FC S1 (SA-3, SA-2)"
    ]
    near, ok = 0, 0
    for name, p in points.items():
        if "E_eV" not in p:
            lines.append(f"{name}  failed: {p.get('failed', '?')[:90]}")
            continue
        s = point_summary(p)
        ok += 1
        near += s["gap21_eV"] < near_eV
        sa2 = f"{s['sa2_gap10_eV']:.3f}" if "sa2_gap10_eV" in s else "-"
        rel = "" if fc is None else f"  {p['E_eV'][1] - fc[1]:+.3f}"
        if fc is not None and sa2_fc is not None and "sa2_E_eV" in p:
            rel += f" {p['sa2_E_eV'][1] - sa2_fc[1]:+.3f}"
        lines.append(
            f"{name}  {p['dihedral_deg']:7.1f}  {p['angle_sum_C1_deg']:6.1f}/"
            f"{p['angle_sum_C2_deg']:6.1f}  {s['gap10_eV']:7.3f}  {s['gap21_eV']:7.3f}  {sa2}{rel}"
        )
    lines.append(f"{near} of {ok} points have S2 within {near_eV} eV of S1")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--geometry", action="append", default=[], metavar="NAME=PATH",
        help="named geometries (xyz); default without --rows or --frames: R3's landmarks",
    )  # fmt: skip
    parser.add_argument(
        "--rows", action="append", default=[], metavar="FILE[:START-STOP]",
        help="ok rows of a labelled R3 file (its SA-2 energies are kept for comparison)",
    )  # fmt: skip
    parser.add_argument(
        "--split", action="append", default=[], metavar="RUN_DIR[:SUBSET]",
        help="the rows of a training run's split (default subset: test), as --rows",
    )  # fmt: skip
    parser.add_argument(
        "--frames", action="append", default=[], metavar="FILE",
        help="every frame of an xyz/extxyz file (named FILE:index)",
    )  # fmt: skip
    parser.add_argument("--out", type=Path, default=HERE / "third-state-probe.json")
    parser.add_argument("--basis", default="6-31G")
    parser.add_argument("--timeout", type=float, default=3600.0, help="s per OpenMolcas job")
    parser.add_argument("--summary", action="store_true", help="print --out's table and stop")
    parser.add_argument(
        "--sa2-fc", type=float, nargs=2, metavar=("E0", "E1"),
        help="SA-2 energies (eV) at cis_FC, for the SA-2 column of S1 relative to the FC S1 "
        "(e.g. basis-probe.json's 6-31G cis_FC)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    results = json.loads(args.out.read_text()) if args.out.exists() else {"points": {}}
    if args.summary:
        print(table(results["points"], sa2_fc=args.sa2_fc))
        return 0
    from ase.io import read

    from fusionff.data import stilbene as sb
    from fusionff.labeling.molcas import MolcasCasscfBackend, MolcasError

    todo = []
    named = dict(item.split("=", 1) for item in args.geometry)
    args.rows += [row for spec in args.split for row in split_specs(spec)]
    if not named and not args.rows and not args.frames:
        named = dict(DEFAULT_GEOMETRIES)
    for name, path in named.items():
        atoms = read(path)
        todo.append((name, atoms.numbers, atoms.positions, None, str(path)))
    for path in args.frames:
        for i, atoms in enumerate(read(path, index=":")):
            todo.append((f"{Path(path).name}:{i}", atoms.numbers, atoms.positions, None, path))
    for spec in args.rows:
        for path, i, s in labelled_rows(spec):
            name = f"{Path(path).name}:{i}"
            todo.append((name, s.numbers, s.positions, s.energies, name))
    backend = MolcasCasscfBackend(
        (sb.C1, sb.C2), basis=args.basis, couplings=False, timeout=args.timeout
    )
    done = results["points"]
    for name, numbers, positions, sa2, source in todo:
        if name in done:
            continue
        begin = time.perf_counter()
        try:
            energies, seen = backend.energies(numbers, positions, 3)
            point = {"E_eV": energies.tolist(), **seen}
        except MolcasError as exc:
            point = {"failed": str(exc)}
        if sa2 is not None:
            point["sa2_E_eV"] = np.asarray(sa2, dtype=float).tolist()
        point |= {"source": source, "seconds": round(time.perf_counter() - begin, 1)}
        point |= {k: round(v, 2) for k, v in describe_geometry(positions).items()}
        done[name] = point
        args.out.write_text(json.dumps(results, indent=1))
        print(name, json.dumps(point_summary(point)), point.get("failed", ""), flush=True)
    print(table(done, sa2_fc=args.sa2_fc))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
