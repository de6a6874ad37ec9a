"""Regenerate the stilbene reference dataset at R1 (MOPAC AM1 OPEN(2,2) C.I.=2, S0 and S1).

Stages, each cached in the work directory so that a killed run continues where it stopped:

  minima     trans and cis stilbene optimised on S0 (ASE BFGS, n_states=1)  -> {trans,cis}-r1.xyz
  hessians   finite-difference Hessians of S0 at both minima (parallel)     -> {trans,cis}-hessian.npz
  samples    geometries to label: Wigner (both isomers, 3 temperatures), twist scans,
             twist x pyramidalisation (seam region)                          -> work/<stage>.npz
  label      S0 and S1 of every geometry into the HDF5 dataset (resumable runner)
  meci       penalty-function search for the S1/S0 minimum-energy crossing -> meci-r1.xyz
  meci-samples  geometries around the crossing, then labelled into the same dataset

Run from the repository root; the defaults regenerate the shipped set::

    python data/stilbene/recipe.py              # everything (about 1 h on 2 cores)
    python data/stilbene/recipe.py --report     # statistics and coverage.png of the dataset
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes
from ase.io import read, write
from ase.optimize import BFGS

from fusionff.data import stilbene as sb
from fusionff.data.molecules import trans_stilbene
from fusionff.data.structure import Structure
from fusionff.labeling.backend import compute_safely
from fusionff.labeling.calculator import MopacCalculator
from fusionff.labeling.mopac import MopacBackend
from fusionff.labeling.runner import label
from fusionff.sampling import normal_modes, wigner_sample

HERE = Path(__file__).resolve().parent
ISOMERS = ("trans", "cis")
TEMPERATURES = (0.0, 300.0, 600.0)
STAGES = ("wigner", "twist", "seam", "meci")
log = logging.getLogger("stilbene")


# ---------------------------------------------------------------------- small helpers
def _json_dump(path: Path, value: dict) -> None:
    path.write_text(json.dumps(value, indent=2, sort_keys=True) + "\n")


def _timed(timings: Path, name: str, seconds: float) -> None:
    values = json.loads(timings.read_text()) if timings.exists() else {}
    values[name] = round(values.get(name, 0.0) + seconds, 1)
    _json_dump(timings, values)


def s0_s1(backend: MopacBackend, positions: np.ndarray, numbers: np.ndarray) -> np.ndarray:
    """(2,) eV: S0 and S1 energies at one geometry."""
    result = backend.compute(numbers, positions, 2)
    if not result.ok:
        raise RuntimeError(f"S0/S1 calculation failed: {result.error}")
    return result.energies


# ---------------------------------------------------------------------- minima and Hessians
def optimise(atoms: Atoms, fmax: float, logfile: Path, steps: int = 1000) -> Atoms:
    """Minimise S0 at R1 in place; raises if it does not converge."""
    atoms.calc = MopacCalculator(n_states=1)
    optimizer = BFGS(atoms, logfile=str(logfile), maxstep=0.1)
    if not optimizer.run(fmax=fmax, steps=steps):
        raise RuntimeError(f"S0 optimisation did not converge in {steps} steps (see {logfile})")
    return atoms


def hessian(backend, numbers, positions, step: float, workers: int) -> np.ndarray:
    """(3N, 3N) eV/Angstrom^2 of S0 by central differences of forces, computed in parallel."""
    n3 = positions.size
    displaced = []
    for j in range(n3):
        for sign in (1.0, -1.0):
            x = positions.ravel().copy()
            x[j] += sign * step
            displaced.append(x.reshape(positions.shape))
    with ProcessPoolExecutor(max_workers=workers) as pool:
        results = list(
            pool.map(
                compute_safely,
                [backend] * len(displaced),
                [numbers] * len(displaced),
                displaced,
                [1] * len(displaced),
                chunksize=4,
            )
        )
    failed = [i for i, r in enumerate(results) if not r.ok]
    if failed:
        raise RuntimeError(
            f"{len(failed)} displaced S0 gradients failed: {results[failed[0]].error}"
        )
    forces = np.array([r.forces[:, 0].ravel() for r in results]).reshape(n3, 2, n3)
    h = -(forces[:, 0] - forces[:, 1]).T / (2 * step)
    return 0.5 * (h + h.T)


def stage_minima_and_hessians(args, backend) -> dict:
    """Optimised trans/cis geometries, their Hessians and vertical energies (cached)."""
    summary_path = args.dir / "minima.json"
    if summary_path.exists():
        return json.loads(summary_path.read_text())
    rng = np.random.default_rng([args.seed, 99])
    starts = {"trans": trans_stilbene(), "cis": sb.cis_stilbene()}
    summary = {}
    for name in ISOMERS:
        xyz, npz = args.dir / f"{name}-r1.xyz", args.dir / f"{name}-hessian.npz"
        t0 = time.perf_counter()
        if not xyz.exists():
            atoms = starts[name].copy()
            atoms.positions += rng.normal(0.0, 0.01, atoms.positions.shape)  # no exact symmetry
            for attempt in range(3):
                optimise(atoms, args.fmax, args.work / f"opt-{name}-{attempt}.log")
                h = hessian(backend, atoms.numbers, atoms.positions, args.fd_step, args.workers)
                modes = normal_modes(atoms.positions, atoms.get_masses(), h)
                wavenumbers = modes.wavenumbers
                n_imag = int(np.sum(wavenumbers < -10.0))
                log.info(
                    "%s attempt %d: %d imaginary modes, lowest %.1f cm-1",
                    name,
                    attempt,
                    n_imag,
                    wavenumbers[0],
                )
                if n_imag == 0:
                    break
                # follow the lowest imaginary mode downhill and optimise again
                push = modes.cartesian(np.eye(len(wavenumbers))[0])
                atoms.positions += 0.1 * push / np.abs(push).max()
            else:
                raise RuntimeError(f"{name}: still {n_imag} imaginary modes after 3 attempts")
            np.savez_compressed(
                npz, hessian=h, positions=atoms.positions, numbers=atoms.numbers, step=args.fd_step
            )
            write(xyz, atoms)
            _timed(args.work / "timings.json", f"minimum+hessian {name}", time.perf_counter() - t0)
        atoms = read(xyz)
        h = np.load(npz)["hessian"]
        wavenumbers = normal_modes(atoms.positions, atoms.get_masses(), h).wavenumbers
        energies = s0_s1(backend, atoms.positions, atoms.numbers)
        summary[name] = {
            "dihedral_deg": sb.dihedral(atoms.positions),
            "phenyl_dihedrals_deg": [
                sb.dihedral(atoms.positions, (sb.C2, sb.C1, sb.IPSO1, sb.IPSO1 + 1)),
                sb.dihedral(atoms.positions, (sb.C1, sb.C2, sb.IPSO2, sb.IPSO2 + 1)),
            ],
            "E_S0_eV": float(energies[0]),
            "E_S1_eV": float(energies[1]),
            "vertical_gap_eV": float(energies[1] - energies[0]),
            "max_force_eV_per_A": float(
                np.abs(MopacCalculator(n_states=1).get_forces(atoms)).max()
            ),
            "n_imaginary_modes": int(np.sum(wavenumbers < -10.0)),
            "lowest_wavenumbers_cm-1": [round(float(w), 1) for w in wavenumbers[:4]],
        }
        log.info("%s minimum: %s", name, summary[name])
    summary["cis_minus_trans_S0_eV"] = summary["cis"]["E_S0_eV"] - summary["trans"]["E_S0_eV"]
    _json_dump(summary_path, summary)
    return summary


# ---------------------------------------------------------------------- sampling
def _minimum(args, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    data = np.load(args.dir / f"{name}-hessian.npz")
    atoms = read(args.dir / f"{name}-r1.xyz")
    return atoms.positions, atoms.get_masses(), data["hessian"]


def _wigner(args, name, temperature, n, rng) -> np.ndarray:
    positions, masses, h = _minimum(args, name)
    return wigner_sample(positions, masses, h, temperature, n, rng)[0]


def sample_wigner(args, n: int, rng) -> tuple[np.ndarray, list[str]]:
    """Wigner samples at 0/300/600 K from both minima, ``n`` in all."""
    blocks, tags = [], []
    per = np.array_split(np.arange(n), len(ISOMERS) * len(TEMPERATURES))
    for k, (name, temperature) in enumerate((name, t) for name in ISOMERS for t in TEMPERATURES):
        blocks.append(_wigner(args, name, temperature, len(per[k]), rng))
        tags += [f"wigner {name} {temperature:g}K"] * len(per[k])
    return np.concatenate(blocks), tags


def _source(abs_dihedral: float, rng) -> str:
    """trans-derived below 60 degrees never, above 120 always, linear in between."""
    return "trans" if rng.random() < np.clip((abs_dihedral - 60.0) / 60.0, 0.0, 1.0) else "cis"


def sample_twist(args, n: int, rng) -> tuple[np.ndarray, list[str]]:
    """Central torsion on a 5-degree grid over 0..180, both signs, on 300 K Wigner samples of
    cis (small angles) or trans (large angles), mixed between 60 and 120 degrees."""
    grid = np.linspace(0.0, 180.0, 37)
    pool = {name: _wigner(args, name, 300.0, n, rng) for name in ISOMERS}
    out, tags = [], []
    for i in range(n):
        target = grid[i % len(grid)] * (1 if (i // len(grid)) % 2 == 0 else -1)
        source = _source(abs(target), rng)
        out.append(sb.set_torsion(pool[source][i], target))
        tags.append(f"twist {source} {target:g}")
    return np.array(out), tags


def sample_seam(args, n: int, rng) -> tuple[np.ndarray, list[str]]:
    """Twisted and pyramidalised geometries: |dihedral| uniform in 60..120 (three quarters)
    or 20..60 (towards the cis-side crossing), random sign; one ethylenic carbon brought to
    an angle sum uniform in 300..360 degrees; on 300 K Wigner samples."""
    pool = {name: _wigner(args, name, 300.0, n, rng) for name in ISOMERS}
    out, tags = [], []
    for i in range(n):
        low, high = (60.0, 120.0) if rng.random() < 0.75 else (20.0, 60.0)
        target = rng.uniform(low, high) * rng.choice([-1.0, 1.0])
        source = _source(abs(target), rng)
        carbon = int(rng.choice([sb.C1, sb.C2]))
        angle_sum = rng.uniform(300.0, 360.0)
        positions = pool[source][i]
        angle_sum = min(angle_sum, sb.pyramidalisation(positions, carbon))
        positions = sb.set_torsion(sb.pyramidalise(positions, carbon, angle_sum), target)
        out.append(positions)
        tags.append(f"seam {source} C{1 if carbon == sb.C1 else 2} {target:.1f} {angle_sum:.1f}")
    return np.array(out), tags


def sample_meci(args, n: int, rng) -> tuple[np.ndarray, list[str]]:
    """Around the crossing: its torsion changed by up to +-20 degrees, the pyramidalised
    carbon's angle sum by up to +-15 degrees (towards planar), Gaussian Cartesian noise
    (0.03 A on C, 0.06 A on H); the first geometry is the crossing itself."""
    meci = read(args.dir / "meci-r1.xyz")
    info = json.loads((args.dir / "meci.json").read_text())
    carbon = info["pyramidalised_carbon"]
    sigma = np.where(meci.numbers == 1, 0.06, 0.03)[:, None]
    out, tags = [meci.positions.copy()], ["meci"]
    base_sum = sb.pyramidalisation(meci.positions, carbon)
    for _ in range(n - 1):
        positions = meci.positions.copy()
        target_sum = base_sum + rng.uniform(-15.0, 15.0)
        if target_sum < base_sum:
            positions = sb.pyramidalise(positions, carbon, target_sum)
        positions = sb.set_torsion(positions, sb.dihedral(positions) + rng.uniform(-20.0, 20.0))
        positions = positions + rng.normal(size=positions.shape) * sigma
        out.append(positions)
        tags.append("meci-around")
    return np.array(out), tags


SAMPLERS = {
    "wigner": sample_wigner,
    "twist": sample_twist,
    "seam": sample_seam,
    "meci": sample_meci,
}


def stage_counts(n_total: int) -> dict[str, int]:
    """~40% Wigner, ~30% twist scans, ~30% seam region (of which a sixth around the MECI)."""
    wigner, twist = round(0.4 * n_total), round(0.3 * n_total)
    meci = round(0.05 * n_total)
    return {"wigner": wigner, "twist": twist, "seam": n_total - wigner - twist - meci, "meci": meci}


def stage_samples(args, stage: str, n: int) -> np.ndarray:
    """The geometries of one stage (cached in the work directory)."""
    path = args.work / f"{stage}.npz"
    if not path.exists():
        rng = np.random.default_rng([args.seed, STAGES.index(stage)])
        positions, tags = SAMPLERS[stage](args, n, rng)
        np.savez_compressed(path, positions=positions, tags=np.array(tags))
    return np.load(path)["positions"]


# ---------------------------------------------------------------------- crossing search
class PenaltyCalculator(Calculator):
    """F = (E0 + E1)/2 + sigma dE^2 / (dE + alpha), dE = E1 - E0 (Levine, Coe, Martinez,
    J. Phys. Chem. B 112, 405 (2008)); eV, with alpha = 0.02 hartree."""

    implemented_properties = ["energy", "forces"]

    def __init__(self, sigma: float = 3.5, alpha: float = 0.544, **kwargs):
        super().__init__(**kwargs)
        self.sigma, self.alpha = sigma, alpha
        self.mopac = MopacCalculator(n_states=2)

    def calculate(self, atoms=None, properties=None, system_changes=all_changes):
        super().calculate(atoms, properties or ["energy"], system_changes)
        self.mopac.calculate(self.atoms, ["energy"], all_changes)
        (e0, e1), (f0, f1) = self.mopac.results["energies"], self.mopac.results["state_forces"]
        gap = e1 - e0
        weight = self.sigma * (gap**2 + 2 * self.alpha * gap) / (gap + self.alpha) ** 2
        self.results = {
            "energy": 0.5 * (e0 + e1) + self.sigma * gap**2 / (gap + self.alpha),
            "forces": 0.5 * (f0 + f1) + weight * (f1 - f0),
            "gap": gap,
        }


def stage_meci(args, backend) -> dict:
    """Penalty-function S1/S0 crossing search started at a 90-degree twist of trans (cached)."""
    path = args.dir / "meci.json"
    if path.exists():
        return json.loads(path.read_text())
    t0 = time.perf_counter()
    trans = read(args.dir / "trans-r1.xyz")
    start = sb.set_torsion(trans.positions, 90.0)
    start = sb.pyramidalise(start, sb.C1, 350.0)  # break the symmetry of the twisted geometry
    atoms = Atoms(numbers=trans.numbers, positions=start)
    steps = 0
    converged = False
    for sigma in (3.5, 15.0):
        atoms.calc = PenaltyCalculator(sigma=sigma)
        optimizer = BFGS(atoms, logfile=str(args.work / f"meci-sigma{sigma:g}.log"), maxstep=0.1)
        converged = optimizer.run(fmax=args.meci_fmax, steps=args.meci_steps)
        steps += optimizer.nsteps
        write(args.work / f"meci-sigma{sigma:g}.xyz", atoms)
    energies = s0_s1(backend, atoms.positions, atoms.numbers)
    sums = {c: sb.pyramidalisation(atoms.positions, c) for c in (sb.C1, sb.C2)}
    carbon = min(sums, key=sums.get)
    cis = json.loads((args.dir / "minima.json").read_text())["cis"]
    info = {
        "converged": bool(converged),
        "steps": steps,
        "E_S0_eV": float(energies[0]),
        "E_S1_eV": float(energies[1]),
        "gap_eV": float(energies[1] - energies[0]),
        "dihedral_deg": sb.dihedral(atoms.positions),
        "angle_sums_deg": {"C1": sums[sb.C1], "C2": sums[sb.C2]},
        "pyramidalised_carbon": int(carbon),
        "S1_above_cis_S1_at_S0_min_eV": float(energies[1] - cis["E_S1_eV"]),
        "seconds": round(time.perf_counter() - t0, 1),
    }
    write(args.dir / "meci-r1.xyz", atoms)
    _json_dump(path, info)
    log.info("MECI: %s", info)
    return info


# ---------------------------------------------------------------------- labelling
class _Geometry:
    def __init__(self, numbers, positions):
        self.numbers, self.positions = numbers, positions


def label_stages(args, backend, stages: tuple[str, ...], counts: dict, recipe: dict) -> None:
    """Label the geometries of ``stages`` (a prefix of STAGES) into the dataset, resuming."""
    numbers = read(args.dir / "trans-r1.xyz").numbers
    geometries = [
        _Geometry(numbers, p) for stage in stages for p in stage_samples(args, stage, counts[stage])
    ]
    t0 = time.perf_counter()
    summary = label(geometries, backend, 2, args.out, workers=args.workers)
    _timed(args.work / "timings.json", "labelling", time.perf_counter() - t0)
    log.info("labelled %s: %s", "+".join(stages), summary)
    write_provenance(args, recipe, stages, counts)


def write_provenance(args, recipe: dict, stages, counts) -> None:
    """Store the sampling recipe (and source-index ranges of the stages) in the dataset."""
    import h5py

    start, ranges = 0, {}
    for stage in stages:
        ranges[stage] = [start, start + counts[stage]]
        start += counts[stage]
    with h5py.File(args.out, "r+") as f:
        provenance = json.loads(f.attrs["provenance"])
        provenance["sampling"] = dict(recipe, source_index_ranges=ranges)
        f.attrs["provenance"] = json.dumps(provenance, sort_keys=True)


# ---------------------------------------------------------------------- report
def report(args) -> dict:
    """Statistics of the labelled dataset (per stage, dihedral, pyramidalisation, gap) and
    the coverage plot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from fusionff.data.dataset import MultiStateDataset

    with MultiStateDataset.open(args.out) as ds:
        entries: list[Structure] = list(ds)
        ranges = json.loads(json.dumps(ds.provenance))["sampling"]["source_index_ranges"]

    def stage_of(index):
        return next(s for s, (a, b) in ranges.items() if a <= index < b)

    ok = [e for e in entries if e.status == "ok"]
    stage = np.array([stage_of(e.meta["source_index"]) for e in ok])
    gap = np.array([e.energies[1] - e.energies[0] for e in ok])
    dih = np.array([sb.dihedral(e.positions) for e in ok])
    pyr = np.array([min(sb.pyramidalisation(e.positions, c) for c in (sb.C1, sb.C2)) for e in ok])
    failed = [e for e in entries if e.status != "ok"]
    stats = {
        "n_entries": len(entries),
        "n_ok": len(ok),
        "n_failed": len(failed),
        "failed_per_stage": {
            s: sum(stage_of(e.meta["source_index"]) == s for e in failed) for s in ranges
        },
        "ok_per_stage": {s: int(np.sum(stage == s)) for s in ranges},
        "dihedral_deg": [float(dih.min()), float(dih.max())],
        "abs_dihedral_deg_per_stage": {
            s: [float(np.abs(dih[stage == s]).min()), float(np.abs(dih[stage == s]).max())]
            for s in ranges
            if np.any(stage == s)
        },
        "min_angle_sum_deg": [float(pyr.min()), float(pyr.max())],
        "gap_eV": [float(gap.min()), float(gap.max())],
        "gap_eV_per_stage": {
            s: [
                float(gap[stage == s].min()),
                float(np.median(gap[stage == s])),
                float(gap[stage == s].max()),
            ]
            for s in ranges
            if np.any(stage == s)
        },
        "n_gap_below_0.5eV": int(np.sum(gap < 0.5)),
        "n_gap_below_1eV": int(np.sum(gap < 1.0)),
        "n_gap_below_2eV": int(np.sum(gap < 2.0)),
        "E_S0_eV": [float(min(e.energies[0] for e in ok)), float(max(e.energies[0] for e in ok))],
        "labelling_seconds_per_structure_median": float(np.median([e.meta["seconds"] for e in ok])),
    }
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    for s in ranges:
        m = stage == s
        axes[0].hist(gap[m], bins=60, range=(0, 6), histtype="step", label=s)
        axes[1].hist(dih[m], bins=72, range=(-180, 180), histtype="step", label=s)
        axes[2].scatter(np.abs(dih[m]), gap[m], s=2, label=s)
    axes[0].set(xlabel="S1 - S0 gap (eV)", ylabel="structures", yscale="log")
    axes[1].set(xlabel="central dihedral C-C=C-C (deg)", ylabel="structures")
    axes[2].set(xlabel="|dihedral| (deg)", ylabel="S1 - S0 gap (eV)", xlim=(0, 180))
    axes[0].legend()
    fig.suptitle(f"stilbene at R1: {len(ok)} structures (MOPAC AM1 OPEN(2,2) C.I.=2)")
    fig.tight_layout()
    fig.savefig(args.dir / "coverage.png", dpi=110)
    _json_dump(args.dir / "stats.json", stats)
    print(json.dumps(stats, indent=2))
    return stats


