"""CPU cost of an R2 label with the integrals computed once per structure, against the same
label with GATEWAY and SEWARD in every job (the backend before 2026-12-03), in one process.

    OMP_NUM_THREADS=1 python benchmarks/molcas_integrals.py [--n 2] [--json out.json]

Labels ``--n`` structures of data/stilbene/r2/recheck.xyz, each displaced by 0.05 A (normal,
per coordinate; about 0.09 A RMSD, a queue's typical distance to its nearest labelled
neighbour), with ``both_starts`` (the queues' mode: followed RASSCF, SCF, fresh RASSCF,
gradients and coupling) from the orbital store's nearest orbitals, once per mode,
alternating so that a changing machine load hits both. Cost = CPU seconds of OpenMolcas
(user + system of the child processes), which a loaded machine distorts less than wall time;
prints both, their ratios and the largest label difference (energies eV, forces eV/A), which
should be zero: the jobs are the same.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np
from ase.io import read

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fusionff.labeling.molcas import MolcasCasscfBackend, OrbitalStore  # noqa: E402


class EveryJobIntegrals(MolcasCasscfBackend):
    """The baseline: each job computes its own integrals (``integrals=None``)."""

    def _job(self, folder, numbers, positions, n_states, start, gradients=True, integrals=None):
        return super()._job(folder, numbers, positions, n_states, start, gradients, None)


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=2)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    frames = read(ROOT / "data/stilbene/r2/recheck.xyz", f":{args.n}")
    store = ROOT / "data/stilbene/stilbene-r2.orbitals"
    results = {"shared": [], "every_job": []}
    labels = {}
    rng = np.random.default_rng(0)
    for k, atoms in enumerate(frames):
        positions = atoms.positions + rng.normal(scale=0.05, size=atoms.positions.shape)
        start, rmsd = OrbitalStore(store).nearest(atoms.numbers, positions)
        for name, cls in (("shared", MolcasCasscfBackend), ("every_job", EveryJobIntegrals)):
            backend = cls((0, 13), couplings=True, both_starts=True)
            backend._recent.save(atoms.numbers, positions - 1e-3, start)  # the neighbour
            cpu, wall = children_cpu(), time.perf_counter()
            result = backend.compute(atoms.numbers, positions, 2)
            cpu, wall = children_cpu() - cpu, time.perf_counter() - wall
            if not result.ok:
                print(f"structure {k} ({name}) failed: {result.error}")
                return 1
            labels[name, k] = result
            results[name].append({"cpu_s": cpu, "wall_s": wall, "start_rmsd_A": rmsd})
            print(f"structure {k} {name:9s}: {cpu:6.1f} CPU s, {wall:6.1f} s wall", flush=True)
    de = max(
        float(np.abs(labels["shared", k].energies - labels["every_job", k].energies).max())
        for k in range(len(frames))
    )
    df = max(
        float(np.abs(labels["shared", k].forces - labels["every_job", k].forces).max())
        for k in range(len(frames))
    )
    total = {name: sum(r["cpu_s"] for r in rows) for name, rows in results.items()}
    walls = {name: sum(r["wall_s"] for r in rows) for name, rows in results.items()}
    summary = {
        "n": len(frames),
        "cpu_s": total,
        "wall_s": walls,
        "cpu_ratio_every_job_over_shared": total["every_job"] / total["shared"],
        "wall_ratio_every_job_over_shared": walls["every_job"] / walls["shared"],
        "max_energy_difference_eV": de,
        "max_force_difference_eV_per_A": df,
        "per_structure": results,
    }
    print(json.dumps({k: v for k, v in summary.items() if k != "per_structure"}, indent=1))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
