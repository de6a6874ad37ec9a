"""Regenerate the stilbene reference dataset at R1 (MOPAC AM1 OPEN(2,2) C.I.=2, S0 and S1).

Stages, each cached in the work directory so that a killed run continues where it stopped:

  minima     trans and cis stilbene optimised on S0 (ASE BFGS)   -> {trans,cis}-r1.xyz
  hessians   finite-difference S0 Hessians at both minima       -> {trans,cis}-hessian.npz
  samples    geometries to label: Wigner (both isomers, 3 temperatures), twist scans,
             twist x pyramidalisation (seam region)             -> work/<stage>.npz
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
from fusionff.units import AMU_A2_PER_FS2_EV, KB_EV_PER_K, SPEED_OF_LIGHT_CM_PER_FS

HERE = Path(__file__).resolve().parent
ISOMERS = ("trans", "cis")
TEMPERATURES = (0.0, 300.0, 600.0)
CONFORMERS = ("trans", "cis", "trans-perp")
"""S0 minima at R1. "trans" is the near-planar conformer (phenyls twisted ~20 degrees; the
planar C2h geometry is a saddle at R1), "trans-perp" the lower-energy one with both phenyls
perpendicular to the C=C plane. R1's cis minimum also has perpendicular phenyls (a cis
start with 40-degree phenyls slides there), so it starts from them. That R1 prefers
perpendicular phenyls is an artefact of its half-electron reference (see README.md)."""
WIGNER_BLOCKS = tuple((name, t) for name in ISOMERS for t in TEMPERATURES) + (
    ("trans-perp", 300.0),
)
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
    optimizer = BFGS(atoms, logfile=str(logfile), maxstep=0.04)
    if not optimizer.run(fmax=fmax, steps=steps):
        raise RuntimeError(f"S0 optimisation did not converge in {steps} steps (see {logfile})")
    return atoms


def _fd_columns(backend, numbers, positions, columns, step: float, workers: int) -> np.ndarray:
    """Columns ``columns`` of the S0 Hessian (3N, k) eV/Angstrom^2 by central differences
    of forces, unsymmetrised, computed in ``workers`` processes."""
    displaced = []
    for j in columns:
        for sign in (1.0, -1.0):
            x = positions.ravel().copy()
            x[j] += sign * step
            displaced.append(x.reshape(positions.shape))
    n = len(displaced)
    with ProcessPoolExecutor(max_workers=workers) as pool:
        results = list(
            pool.map(compute_safely, [backend] * n, [numbers] * n, displaced, [1] * n, chunksize=4)
        )
    failed = [i for i, r in enumerate(results) if not r.ok]
    if failed:
        raise RuntimeError(
            f"{len(failed)} displaced S0 gradients failed: {results[failed[0]].error}"
        )
    forces = np.array([r.forces[:, 0].ravel() for r in results]).reshape(len(columns), 2, -1)
    return -(forces[:, 0] - forces[:, 1]).T / (2 * step)


def hessian(backend, numbers, positions, step: float, workers: int, tol: float = 0.5):
    """(3N, 3N) eV/Angstrom^2 of S0 by central differences, symmetrised.

    A displaced SCF that lands on another solution spoils one column; such a column
    disagrees with its row (|H_ij - H_ji| > ``tol`` for more than three i) and is computed
    again with 0.7 times the step (twice at most). Returns the Hessian and the number of
    columns recomputed."""
    n3 = positions.size
    h = _fd_columns(backend, numbers, positions, range(n3), step, workers)
    redone = 0
    for _ in range(2):
        bad = np.flatnonzero((np.abs(h - h.T) > tol).sum(axis=0) > 3)
        if bad.size == 0:
            break
        log.warning("Hessian: recomputing %d inconsistent column(s) %s", bad.size, bad.tolist())
        step *= 0.7
        h[:, bad] = _fd_columns(backend, numbers, positions, bad, step, workers)
        redone += bad.size
    return 0.5 * (h + h.T), redone


def stage_minima_and_hessians(args, backend) -> dict:
    """Optimised trans/cis geometries, their Hessians and vertical energies (cached)."""
    summary_path = args.dir / "minima.json"
    if summary_path.exists():
        return json.loads(summary_path.read_text())
    rng = np.random.default_rng([args.seed, 99])
    trans = trans_stilbene().positions
    starts = {
        "trans": sb.twist_phenyl(sb.twist_phenyl(trans, sb.C1, 20.0), sb.C2, 20.0),
        "cis": sb.cis_stilbene(phenyl_twist=90.0).positions,
        "trans-perp": sb.twist_phenyl(sb.twist_phenyl(trans, sb.C1, 90.0), sb.C2, 90.0),
    }
    numbers = trans_stilbene().numbers
    summary = {}
    for name in CONFORMERS:
        xyz, npz = args.dir / f"{name}-r1.xyz", args.dir / f"{name}-hessian.npz"
        t0 = time.perf_counter()
        if not xyz.exists():
            atoms = Atoms(numbers=numbers, positions=starts[name])
            atoms.positions += rng.normal(0.0, 0.01, atoms.positions.shape)  # no exact symmetry
            for attempt in range(args.attempts):
                done = args.work / f"opt-{name}-{attempt}.xyz"
                if done.exists():  # optimised before the run was stopped
                    atoms.positions = read(done).positions
                else:
                    optimise(atoms, args.fmax, args.work / f"opt-{name}-{attempt}.log")
                    write(done, atoms)
                h, redone = hessian(
                    backend, atoms.numbers, atoms.positions, args.fd_step, args.workers
                )
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
                if n_imag == 0 or attempt == args.attempts - 1:
                    break
                # step along every imaginary mode (0.3 A largest atom) and optimise again
                for k in np.flatnonzero(wavenumbers < -10.0):
                    push = modes.cartesian(np.eye(len(wavenumbers))[k])
                    atoms.positions += 0.3 * push / np.abs(push).max()
            if n_imag:
                log.warning(
                    "%s: %d imaginary modes remain; Wigner sampling uses |w| for them",
                    name,
                    n_imag,
                )
            np.savez_compressed(
                npz,
                hessian=h,
                positions=atoms.positions,
                numbers=atoms.numbers,
                step=args.fd_step,
                recomputed_columns=redone,
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


def absolute_hessian(positions, masses, h) -> np.ndarray:
    """The Hessian with each vibrational eigenvalue w^2 replaced by |w^2| (same modes)."""
    modes = normal_modes(positions, masses, h)
    sqrt_m = np.repeat(np.sqrt(masses), 3)
    weighted = modes.vectors @ np.diag(np.abs(modes.omega_squared)) @ modes.vectors.T
    return weighted * np.outer(sqrt_m, sqrt_m) * AMU_A2_PER_FS2_EV


SOFT_CM = 100.0
"""cm^-1: modes below this (the phenyl and central torsions) are sampled with their
ground-state width; their thermal motion is added as rigid phenyl torsions instead."""


def phenyl_torsion_sigma(positions, masses, carbon: int, wavenumber: float, t: float) -> float:
    """Degrees: classical thermal width sqrt(kT / (I w^2)) of a rigid phenyl torsion about its
    C-C(ipso) bond, with I the phenyl's moment of inertia about that axis and w the
    conformer's lowest vibrational frequency (harmonic, so only a guide at large angles)."""
    _, phenyl = sb.substituents(carbon)
    origin = positions[carbon]
    axis = positions[phenyl[0]] - origin
    axis = axis / np.linalg.norm(axis)
    r = positions[list(phenyl)] - origin
    perp = r - np.outer(r @ axis, axis)
    inertia = float(np.sum(masses[list(phenyl)] * np.sum(perp**2, axis=1)))  # amu A^2
    omega = 2 * np.pi * SPEED_OF_LIGHT_CM_PER_FS * abs(wavenumber)  # 1/fs
    stiffness = inertia * omega**2 * AMU_A2_PER_FS2_EV  # eV / rad^2
    return float(np.degrees(np.sqrt(KB_EV_PER_K * t / stiffness)))


