"""Is the twisted S1 minimum a trap? The planar twisted S1 minimum (P*) against the S1/S0
crossing, on the models and at R3 itself.

    python data/stilbene/r3/s1_trap.py MODEL [MODEL ...] --runs RUN_DIR [--starts 4]
    python data/stilbene/r3/s1_trap.py MODEL --runs RUN_DIR --reference --work runs/r3_trap
    python data/stilbene/r3/s1_trap.py --reference --reference-states 3 --work runs/r3_trap_sa3

Why: on the snapshot-6 models cis trajectories twist within about 50 fs and then stay on S1
for 600 fs; where they pass R3's crossing region R3's own gap is about 1 eV
(``crossing_region_frames.py``, seam3). If S1 has a minimum well below the crossing, S1 decay
needs a barrier crossing and is slow on the level itself, whatever the model.

What it measures (energies in eV relative to the same level's S1 at R3's cis minimum, the
Franck-Condon point ``../r2/cis-6-31g.xyz``; geometry as central dihedral 2-0-13-15 and the
angle sums at the central carbons, degrees):

1. each model at R3's cis minimum and at R3's relaxed crossing (``../r2/crossing-6-31g.xyz``,
   ``../r2/criteria-6-31g.json``): gap and S1 energy there;
2. each model's own crossing, minimised from R3's (penalty function of ``../r2_crossing.py``,
   sigma 15), and its S1 minima relaxed from the last frames of the first ``--starts``
   trajectories of ``--runs``; then the S1 path from the lowest S1 minimum to the model's
   crossing (climbing-image NEB, 9 inner images) and its highest point (the barrier);
3. ``--reference``: R3 itself at the first model's S1 minimum, then relaxed on R3's S1 from there
   (BFGS, resumable: each step goes to ``WORK/p-star-r3.traj``; about 3 minutes a step on a
   shared core), against R3's crossing energy.

Results go to ``--out`` (JSON, default ``s1-trap.json`` beside this script), geometries to
``s1-trap/`` beside it: each model's lowest S1 minimum (``p-star-<tag>.xyz``) and its S1 path
to its crossing (``path-<tag>.xyz``, 11 frames; ``image`` and the model's ``S1_eV`` relative to
its FC S1 in each frame's info), and R3's minimum (``p-star-r3.xyz``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.io import read, write
from ase.mep import NEB
from ase.optimize import BFGS, FIRE

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from r2_crossing import CrossingPenalty, OnState, describe_geometry, optimise  # noqa: E402

from fusionff.analysis.run import read_positions  # noqa: E402
from fusionff.potential import model_tag  # noqa: E402

FC = HERE.parent / "r2" / "cis-6-31g.xyz"
CROSSING = HERE.parent / "r2" / "crossing-6-31g.xyz"
CRITERIA = HERE.parent / "r2" / "criteria-6-31g.json"
GEOMETRIES = HERE / "s1-trap"


def relax(atoms: Atoms, calc, fmax: float = 0.02, steps: int = 500) -> tuple[Atoms, bool, int]:
    """Minimise ``calc``'s energy (eV) over a copy of ``atoms`` (Angstrom) with BFGS, steps of
    at most 0.05 Angstrom, to a largest force below ``fmax`` eV/Angstrom. Returns the relaxed
    copy (with ``calc`` attached), whether it converged, and the steps taken."""
    atoms = Atoms(atoms.numbers, atoms.positions)
    atoms.calc = calc
    opt = BFGS(atoms, logfile=None, maxstep=0.05)
    converged = bool(opt.run(fmax=fmax, steps=steps))
    return atoms, converged, int(opt.nsteps)


def path_on_state(
    start: Atoms, end: Atoms, make_calc, n_images: int = 9, fmax: float = 0.05, steps: int = 500
) -> dict:
    """Climbing-image NEB between ``start`` and ``end`` (Angstrom; both ends held) on the
    surface that ``make_calc()`` gives (a fresh ASE calculator per image; energy in eV).
    Returns each image's energy (eV) along the path, the highest inner image's index and
    energy minus the start's (the barrier, eV), whether the band converged, and the images."""
    images = [Atoms(start.numbers, start.positions)]
    images += [Atoms(start.numbers, start.positions) for _ in range(n_images)]
    images += [Atoms(end.numbers, end.positions)]
    for image in images:
        image.calc = make_calc()
    band = NEB(images, climb=True, method="improvedtangent")
    band.interpolate(method="idpp")
    converged = bool(FIRE(band, logfile=None).run(fmax=fmax, steps=steps))
    energies = np.array([image.get_potential_energy() for image in images])
    top = 1 + int(np.argmax(energies[1:-1]))
    return {
        "energies_eV": energies.tolist(),
        "highest_image": top,
        "barrier_eV": float(energies[top] - energies[0]),
        "converged": converged,
        "images": images,
    }


