"""Does a larger basis move the S1 trap? SA-2-CASSCF(2,2) energies of the same stilbene
geometries at several bases, relative to each basis's own S1 at the cis Franck-Condon point.

    python data/stilbene/r3/basis_probe.py [--bases 6-31G 6-31G*] \
        [--geometry NAME=PATH ...] [--out basis-probe.json]

Why: at R3 (6-31G) the planar twisted S1 minimum (P*) lies below the S1/S0 crossing
(``s1_trap.py``, ``s1-trap.json``), so S1 decay needs a barrier crossing. The level the field
uses for stilbene dynamics is 6-31G* (the xxMD data; AIMS). Geometries are fixed (R3's), so
this is a probe, not a relaxed comparison: if the S1 energy difference between the crossing
geometry and P* shrinks much at 6-31G*, the trap is a basis artefact of R3.

Each point is RASSCF alone from a fresh start, exact integrals, the active-space guard on
(``MolcasCasscfBackend.energies``); a point that fails is recorded with its reason. Points
already in ``--out`` are not computed again (the probe resumes). Energies eV, geometries
Angstrom.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from ase.io import read

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from r2_crossing import describe_geometry  # noqa: E402

DEFAULT_GEOMETRIES = {
    "cis_FC": HERE.parent / "r2" / "cis-6-31g.xyz",
    "R3_crossing": HERE.parent / "r2" / "crossing-6-31g.xyz",
    "P_star": HERE / "s1-trap" / "p-star-r3.xyz",
}


def relative_table(points: dict, reference: str = "cis_FC") -> dict:
    """Per basis: each geometry's S0 and S1 minus the basis's S1 at ``reference`` and its gap
    (eV), from ``points[basis][geometry]["E_eV"]``; bases without the reference are left out,
    and failed points (no ``E_eV``) too."""
    table = {}
    for basis, by_geometry in points.items():
        ref = by_geometry.get(reference, {}).get("E_eV")
        if ref is None:
            continue
        table[basis] = {
            name: {
                "S0_eV": p["E_eV"][0] - ref[1],
                "S1_eV": p["E_eV"][1] - ref[1],
                "gap_eV": p["E_eV"][1] - p["E_eV"][0],
            }
            for name, p in by_geometry.items()
            if "E_eV" in p
        }
    return table


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bases", nargs="+", default=["6-31G", "6-31G*"])
    parser.add_argument(
        "--geometry", action="append", default=[], metavar="NAME=PATH",
        help="geometries (xyz) to compute; default: cis_FC, R3_crossing, P_star",
    )  # fmt: skip
    parser.add_argument("--out", type=Path, default=HERE / "basis-probe.json")
    parser.add_argument("--timeout", type=float, default=7200.0, help="s per OpenMolcas job")
    args = parser.parse_args(argv)
    from fusionff.data import stilbene as sb
    from fusionff.labeling.molcas import MolcasCasscfBackend, MolcasError

    geometries = dict(DEFAULT_GEOMETRIES)
    if args.geometry:
        geometries = dict(item.split("=", 1) for item in args.geometry)
    results = json.loads(args.out.read_text()) if args.out.exists() else {"points": {}}
    for basis in args.bases:
        backend = MolcasCasscfBackend(
            (sb.C1, sb.C2), basis=basis, couplings=False, timeout=args.timeout
        )
        done = results["points"].setdefault(basis, {})
        for name, path in geometries.items():
            if name in done:
                continue
            atoms = read(path)
            begin = time.perf_counter()
            try:
                energies, seen = backend.energies(atoms.numbers, atoms.positions, 2)
                point = {"E_eV": energies.tolist(), **seen}
            except MolcasError as exc:
                point = {"failed": str(exc)}
            point |= {"path": str(path), "seconds": round(time.perf_counter() - begin, 1)}
            point |= {k: round(v, 2) for k, v in describe_geometry(atoms.positions).items()}
            done[name] = point
            results["relative"] = relative_table(results["points"])
            args.out.write_text(json.dumps(results, indent=1))
            print(basis, name, json.dumps(point), flush=True)
    print(json.dumps(results["relative"], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