def _wigner(args, name, temperature, n, rng) -> np.ndarray:
    """Wigner positions (n, N, 3): modes above SOFT_CM at ``temperature``, softer ones with
    their ground-state width, then (T > 0) each phenyl twisted rigidly by a Gaussian angle of
    its classical thermal width (:func:`phenyl_torsion_sigma`), drawn again on a clash.

    Linear Cartesian sampling of the 20 cm^-1 phenyl torsions at 300 K stretched bonds by up
    to 2 A (the first version of this recipe). A conformer that kept imaginary frequencies
    (R1's rough S0 surface, see README.md) is sampled with them made real (|w|)."""
    positions, masses, h = _minimum(args, name)
    wavenumbers = normal_modes(positions, masses, h).wavenumbers
    if wavenumbers[0] < -10.0:
        log.warning("%s: imaginary modes sampled as real ones of the same |frequency|", name)
        h = absolute_hessian(positions, masses, h)
        wavenumbers = normal_modes(positions, masses, h).wavenumbers
    samples = wigner_sample(positions, masses, h, temperature, n, rng, cold_below=SOFT_CM)[0]
    if temperature == 0:
        return samples
    lowest = float(np.min(np.abs(wavenumbers)))
    sigmas = {
        c: phenyl_torsion_sigma(positions, masses, c, lowest, temperature) for c in (sb.C1, sb.C2)
    }
    log.info("%s %g K: rigid phenyl torsions, sigma %s deg", name, temperature, sigmas)
    numbers = trans_stilbene().numbers
    out = []
    for x in samples:

        def make(rng, x=x):
            y = x
            for carbon, sigma in sigmas.items():
                y = sb.twist_phenyl(y, carbon, rng.normal(0.0, sigma))
            return y, ""

        out.append(_draw(make, rng, numbers=numbers)[0])
    return np.array(out)