def _energies(calc, atoms: Atoms) -> np.ndarray:
    calc.calculate(Atoms(atoms.numbers, atoms.positions), ["energy"])
    return np.asarray(calc.results["energies"], dtype=np.float64)


def _geometry(positions: np.ndarray) -> dict:
    return {k: round(v, 2) for k, v in describe_geometry(positions).items()}


def model_part(model: str, runs: list[Path], starts: int, tag: str) -> dict:
    """Steps 1 and 2 of the module docstring for one model file."""
    from fusionff.calculator import FusionCalculator

    calc = FusionCalculator(model, device="cpu")
    fc, crossing = read(FC), read(CROSSING)
    e_fc = _energies(calc, fc)
    e_x = _energies(calc, crossing)
    out = {
        "model": model,
        "FC_gap_eV": float(e_fc[1] - e_fc[0]),
        "at_R3_crossing": {"gap_eV": float(e_x[1] - e_x[0]), "S1_eV": float(e_x[1] - e_fc[1])},
    }
    own, conv, n = relax(crossing, CrossingPenalty(calc, 15.0))
    e = _energies(calc, own)
    rmsd = float(np.sqrt(((own.positions - crossing.positions) ** 2).sum(axis=1).mean()))
    out["own_crossing"] = {
        "converged": conv,
        "steps": n,
        "gap_eV": float(e[1] - e[0]),
        "S1_eV": float(e[1] - e_fc[1]),
        "rmsd_to_R3_crossing_A": rmsd,
        **_geometry(own.positions),
    }
    minima = []
    numbers = fc.numbers
    paths = [p for run in runs for p in sorted(run.glob("traj_*.h5md"))][:starts]
    for path in paths:
        _, positions = read_positions(path, list(range(len(numbers))))
        start = Atoms(numbers, positions[-1])
        minimum, conv, n = relax(start, OnState(calc, 1))
        e = _energies(calc, minimum)
        minima.append(
            {
                "start": f"{path.parent.name}/{path.name}",
                "start_dihedral_deg": round(describe_geometry(start.positions)["dihedral_deg"], 1),
                "converged": conv,
                "steps": n,
                "gap_eV": float(e[1] - e[0]),
                "S1_eV": float(e[1] - e_fc[1]),
                **_geometry(minimum.positions),
                "_atoms": minimum,
            }
        )
    if not minima:
        raise SystemExit(f"no traj_*.h5md in {', '.join(map(str, runs))}")
    lowest = min(minima, key=lambda m: m["S1_eV"])
    GEOMETRIES.mkdir(exist_ok=True)
    write(GEOMETRIES / f"p-star-{tag}.xyz", Atoms(numbers, lowest["_atoms"].positions))
    path = path_on_state(lowest["_atoms"], own, lambda: OnState(calc, 1))
    frames = []
    for k, (image, energy) in enumerate(zip(path["images"], path["energies_eV"], strict=True)):
        frame = Atoms(numbers, image.positions)
        frame.info.update(image=k, S1_eV=round(float(energy - e_fc[1]), 4), model=tag)
        frames.append(frame)
    write(GEOMETRIES / f"path-{tag}.xyz", frames)
    out["S1_minima"] = [{k: v for k, v in m.items() if k != "_atoms"} for m in minima]
    out["S1_minimum_below_own_crossing_eV"] = out["own_crossing"]["S1_eV"] - lowest["S1_eV"]
    out["path_to_own_crossing"] = {
        "S1_eV": [float(x - e_fc[1]) for x in path["energies_eV"]],
        "barrier_eV": path["barrier_eV"],
        "converged": path["converged"],
        "highest_image": {
            "index": path["highest_image"],
            **_geometry(path["images"][path["highest_image"]].positions),
        },
    }
    return out