# ---------------------------------------------------------------------- main
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--out",
        type=Path,
        default=HERE / "stilbene-r1.h5",
        help="HDF5 dataset (continued if it exists)",
    )
    parser.add_argument(
        "--dir",
        type=Path,
        default=HERE,
        help="where minima, Hessians, the crossing and the report go",
    )
    parser.add_argument(
        "--work",
        type=Path,
        default=HERE / "work",
        help="cache of intermediate stages (optimiser logs, sampled geometries)",
    )
    parser.add_argument("--workers", type=int, default=2, help="parallel MOPAC processes")
    parser.add_argument("--n-total", type=int, default=4400, help="structures to label")
    parser.add_argument("--seed", type=int, default=20261125)
    parser.add_argument("--fmax", type=float, default=0.01, help="S0 optimisation, eV/A")
    parser.add_argument("--fd-step", type=float, default=0.005, help="Hessian step, A")
    parser.add_argument("--meci-fmax", type=float, default=0.05)
    parser.add_argument("--meci-steps", type=int, default=300)
    parser.add_argument(
        "--skip-meci",
        action="store_true",
        help="stop after the first three stages (no crossing search)",
    )
    parser.add_argument("--report", action="store_true", help="only write stats and the plot")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    args.work.mkdir(parents=True, exist_ok=True)
    if args.report:
        report(args)
        return 0
    backend = MopacBackend()
    minima = stage_minima_and_hessians(args, backend)
    counts = stage_counts(args.n_total)
    recipe = {
        "recipe": "data/stilbene/recipe.py",
        "seed": args.seed,
        "counts": counts,
        "wigner_temperatures_K": list(TEMPERATURES),
        "twist_and_seam_wigner_temperature_K": 300.0,
        "minima": {
            k: {"dihedral_deg": v["dihedral_deg"], "E_S0_eV": v["E_S0_eV"]}
            for k, v in minima.items()
            if k in ISOMERS
        },
        "optimiser": f"ASE BFGS on S0, fmax {args.fmax} eV/A",
        "hessian": f"central differences of S0 forces, step {args.fd_step} A",
        "description": {
            "wigner": "harmonic Wigner samples of trans and cis at 0, 300, 600 K",
            "twist": "central torsion set on a 5 deg grid 0..180, both signs, on 300 K samples",
            "seam": "|torsion| 60..120 (3/4) or 20..60, one C brought to angle sum 300..360",
            "meci": "around the penalty-function S1/S0 crossing (torsion +-20 deg, "
            "pyramidalisation +-15 deg, noise 0.03 A C / 0.06 A H)",
        },
    }
    label_stages(args, backend, STAGES[:3], counts, recipe)
    if args.skip_meci:
        return 0
    recipe["meci"] = stage_meci(args, backend)
    label_stages(args, backend, STAGES, counts, recipe)
    report(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