def sample_wigner(args, n: int, rng) -> tuple[np.ndarray, list[str]]:
    """Wigner samples, ``n`` in all, in equal blocks: trans and cis at 0/300/600 K and
    trans-perp at 300 K."""
    blocks, tags = [], []
    per = np.array_split(np.arange(n), len(WIGNER_BLOCKS))
    for k, (name, temperature) in enumerate(WIGNER_BLOCKS):
        blocks.append(_wigner(args, name, temperature, len(per[k]), rng))
        tags += [f"wigner {name} {temperature:g}K"] * len(per[k])
    return np.concatenate(blocks), tags


def _source(abs_dihedral: float, rng) -> str:
    """trans-derived below 60 degrees never, above 120 always, linear in between."""
    return "trans" if rng.random() < np.clip((abs_dihedral - 60.0) / 60.0, 0.0, 1.0) else "cis"


MIN_DISTANCE = 1.2
"""Angstrom: a twisted or pyramidalised geometry with two non-bonded atoms closer than this
(phenyl hydrogens pushed into each other) is drawn again."""


def _draw(make, rng, tries: int = 50, numbers=None) -> tuple[np.ndarray, str, int]:
    """Call ``make(rng) -> (positions, tag)`` until the geometry has no clash; returns it and
    the number of draws rejected."""
    numbers = trans_stilbene().numbers if numbers is None else numbers
    for rejected in range(tries):
        positions, tag = make(rng)
        if sb.closest_nonbonded(positions, numbers) >= MIN_DISTANCE:
            return positions, tag, rejected
    raise RuntimeError(f"no geometry without a clash in {tries} draws (last: {tag})")


def _sampled(pools: dict, rng) -> dict:
    """A fresh 300 K Wigner sample of each isomer, taken from the pre-drawn pools."""
    return {name: pool[rng.integers(len(pool))] for name, pool in pools.items()}