def reference_part(
    start: Path,
    work: Path,
    store: Path,
    fmax: float,
    steps: int,
    n_states: int = 2,
    probe: Path | None = None,
) -> dict:
    """Step 3 of the module docstring: R3 at ``start`` and relaxed on its S1 from there,
    each structure starting from the orbitals of the nearest geometry in ``store``.

    ``n_states=3`` relaxes on S1 of SA-3-CASSCF(2,2)/6-31G instead (the third root of the
    (2,2) space lies near S1 in R3's trap: README, "A third state at the twisted minimum"),
    written as ``p-star-r3-sa3``; its FC S1 and its S1 at R3's crossing geometry come from
    ``probe`` (``third_state_probe.py``'s JSON, points ``cis_FC`` and ``R3_crossing``)."""
    from fusionff.data import stilbene as sb
    from fusionff.labeling.calculator import CasscfCalculator

    if n_states == 2:
        criteria = json.loads(CRITERIA.read_text())
        fc_s1 = criteria["cis_S0_minimum"]["E_S1_eV"]
        crossing_s1 = criteria["crossing"]["sigma_15"]["E_S1_eV"]
        name = "p-star-r3"
    elif n_states == 3:
        if probe is None or not probe.exists():
            raise FileNotFoundError(f"SA-3 reference energies: no probe file {probe}")
        points = json.loads(probe.read_text())["points"]
        missing = [k for k in ("cis_FC", "R3_crossing") if "E_eV" not in points.get(k, {})]
        if missing:
            raise ValueError(f"{probe}: no SA-3 energies at {', '.join(missing)}")
        fc_s1 = points["cis_FC"]["E_eV"][1]
        crossing_s1 = points["R3_crossing"]["E_eV"][1]
        name = "p-star-r3-sa3"
    else:
        raise ValueError(f"n_states must be 2 or 3, got {n_states}")
    work.mkdir(parents=True, exist_ok=True)
    casscf = CasscfCalculator(
        (sb.C1, sb.C2), n_states=n_states, basis="6-31G", couplings=False,
        orbital_store=str(store),
    )  # fmt: skip
    atoms = read(start)
    info = optimise(atoms, OnState(casscf, 1), work, name, fmax, steps)
    with open(work / f"{name}.energies.jsonl") as handle:
        first = json.loads(handle.readline())["E_eV"]  # the level at the start geometry
    write(GEOMETRIES / f"{name}.xyz", Atoms(atoms.numbers, atoms.positions))
    return {
        "start": str(start.relative_to(HERE)) if start.is_relative_to(HERE) else str(start),
        "n_states": n_states,
        "at_start": {"gap_eV": float(first[1] - first[0]), "S1_eV": float(first[1] - fc_s1)},
        "relaxed": {
            "converged": info["converged"],
            "steps": info["steps"],
            "gap_eV": info["gap_eV"],
            "S1_eV": info["E_S1_eV"] - fc_s1,
            **_geometry(atoms.positions),
        },
        "R3_crossing_S1_eV": crossing_s1 - fc_s1,
        "S1_minimum_below_R3_crossing_eV": crossing_s1 - info["E_S1_eV"],
    }


