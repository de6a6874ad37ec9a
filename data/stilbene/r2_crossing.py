"""R2 criteria for stilbene (SA-2-CASSCF(2,2)/STO-3G): the cis S0 minimum and its vertical
S1 energy (the Franck-Condon point), and a relaxed S1/S0 crossing search from a
twisted-pyramidalised start, to check that the crossing lies below the cis FC S1 energy.

Each optimisation writes an ASE trajectory in ``--work`` and continues from its last frame
when run again (a killed search loses at most one step); results go to
``data/stilbene/r2/criteria.json`` with the geometries as xyz files beside it.

    python data/stilbene/r2_crossing.py            # both; about 1-2 h on one core

The same criteria at another basis (a candidate level R3), starting from R2's cis minimum and
R2's crossing (``cis-r2.xyz``, ``crossing-r2.xyz``) to save steps; results go to
``data/stilbene/r2/criteria-<basis>.json`` with ``cis-<basis>.xyz`` and ``crossing-<basis>.xyz``::

    python data/stilbene/r2_crossing.py --basis 6-31G --start-from-r2 --work runs/r3_criteria

At SA-3 (``--n-states 3``: the records and geometries get "-sa3"), from R3's crossing; at
BFGS steps of up to 0.1 Angstrom this search oscillated, at 0.03 it converged (21 + 15 steps,
about 2 minutes each on one thread)::

    python data/stilbene/r2_crossing.py --basis 6-31G --n-states 3 --only crossing \
        --crossing-start data/stilbene/r2/crossing-6-31g.xyz \
        --work data/stilbene/r3/crossing-sa3 --maxstep 0.03

Crossing search: minimise F = (E0 + E1)/2 + sigma dE^2 / (dE + alpha) (Levine, Coe, Martinez,
J. Phys. Chem. B 112, 405 (2008)), sigma 3.5 then 15, alpha 0.02 Hartree, with BFGS; no
constraint keeps the hydrogens in place, so the search reports where it ends (dihedral,
pyramidalisation, and whether a hydrogen has moved between the central carbons).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes
from ase.io import Trajectory, read, write
from ase.optimize import BFGS, FIRE

from fusionff.data import stilbene as sb
from fusionff.labeling.calculator import CasscfCalculator

HERE = Path(__file__).resolve().parent
ALPHA_EV = 0.02 * 27.211386245988


class OnState(Calculator):
    """One state of a multi-state calculator as an ordinary ASE calculator: ``energy`` (eV)
    and ``forces`` (N, 3) eV/Angstrom of state ``state``, and ``energies`` (S,) eV of every
    state. ``inner`` must set ``results["energies"]`` (S,) eV and ``results["state_forces"]``
    (S, N, 3) eV/Angstrom (as :class:`~fusionff.labeling.calculator.CasscfCalculator` and
    :class:`~fusionff.calculator.FusionCalculator` do)."""

    implemented_properties = ["energy", "forces"]

    def __init__(self, inner, state: int):
        super().__init__()
        self.inner, self.state = inner, state

    def calculate(self, atoms=None, properties=None, system_changes=all_changes):
        super().calculate(atoms, properties or ["energy"], system_changes)
        self.inner.calculate(self.atoms, ["energy"], all_changes)
        r = self.inner.results
        self.results = {
            "energy": float(r["energies"][self.state]),
            "forces": r["state_forces"][self.state].copy(),
            "energies": r["energies"].copy(),
        }


class CrossingPenalty(Calculator):
    """The penalty function of the S1/S0 crossing search as an ASE calculator: ``energy``
    F = (E0 + E1)/2 + sigma dE^2 / (|dE| + alpha) in eV, dE = E1 - E0, alpha = ``ALPHA_EV``
    (0.02 Hartree), ``sigma`` dimensionless; ``forces`` -dF/dx (N, 3) eV/Angstrom;
    ``energies`` (E0, E1) eV. ``inner``: a calculator of two or more states as for
    :class:`OnState` (S0 and S1 are used; an SA-3 calculator's S2 only shapes its orbitals)."""

    implemented_properties = ["energy", "forces"]

    def __init__(self, inner, sigma: float):
        super().__init__()
        self.inner, self.sigma = inner, sigma

    def calculate(self, atoms=None, properties=None, system_changes=all_changes):
        super().calculate(atoms, properties or ["energy"], system_changes)
        self.inner.calculate(self.atoms, ["energy"], all_changes)
        energies, forces = self.inner.results["energies"], self.inner.results["state_forces"]
        (e0, e1), (f0, f1) = energies[:2], forces[:2]
        # |gap|: a potential whose states are separate readouts can put S1 below S0; the
        # penalty then still pulls the two together (for the reference, gap >= 0 always)
        gap, a = e1 - e0, ALPHA_EV
        size = abs(gap)
        weight = self.sigma * np.sign(gap) * (gap**2 + 2 * a * size) / (size + a) ** 2
        self.results = {
            "energy": 0.5 * (e0 + e1) + self.sigma * gap**2 / (size + a),
            "forces": 0.5 * (f0 + f1) + weight * (f1 - f0),
            "energies": np.array([e0, e1]),
        }


def _log_energies(calc, path: Path) -> None:
    """Append the state energies (eV) and gap of the optimiser's current step to ``path``."""
    energies = calc.results["energies"]
    with open(path, "a") as handle:
        record = {"E_eV": [float(e) for e in energies], "gap_eV": float(energies[1] - energies[0])}
        handle.write(json.dumps(record) + "\n")


def optimise(
    atoms: Atoms,
    calc,
    work: Path,
    name: str,
    fmax: float,
    steps: int,
    maxstep: float = 0.1,
    optimizer: str = "bfgs",
) -> dict:
    """Minimise ``calc``'s energy (:class:`OnState` or :class:`CrossingPenalty`) over
    ``atoms``' positions (Angstrom, changed in place) with ``optimizer`` ("bfgs" or "fire",
    steps of at most ``maxstep`` Angstrom per atom) until the largest force is below ``fmax``
    eV/Angstrom or ``steps`` steps in all are done, continuing from the last frame of
    ``work/<name>.traj`` if it exists; each step goes to that trajectory and its state energies
    (eV) to ``work/<name>.energies.jsonl``.
    Returns whether it converged, the steps in all, the seconds of this call, and E_S0, E_S1
    and their gap in eV at the last geometry."""
    traj_path = work / f"{name}.traj"
    done = 0
    if traj_path.exists() and traj_path.stat().st_size > 0:
        frames = read(traj_path, index=":")
        done = len(frames)
        atoms.positions = frames[-1].positions
    atoms.calc = calc
    t0 = time.perf_counter()
    with Trajectory(traj_path, "a") as traj:
        kind = {"bfgs": BFGS, "fire": FIRE}[optimizer]
        opt = kind(atoms, logfile=str(work / f"{name}.log"), maxstep=maxstep)
        opt.attach(traj.write, interval=1, atoms=atoms)
        opt.attach(_log_energies, interval=1, calc=calc, path=work / f"{name}.energies.jsonl")
        converged = opt.run(fmax=fmax, steps=max(0, steps - done))
    energies = calc.results["energies"]
    return {
        "converged": bool(converged),
        "steps": done + opt.nsteps,
        "seconds_this_call": round(time.perf_counter() - t0, 1),
        "E_S0_eV": float(energies[0]),
        "E_S1_eV": float(energies[1]),
        "gap_eV": float(energies[1] - energies[0]),
    }


def criteria_path(tag: str) -> Path:
    """A level's criteria record: ``r2/criteria.json`` for R2 (tag "r2"), else
    ``r2/criteria-<tag>.json`` (tag: the basis in lower case, e.g. "6-31g")."""
    return HERE / "r2" / ("criteria.json" if tag == "r2" else f"criteria-{tag}.json")


def describe_geometry(positions: np.ndarray) -> dict:
    """Of stilbene positions (26, 3) Angstrom: the central dihedral and the angle sums at C1
    and C2 (degrees), and the shorter of the distances H1-C2 and H2-C1 (about 2.1 Angstrom
    normally; a hydrogen bridging the central carbons comes within 1.3)."""
    return {
        "dihedral_deg": float(sb.dihedral(positions)),
        "angle_sum_C1_deg": float(sb.pyramidalisation(positions, sb.C1)),
        "angle_sum_C2_deg": float(sb.pyramidalisation(positions, sb.C2)),
        "H_to_other_central_carbon_A": sb.hydrogen_bridge_distance(positions),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", type=Path, default=Path("runs/r2_criteria"))
    parser.add_argument("--fmax", type=float, default=0.05, help="eV/Angstrom")
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--only", choices=("cis", "crossing"))
    parser.add_argument("--basis", default="STO-3G", help="basis set (R2: STO-3G)")
    parser.add_argument(
        "--start-from-r2",
        action="store_true",
        help="start from R2's cis minimum and crossing (cis-r2.xyz, crossing-r2.xyz)",
    )
    parser.add_argument(
        "--n-states", type=int, choices=(2, 3), default=2,
        help="states in the average (3: SA-3; the records and geometries get '-sa3')",
    )  # fmt: skip
    parser.add_argument(
        "--crossing-start", type=Path,
        help="xyz to start the crossing search from (e.g. r2/crossing-6-31g.xyz, R3's)",
    )  # fmt: skip
    parser.add_argument(
        "--maxstep", type=float, default=0.1,
        help="largest step of one atom, Angstrom (0.1 found R2's and R3's crossings; the SA-3 "
        "search oscillated at 0.1)",
    )  # fmt: skip
    parser.add_argument("--optimizer", choices=("bfgs", "fire"), default="bfgs")
    args = parser.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    tag = "r2" if args.basis.upper() == "STO-3G" else args.basis.lower()
    if args.n_states == 3:
        tag += "-sa3"
    out_path = criteria_path(tag)
    results = json.loads(out_path.read_text()) if out_path.exists() else {}
    results["basis"] = args.basis
    casscf = CasscfCalculator(
        (sb.C1, sb.C2),
        n_states=args.n_states,
        basis=args.basis,
        couplings=False,
        orbital_store=str(args.work / "orbitals"),
    )
    if args.only in (None, "cis"):
        atoms = read(HERE / "r2" / "cis-r2.xyz") if args.start_from_r2 else sb.cis_stilbene()
        info = optimise(atoms, OnState(casscf, 0), args.work, "cis-s0", args.fmax, args.steps)
        results["cis_S0_minimum"] = info | describe_geometry(atoms.positions)
        write(HERE / "r2" / f"cis-{tag}.xyz", Atoms(atoms.numbers, atoms.positions))
        out_path.write_text(json.dumps(results, indent=1))
    if args.only in (None, "crossing"):
        if args.crossing_start is not None:
            start = read(args.crossing_start).positions
        elif args.start_from_r2:
            start = read(HERE / "r2" / "crossing-r2.xyz").positions
        else:
            start = sb.set_torsion(sb.cis_stilbene(torsion=90.0).positions, 90.0)
            start = sb.pyramidalise(start, sb.C1, 330.0)
        atoms = Atoms(numbers=sb.cis_stilbene().numbers, positions=start)
        info = {}
        for sigma in (3.5, 15.0):
            info[f"sigma_{sigma:g}"] = optimise(
                atoms,
                CrossingPenalty(casscf, sigma),
                args.work,
                f"crossing-sigma{sigma:g}",
                args.fmax,
                args.steps,
                args.maxstep,
                args.optimizer,
            )
        results["crossing"] = info | describe_geometry(atoms.positions)
        write(HERE / "r2" / f"crossing-{tag}.xyz", Atoms(atoms.numbers, atoms.positions))
    if "cis_S0_minimum" in results and "crossing" in results:  # either run may come first
        results["crossing_S1_minus_cis_FC_S1_eV"] = (
            results["crossing"][f"sigma_{15.0:g}"]["E_S1_eV"] - results["cis_S0_minimum"]["E_S1_eV"]
        )
    out_path.write_text(json.dumps(results, indent=1))
    print(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