def sample_twist(args, n: int, rng) -> tuple[np.ndarray, list[str]]:
    """Central torsion on a 5-degree grid over 0..180, both signs, on 300 K Wigner samples of
    cis (small angles) or trans (large angles), mixed between 60 and 120 degrees."""
    grid = np.linspace(0.0, 180.0, 37)
    pools = {name: _wigner(args, name, 300.0, 2 * n, rng) for name in ISOMERS}
    out, tags, rejected = [], [], 0
    for i in range(n):
        target = grid[i % len(grid)] * (1 if (i // len(grid)) % 2 == 0 else -1)

        def make(rng, target=target):
            source = _source(abs(target), rng)
            positions = sb.set_torsion(_sampled(pools, rng)[source], target)
            return positions, f"twist {source} {target:g}"

        positions, tag, r = _draw(make, rng)
        out.append(positions)
        tags.append(tag)
        rejected += r
    log.info("twist: %d draws rejected for clashes", rejected)
    return np.array(out), tags


def sample_seam(args, n: int, rng) -> tuple[np.ndarray, list[str]]:
    """Twisted and pyramidalised geometries: |dihedral| uniform in 60..120 (three quarters)
    or 20..60 (towards the cis-side crossing), random sign; one ethylenic carbon brought to
    an angle sum uniform in 300..360 degrees; on 300 K Wigner samples."""
    pools = {name: _wigner(args, name, 300.0, 2 * n, rng) for name in ISOMERS}

    def make(rng):
        low, high = (60.0, 120.0) if rng.random() < 0.75 else (20.0, 60.0)
        target = rng.uniform(low, high) * rng.choice([-1.0, 1.0])
        source = _source(abs(target), rng)
        carbon = int(rng.choice([sb.C1, sb.C2]))
        positions = _sampled(pools, rng)[source]
        angle_sum = min(rng.uniform(300.0, 360.0), sb.pyramidalisation(positions, carbon))
        positions = sb.set_torsion(sb.pyramidalise(positions, carbon, angle_sum), target)
        name = f"C{1 if carbon == sb.C1 else 2}"
        return positions, f"seam {source} {name} {target:.1f} {angle_sum:.1f}"

    out, tags, rejected = [], [], 0
    for _ in range(n):
        positions, tag, r = _draw(make, rng)
        out.append(positions)
        tags.append(tag)
        rejected += r
    log.info("seam: %d draws rejected for clashes", rejected)
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


def labelling_order(stages: tuple[str, ...], counts: dict) -> list[tuple[str, int]]:
    """(stage, index in the stage) in labelling order: the sampled stages interleaved (each
    item at its fractional position i / count, ties by stage order), so that a run stopped
    early still has every stage in proportion; the crossing's samples follow, because they
    exist only after the search."""
    sampled = [s for s in stages if s != "meci"]
    order = sorted(
        ((i + 0.5) / counts[s], STAGES.index(s), s, i) for s in sampled for i in range(counts[s])
    )
    items = [(s, i) for _, _, s, i in order]
    if "meci" in stages:
        items += [("meci", i) for i in range(counts["meci"])]
    return items


def label_stages(args, backend, stages: tuple[str, ...], counts: dict, recipe: dict) -> None:
    """Label the geometries of ``stages`` (a prefix of STAGES) into the dataset, resuming."""
    numbers = read(args.dir / "trans-r1.xyz").numbers
    samples = {stage: stage_samples(args, stage, counts[stage]) for stage in stages}
    order = labelling_order(stages, counts)
    geometries = [_Geometry(numbers, samples[stage][i]) for stage, i in order]
    write_provenance(args, recipe, order)  # first, so a partial file says what it holds
    t0 = time.perf_counter()
    summary = label(geometries, backend, 2, args.out, workers=args.workers)
    _timed(args.work / "timings.json", "labelling", time.perf_counter() - t0)
    log.info("labelled %s: %s", "+".join(stages), summary)


def write_provenance(args, recipe: dict, order: list[tuple[str, int]]) -> None:
    """Store the sampling recipe and the stage of every source index in the dataset (as a
    string, one letter per source index: w wigner, t twist, s seam, m meci)."""
    letters = "".join(stage[0] for stage, _ in order)
    store_sampling(args.out, dict(recipe, source_index_stage=letters))


def store_sampling(out: Path, sampling: dict) -> None:
    """Set ``provenance["sampling"]`` of the dataset ``out``, creating it first (with the MOPAC
    backend's provenance, as the labelling runner would) if it does not exist."""
    import h5py

    from fusionff.data.dataset import MultiStateDataset

    if not out.exists():
        provenance = MopacBackend().provenance()
        MultiStateDataset.create(out, 2, method=provenance["method"], provenance=provenance).close()
    with h5py.File(out, "r+") as f:
        provenance = json.loads(f.attrs["provenance"])
        provenance["sampling"] = sampling
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
        letters = ds.provenance["sampling"]["source_index_stage"]
    present = [s for s in STAGES if s[0] in letters]

    def stage_of(index):
        return next(s for s in STAGES if s[0] == letters[index])

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
            s: sum(stage_of(e.meta["source_index"]) == s for e in failed) for s in present
        },
        "ok_per_stage": {s: int(np.sum(stage == s)) for s in present},
        "dihedral_deg": [float(dih.min()), float(dih.max())],
        "abs_dihedral_deg_per_stage": {
            s: [float(np.abs(dih[stage == s]).min()), float(np.abs(dih[stage == s]).max())]
            for s in present
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
            for s in present
            if np.any(stage == s)
        },
        "n_gap_below_0.5eV": int(np.sum(gap < 0.5)),
        "n_gap_below_1eV": int(np.sum(gap < 1.0)),
        "n_gap_below_2eV": int(np.sum(gap < 2.0)),
        "E_S0_eV": [float(min(e.energies[0] for e in ok)), float(max(e.energies[0] for e in ok))],
        "labelling_seconds_per_structure_median": float(np.median([e.meta["seconds"] for e in ok])),
    }
    fig, axes = plt.subplots(1, 4, figsize=(18, 4))
    for s in present:
        m = stage == s
        axes[0].hist(gap[m], bins=60, range=(0, 6), histtype="step", label=s)
        axes[1].hist(dih[m], bins=72, range=(-180, 180), histtype="step", label=s)
        axes[2].scatter(np.abs(dih[m]), gap[m], s=2, label=s)
        axes[3].scatter(pyr[m], gap[m], s=2, label=s)
    axes[0].set(xlabel="S1 - S0 gap (eV)", ylabel="structures", yscale="log")
    axes[1].set(xlabel="central dihedral C-C=C-C (deg)", ylabel="structures")
    axes[2].set(xlabel="|dihedral| (deg)", ylabel="S1 - S0 gap (eV)", xlim=(0, 180))
    axes[3].set(xlabel="smaller angle sum at C1/C2 (deg)", ylabel="S1 - S0 gap (eV)")
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
    parser.add_argument("--fmax", type=float, default=0.003, help="S0 optimisation, eV/A")
    parser.add_argument(
        "--attempts",
        type=int,
        default=1,
        help="optimisations per minimum, each after a "
        "step along the imaginary modes of the one before",
    )
    parser.add_argument("--fd-step", type=float, default=0.01, help="Hessian step, A")
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
        "wigner_blocks": [f"{name} {t:g} K" for name, t in WIGNER_BLOCKS],
        "twist_and_seam_wigner_temperature_K": 300.0,
        "minima": {
            k: {"dihedral_deg": v["dihedral_deg"], "E_S0_eV": v["E_S0_eV"]}
            for k, v in minima.items()
            if k in CONFORMERS
        },
        "optimiser": f"ASE BFGS on S0, fmax {args.fmax} eV/A",
        "hessian": f"central differences of S0 forces, step {args.fd_step} A",
        "description": {
            "wigner": "harmonic Wigner samples: trans, cis at 0/300/600 K, trans-perp at 300 K",
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