def sa3_crossing_part(sa3: dict, criteria: Path, probe: Path) -> dict:
    """SA-3's own S1/S0 crossing beside its P*: ``sa3`` (the ``R3_SA3`` record of
    :func:`reference_part` with ``n_states=3``) with ``SA3_crossing_S1_eV``, the S1 energy of
    the crossing search's last geometry at sigma 15 (``criteria``, ``r2_crossing.py
    --n-states 3``'s record) relative to the probe's SA-3 FC S1 (as ``sa3``'s energies are),
    ``S1_minimum_below_SA3_crossing_eV`` and the crossing's geometry added. Computes nothing."""
    record = json.loads(criteria.read_text())["crossing"]
    fc_s1 = json.loads(probe.read_text())["points"]["cis_FC"]["E_eV"][1]
    crossing_s1 = record["sigma_15"]["E_S1_eV"] - fc_s1
    geometry = {k: record[k] for k in ("dihedral_deg", "angle_sum_C1_deg", "angle_sum_C2_deg")}
    return sa3 | {
        "SA3_crossing_S1_eV": crossing_s1,
        "SA3_crossing_gap_eV": record["sigma_15"]["gap_eV"],
        "SA3_crossing_geometry": geometry,
        "S1_minimum_below_SA3_crossing_eV": crossing_s1 - sa3["relaxed"]["S1_eV"],
    }


def queue_frames(folder: Path) -> list[Atoms]:
    """A labelling queue over the barrier: R3's S1 minimum (``p-star-r3.xyz``, if there) and
    the inner images of every model's S1 path (``path-*.xyz``, in file-name order), each frame's
    info saying where it came from (``source``, ``image``). Positions Angstrom."""
    frames = []
    if (folder / "p-star-r3.xyz").exists():
        frame = read(folder / "p-star-r3.xyz")
        frames.append(Atoms(frame.numbers, frame.positions, info={"source": "p-star-r3"}))
    for path in sorted(folder.glob("path-*.xyz")):
        images = read(path, index=":")
        for image in images[1:-1]:
            info = {"source": path.stem, "image": int(image.info["image"])}
            frames.append(Atoms(image.numbers, image.positions, info=info))
    return frames


