"""Is a stored R3 label on the lowest SA-CASSCF solution? Carry solutions to it along paths.

SA-CASSCF minimises the state-averaged energy, and a start can converge on a higher
solution that still passes the active-space guard (``../r2/README.md``, "Two SA-CASSCF
solutions"). A label whose fresh start failed rests on its followed start alone
(``meta.failed_start``); this script gives it other starts. From each anchor (a labelled
structure, Kabsch-aligned onto the target) it walks a straight Cartesian path to the target
in ``--steps`` steps, RASSCF alone at each point (no gradients), the anchor from a fresh
start and every later point from the previous point's converged orbitals. At the target it
compares each path's state average with the stored label's (computed the same way, from the
label's own energies): a path that ends lower shows the label is a higher solution. With
``--models`` the committee's energies along each path are printed beside R3's.

    OMP_NUM_THREADS=1 python data/stilbene/r3/start_path.py \\
        data/stilbene/stilbene-r3-al15.h5:27 \\
        --anchors data/stilbene/stilbene-r3-al14.h5:6 data/stilbene/stilbene-r3-al10.h5:5 \\
        --models potentials/stilbene-r3.fff potentials/stilbene-r3-partner.fff \\
                 potentials/stilbene-r3-c12.fff \\
        --out data/stilbene/r3/start-path-al15-27.json

Energies eV (absolute, as labelled), distances Angstrom. Level: SA-2-CASSCF(2,2)/6-31G,
active orbitals on the central carbons (R3, as ``fusionff label --backend casscf
--active-atoms 0 13 --basis 6-31G`` labels it). A point that fails is recorded with its
reason and ends its path. About 40-100 s a point on one thread.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))
from label_consistency import superpose  # noqa: E402
from r2_crossing import describe_geometry  # noqa: E402


def read_row(spec: str):
    """``FILE.h5:ROW`` -> (numbers, positions Angstrom, energies eV, meta)."""
    from fusionff.data.dataset import MultiStateDataset

    path, _, row = spec.rpartition(":")
    if not path or not row.isdigit():
        raise SystemExit(f"{spec}: expected FILE.h5:ROW")
    with MultiStateDataset.open(path) as dataset:
        if int(row) >= len(dataset):
            raise SystemExit(f"{spec}: the file has {len(dataset)} rows")
        s = dataset[int(row)]
    return np.asarray(s.numbers), np.asarray(s.positions), np.asarray(s.energies), s.meta or {}


def aligned_onto(moving: np.ndarray, fixed: np.ndarray) -> np.ndarray:
    """``moving`` (N, 3) rotated and translated onto ``fixed`` (least squares, proper
    rotation: ``label_consistency.superpose``)."""
    rotation, _ = superpose(fixed, moving)
    return (moving - moving.mean(0)) @ rotation.T + fixed.mean(0)


def nearest_labels(files, numbers, target, k: int, leave_out: str) -> list[str]:
    """``FILE.h5:ROW`` of the ``k`` ok labels of ``files`` nearest to ``target``."""
    from fusionff.data.dataset import MultiStateDataset

    found = []
    for path in files:
        with MultiStateDataset.open(path) as dataset:
            for row, s in enumerate(dataset):
                spec = f"{path}:{row}"
                if s.status != "ok" or spec == leave_out:
                    continue
                if not np.array_equal(np.asarray(s.numbers), numbers):
                    continue
                found.append((superpose(target, np.asarray(s.positions))[1], spec))
    found.sort()
    return [spec for _, spec in found[:k]]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("target", help="FILE.h5:ROW of the label to check")
    parser.add_argument("--anchors", nargs="+", default=[], help="FILE.h5:ROW ...")
    parser.add_argument(
        "--nearest", type=int, default=0,
        help="also take the K labelled structures nearest to the target (Kabsch RMSD; ok "
        "labels of the --among files, the target left out) as anchors",
    )  # fmt: skip
    parser.add_argument("--among", nargs="*", default=[], help="R3 files for --nearest")
    parser.add_argument("--steps", type=int, default=6, help="path segments per anchor")
    parser.add_argument("--basis", default="6-31G")
    parser.add_argument("--active-atoms", type=int, nargs=2, default=(0, 13))
    parser.add_argument("--models", nargs="*", default=[], help="committee files (*.fff)")
    parser.add_argument("--timeout", type=float, default=3600.0, help="s per OpenMolcas job")
    parser.add_argument("--out", type=Path)
    parser.add_argument(
        "--save-store", type=Path,
        help="an orbital store (folder) that keeps the lowest path end's orbitals at the "
        "target: fusionff label --orbital-store DIR then labels the target from them",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if args.steps < 1:
        parser.error("--steps must be at least 1")
    if args.nearest and not args.among:
        parser.error("--nearest needs --among FILE.h5 ...")
    from fusionff.labeling.molcas import MolcasCasscfBackend, MolcasError, OrbitalStore

    numbers, target, stored, meta = read_row(args.target)
    anchors = list(args.anchors)
    if args.nearest:
        anchors += nearest_labels(args.among, numbers, target, args.nearest, args.target)
    committee = None
    if args.models:
        from fusionff.potential import Potential

        committee = Potential(args.models)

    def model_energies(positions):
        if committee is None:
            return None
        (out,) = committee.evaluate_structures([numbers], [positions])
        return np.asarray(out["energies"], dtype=float).tolist()

    backend = MolcasCasscfBackend(
        tuple(args.active_atoms), basis=args.basis, couplings=False, timeout=args.timeout
    )
    report = {
        "target": args.target,
        "stored_eV": stored.tolist(),
        "stored_average_eV": float(np.mean(stored)),
        "stored_start": meta.get("start"),
        "stored_failed_start": meta.get("failed_start"),
        "target_geometry": describe_geometry(target),
        "models_at_target_eV": model_energies(target),
        "basis": args.basis,
        "paths": [],
    }
    print(f"target {args.target}: stored {np.round(stored, 3).tolist()} eV, average "
          f"{np.mean(stored):.3f}; models {report['models_at_target_eV']}", flush=True)  # fmt: skip
    ends = []  # (state average eV, orbital file) of each path that reached the target
    with tempfile.TemporaryDirectory(prefix="start-path-") as work:
        for k, anchor_spec in enumerate(anchors):
            anchor_numbers, anchor, anchor_stored, _ = read_row(anchor_spec)
            if not np.array_equal(anchor_numbers, numbers):
                raise SystemExit(f"{anchor_spec}: not the same atoms as {args.target}")
            start = aligned_onto(anchor, target)
            path = {"anchor": anchor_spec, "anchor_stored_eV": anchor_stored.tolist(),
                    "rmsd_A": float(np.sqrt(np.mean(np.sum((start - target) ** 2, 1)))),
                    "points": []}  # fmt: skip
            report["paths"].append(path)
            orbitals = None
            for i in range(args.steps + 1):
                fraction = i / args.steps
                positions = target if i == args.steps else start + fraction * (target - start)
                saved = Path(work) / f"path{k}-{i}.RasOrb"
                begin = time.perf_counter()
                point = {"fraction": fraction, "start": "fresh" if orbitals is None else "carried"}
                try:
                    energies, seen = backend.energies(
                        numbers, positions, len(stored), orbitals=orbitals, save_orbitals=saved
                    )
                    point |= {"E_eV": energies.tolist(), "average_eV": float(np.mean(energies))}
                    point |= seen
                    orbitals = saved
                except MolcasError as exc:
                    point["failed"] = str(exc)
                point["seconds"] = round(time.perf_counter() - begin, 1)
                point["models_eV"] = model_energies(positions)
                point |= {k2: round(v, 2) for k2, v in describe_geometry(positions).items()}
                path["points"].append(point)
                print(anchor_spec, json.dumps(point), flush=True)
                if args.out:
                    args.out.write_text(json.dumps(report, indent=1))
                if "failed" in point:
                    break
            last = path["points"][-1]
            if last["fraction"] == 1.0 and "failed" not in last:
                path["end_minus_stored_average_eV"] = last["average_eV"] - float(np.mean(stored))
                print(f"{anchor_spec}: path ends {path['end_minus_stored_average_eV']:+.3f} eV "
                      "from the stored label's state average", flush=True)  # fmt: skip
                ends.append((last["average_eV"], orbitals))
        if args.save_store and ends:
            lowest = min(ends, key=lambda end: end[0])
            OrbitalStore(args.save_store).save(numbers, target, lowest[1])
            report["saved_store"] = {"folder": str(args.save_store), "average_eV": lowest[0]}
            print(f"orbitals of the lowest end ({lowest[0]:.3f} eV) stored in {args.save_store}")
    if args.out:
        args.out.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
