"""How an R2 potential reproduces the R2 landmarks: the cis S0 minimum and its vertical gap, and
the relaxed S1/S0 crossing, found on the potential itself and compared with the reference
search of ``r2_crossing.py`` (``r2/criteria.json``).

For each model file:
  at the reference geometries   the model's S1-S0 gap at the reference cis minimum (reference
                                8.06 eV) and at the reference crossing (reference 8.9 meV);
  cis minimum                   BFGS on the model's S0 from ``r2/cis-r2.xyz``: dihedral and
                                vertical gap there;
  crossing                      the penalty-function search of ``r2_crossing.py`` (sigma 3.5
                                then 15) on the model from the reference crossing geometry:
                                where it ends (gap, dihedral, C1/C2 angle sums, distance moved
                                from the reference crossing) and S1 there relative to S1 at the
                                model's cis FC point (reference -2.20 eV).

``--level 6-31g`` checks an R3 potential against R3's landmarks (``r2/criteria-6-31g.json``,
``cis-6-31g.xyz``, ``crossing-6-31g.xyz``: reference gap 6.21 eV at cis, crossing S1 1.29 eV
below the FC S1) instead. All in eV and Angstrom; the potential runs in float64 on one CPU
thread. Results go to ``--out`` (JSON)::

    python data/stilbene/r2_model_check.py potentials/stilbene-r2.fff \
        potentials/stilbene-r2-adiabatic.fff --out data/stilbene/r2/model_check.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import torch
from ase.io import read
from r2_crossing import (
    HERE,
    CrossingPenalty,
    OnState,
    criteria_path,
    describe_geometry,
    optimise,
)

from fusionff.calculator import FusionCalculator
from fusionff.models.io import load_model
from fusionff.potential import model_tag


def _rmsd(a: np.ndarray, b: np.ndarray) -> float:
    """RMSD (Angstrom) of two (N, 3) position sets after removing the centroids (no
    rotation: the searches start from the reference and do not rotate the molecule much)."""
    a = a - a.mean(axis=0)
    b = b - b.mean(axis=0)
    return float(np.sqrt(((a - b) ** 2).sum(axis=1).mean()))


LEVELS = ("r2", "6-31g")
"""Levels with reference landmarks in ``r2/``: R2 (STO-3G) and R3 (6-31G)."""


def check(model: Path, fmax: float, steps: int, level: str = "r2") -> dict:
    """The landmarks of one model (see the module docstring) against ``level``'s reference."""
    calc = FusionCalculator(load_model(model, device="cpu").double(), device="cpu")
    criteria = json.loads(criteria_path(level).read_text())
    cis_ref = read(HERE / "r2" / f"cis-{level}.xyz")
    crossing_ref = read(HERE / "r2" / f"crossing-{level}.xyz")
    out: dict = {"model": str(model), "level": level}
    at_reference = {}
    for name, atoms in (("cis", cis_ref.copy()), ("crossing", crossing_ref.copy())):
        calc.calculate(atoms, ["energy"])
        e = calc.results["energies"]
        at_reference[name] = e
        out[f"gap_at_reference_{name}_eV"] = float(e[1] - e[0])
    # the S1 drop between the reference geometries themselves: energy errors alone, without
    # the model's own minimum and crossing moving (reference: crossing_S1_minus_cis_FC_S1_eV)
    out["S1_drop_at_reference_geometries_eV"] = float(
        at_reference["crossing"][1] - at_reference["cis"][1]
    )
    out["reference"] = {
        "gap_at_cis_eV": criteria["cis_S0_minimum"]["gap_eV"],
        "gap_at_crossing_eV": criteria["crossing"]["sigma_15"]["gap_eV"],
        "crossing_S1_minus_cis_FC_S1_eV": criteria["crossing_S1_minus_cis_FC_S1_eV"],
    }
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        cis = cis_ref.copy()
        info = optimise(cis, OnState(calc, 0), work, "cis", fmax, steps)
        out["cis_minimum"] = info | describe_geometry(cis.positions)
        crossing = crossing_ref.copy()
        for sigma in (3.5, 15.0):
            info = optimise(
                crossing, CrossingPenalty(calc, sigma), work, f"x{sigma:g}", fmax, steps
            )
            out[f"crossing_sigma_{sigma:g}"] = info
        out["crossing"] = describe_geometry(crossing.positions) | {
            "rmsd_from_reference_crossing_A": _rmsd(crossing.positions, crossing_ref.positions)
        }
    out["crossing_S1_minus_cis_FC_S1_eV"] = (
        out["crossing_sigma_15"]["E_S1_eV"] - out["cis_minimum"]["E_S1_eV"]
    )
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("models", type=Path, nargs="+")
    parser.add_argument("--out", type=Path, default=HERE / "r2" / "model_check.json")
    parser.add_argument("--fmax", type=float, default=0.05, help="eV/Angstrom")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument(
        "--level", choices=LEVELS, default="r2",
        help="reference landmarks: r2 (STO-3G, criteria.json) or 6-31g (R3, criteria-6-31g.json)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    # a training run's model.fff is named by its run directory
    names = [model_tag(m) for m in args.models]
    results = {
        n: check(m, args.fmax, args.steps, args.level)
        for n, m in zip(names, args.models, strict=True)
    }
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    print(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