def barrier_table(queue: Path, dataset: Path, models: list[str]) -> list[dict]:
    """R3's labels of the barrier queue against the models, frame by frame: for each labelled
    row of ``dataset`` (the queue ``queue``'s labels, in its order), its source and image, R3's
    S1 relative to R3's FC S1 and gap, and each model's (relative to the model's own FC S1),
    eV. Failed rows are listed with ``failed`` set. A queue frame whose positions are not its
    row's (a rewritten queue) raises ValueError naming the row."""
    from fusionff.calculator import FusionCalculator
    from fusionff.data.dataset import MultiStateDataset

    fc_s1 = json.loads(CRITERIA.read_text())["cis_S0_minimum"]["E_S1_eV"]
    frames = read(queue, index=":")
    calcs = {model_tag(m): FusionCalculator(m, device="cpu") for m in models}
    fc = read(FC)
    model_fc = {tag: _energies(calc, fc)[1] for tag, calc in calcs.items()}
    rows = []
    with MultiStateDataset.open(dataset) as data:
        labelled = [data[i] for i in range(len(data))]
    for k, (frame, label) in enumerate(zip(frames, labelled, strict=False)):
        if not np.allclose(frame.positions, label.positions, atol=1e-6):
            raise ValueError(f"{queue} frame {k} is not the geometry of {dataset} row {k}")
        image = frame.info.get("image")
        row = {"source": frame.info.get("source"), "image": None if image is None else int(image)}
        if label.status != "ok" or not np.all(label.energy_mask[:2]):
            rows.append(row | {"failed": True})  # a failed row reads back as zeros
            continue
        energies = np.asarray(label.energies, dtype=np.float64)
        row["R3_S1_eV"] = float(energies[1] - fc_s1)
        row["R3_gap_eV"] = float(energies[1] - energies[0])
        for tag, calc in calcs.items():
            e = _energies(calc, frame)
            row[tag] = {"S1_eV": float(e[1] - model_fc[tag]), "gap_eV": float(e[1] - e[0])}
        rows.append(row)
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("models", nargs="*", help="model files (*.fff)")
    parser.add_argument("--runs", type=Path, nargs="+", default=[], help="run directories")
    parser.add_argument("--starts", type=int, default=4, help="trajectories to relax from")
    parser.add_argument("--reference", action="store_true", help="also relax P* at R3")
    parser.add_argument(
        "--reference-states", type=int, choices=(2, 3), default=2,
        help="3: relax P* on S1 of SA-3-CASSCF(2,2)/6-31G from R3's P* (no model needed; "
        "orbitals in WORK/sa3.orbitals, energies relative to the probe's, see --probe)",
    )  # fmt: skip
    parser.add_argument(
        "--probe", type=Path, default=HERE / "third-state-probe.json",
        help="third_state_probe.py's results: SA-3 at cis_FC and R3_crossing",
    )  # fmt: skip
    parser.add_argument(
        "--sa3-crossing", type=Path, metavar="CRITERIA",
        help="add SA-3's own crossing (r2_crossing.py --n-states 3's record, e.g. "
        "../r2/criteria-6-31g-sa3.json) to the R3_SA3 record of --out; computes nothing",
    )  # fmt: skip
    parser.add_argument("--work", type=Path, default=Path("runs/r3_trap"))
    parser.add_argument(
        "--orbital-store", type=Path, default=HERE.parent / "stilbene-r3.orbitals",
        help="R3 orbitals to start from (the labelling queues' store)",
    )  # fmt: skip
    parser.add_argument("--fmax", type=float, default=0.05, help="R3 relaxation, eV/Angstrom")
    parser.add_argument("--steps", type=int, default=40, help="R3 relaxation steps in all")
    parser.add_argument("--out", type=Path, default=HERE / "s1-trap.json")
    parser.add_argument(
        "--queue", type=Path, help="also write the barrier labelling queue (xyz) from s1-trap/"
    )
    parser.add_argument(
        "--check", type=Path, nargs=2, metavar=("QUEUE", "DATASET"),
        help="compare the barrier queue's R3 labels with the models (no relaxations)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if args.sa3_crossing:
        results = json.loads(args.out.read_text())
        if "R3_SA3" not in results:
            parser.error(f"{args.out} has no R3_SA3 record: run --reference-states 3 first")
        results["R3_SA3"] = sa3_crossing_part(results["R3_SA3"], args.sa3_crossing, args.probe)
        args.out.write_text(json.dumps(results, indent=1))
        print(json.dumps(results["R3_SA3"], indent=1))
        return 0
    if args.check:
        rows = barrier_table(args.check[0], args.check[1], args.models)
        for row in rows:
            print(json.dumps(row))
        return 0
    if args.models and not args.runs:
        parser.error("--runs is needed to relax S1 minima from trajectories")
    if args.reference and args.reference_states == 2 and not args.models:
        parser.error("--reference starts from the first model's S1 minimum: give a model")
    results = json.loads(args.out.read_text()) if args.out.exists() else {}
    for k, model in enumerate(args.models):
        tag = model_tag(model) or f"model{k}"
        results.setdefault("models", {})[tag] = model_part(model, args.runs, args.starts, tag)
        args.out.write_text(json.dumps(results, indent=1))
    if args.reference and args.reference_states == 3:
        results["R3_SA3"] = reference_part(
            GEOMETRIES / "p-star-r3.xyz", args.work, args.work / "sa3.orbitals", args.fmax,
            args.steps, n_states=3, probe=args.probe,
        )  # fmt: skip
        args.out.write_text(json.dumps(results, indent=1))
    elif args.reference:
        first = model_tag(args.models[0]) or "model0"
        results["R3"] = reference_part(
            GEOMETRIES / f"p-star-{first}.xyz", args.work, args.orbital_store, args.fmax, args.steps
        )
        args.out.write_text(json.dumps(results, indent=1))
    if args.queue:
        frames = queue_frames(GEOMETRIES)
        write(args.queue, frames)
        print(f"{len(frames)} frames -> {args.queue}")
    if args.models or args.reference:
        print(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
