"""Continuity of the R2 surfaces along the seed path (``r2_seed.path_geometry``) in fine steps:
each step's energy change against the change the forces predict (trapezoid of F . dx). A
step in E that the forces do not predict is a jump of the SA-CASSCF solution (another active
space, or a second solution); smooth curvature shows as a difference that shrinks as the
step does.

    python data/stilbene/r2_continuity.py 126 114 1     # dihedral from 126 to 114 in 1-degree steps

Results append to ``data/stilbene/r2/continuity.json`` (one entry per scan).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from ase import Atoms

sys.path.insert(0, str(Path(__file__).resolve().parent))
from r2_seed import path_geometry  # noqa: E402

from fusionff.data import stilbene as sb  # noqa: E402
from fusionff.data.molecules import trans_stilbene  # noqa: E402
from fusionff.labeling.calculator import CasscfCalculator  # noqa: E402

HERE = Path(__file__).resolve().parent


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("start", type=float, help="first dihedral, degrees")
    parser.add_argument("stop", type=float, help="last dihedral, degrees")
    parser.add_argument("step", type=float, help="step, degrees (positive)")
    parser.add_argument("--store", default="runs/r2_continuity/orbitals")
    args = parser.parse_args(argv)
    sign = 1.0 if args.stop >= args.start else -1.0
    dihedrals = np.arange(args.start, args.stop + sign * 1e-6, sign * abs(args.step))
    calc = CasscfCalculator((sb.C1, sb.C2), n_states=2, couplings=False, orbital_store=args.store)
    numbers = trans_stilbene().numbers
    rows, previous = [], None
    t0 = time.perf_counter()
    for d in dihedrals:
        atoms = Atoms(numbers=numbers, positions=path_geometry(float(d)))
        calc.calculate(atoms, ["energy"])
        e, f = calc.results["energies"].copy(), calc.results["state_forces"].copy()
        row = {"dihedral": float(d), "E": e.tolist()}
        if previous is not None:
            dx = atoms.positions - previous[0]
            predicted = [-float(np.sum(0.5 * (f[s] + previous[2][s]) * dx)) for s in range(2)]
            row["dE"] = (e - previous[1]).tolist()
            row["dE_predicted"] = predicted
            row["step_unpredicted_meV"] = [
                1000 * (a - b) for a, b in zip(row["dE"], predicted, strict=True)
            ]
        print(json.dumps(row), flush=True)
        rows.append(row)
        previous = (atoms.positions.copy(), e, f)
    path = HERE / "r2" / "continuity.json"
    scans = json.loads(path.read_text()) if path.exists() else []
    worst = [max(abs(r["step_unpredicted_meV"][s]) for r in rows[1:]) for s in range(2)]
    scans.append(
        {
            "dihedrals": [args.start, args.stop, args.step],
            "rows": rows,
            "largest_unpredicted_step_meV": worst,
            "seconds": round(time.perf_counter() - t0),
        }
    )
    path.write_text(json.dumps(scans, indent=1))
    print("largest unpredicted step (S0, S1), meV:", worst)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
