"""What Dask costs and gives on one machine: a LocalCluster of two single-threaded workers
against the local path, in the same process.

1. Empty tasks (``sum`` of two numbers): round trip per task through the local process pool
   (2 processes) and through Dask, 2 in flight per worker as the labelling runner keeps them.
2. Labelling distorted ethylenes with MOPAC (R1, 2 states): ``fusionff label --workers 2``'s
   process pool against ``--dask local:2`` (cluster start reported apart).
3. An ML ensemble on the shipped stilbene potential (``md/stilbene_small_cpu.yaml``, 8
   trajectories in 4 batches of 2, 10 fs): one process (its second run, after one that
   warms it up) against Dask, with cold workers (they import PyTorch and load the model on
   their first batch) and warm ones; the files are checked to be bit-identical to the local
   run's.

Wall times and CPU seconds (user + system, of this process and of the Dask workers, with
the MOPAC runs they waited for); on a machine whose cores are busy with other jobs, CPU
seconds show the overhead better than wall times.

Prints a table and writes benchmarks/results/dask_overhead_cpu.json.

    OMP_NUM_THREADS=1 python benchmarks/dask_overhead.py [--structures 40] [--n-traj 8]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import tempfile
import time
from concurrent.futures import FIRST_COMPLETED, wait
from pathlib import Path

import numpy as np
from ase.build import molecule

from fusionff.executor import DaskPool, ProcessPool
from fusionff.labeling.mopac import MopacBackend
from fusionff.labeling.runner import label

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"


def empty_tasks(pool, n: int) -> float:
    """Seconds per task for ``n`` trivial tasks, two per slot in flight."""
    start = time.perf_counter()
    running, submitted = set(), 0
    while submitted < n or running:
        while submitted < n and len(running) < 2 * pool.slots():
            running.add(pool.submit(sum, [submitted, 1]))
            submitted += 1
        done, running = wait(running, return_when=FIRST_COMPLETED)
        for future in done:
            future.result()
    return (time.perf_counter() - start) / n


def ethylenes(n: int):
    rng = np.random.default_rng(0)
    frames = []
    for _ in range(n):
        atoms = molecule("C2H4")
        atoms.positions += rng.normal(scale=0.05, size=atoms.positions.shape)
        frames.append(atoms)
    return frames


def same_files(a: Path, b: Path, n_traj: int) -> bool:
    import h5py

    def contents(path):
        items = {}
        with h5py.File(path, "r") as f:
            f.visititems(
                lambda name, obj: (
                    items.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None
                )
            )
        return items

    for i in range(n_traj):
        left, right = (contents(d / f"traj_{i:05d}.h5md") for d in (a, b))
        if left.keys() != right.keys() or any(not np.array_equal(left[k], right[k]) for k in left):
            return False
    return True


def ensemble_config(output: Path, n_traj: int, time_fs: float):
    import yaml

    from fusionff.dynamics.run_config import RunConfig

    raw = yaml.safe_load((REPO / "md" / "stilbene_small_cpu.yaml").read_text())
    raw |= {"n_traj": n_traj, "batch_size": 2, "time_fs": time_fs, "output": str(output)}
    return RunConfig.from_dict(raw | {"threads": 1})


def cpu_seconds() -> float:
    """User + system CPU seconds of this process and of its children that ended (MOPAC)."""
    usage = [resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    return sum(u.ru_utime + u.ru_stime for u in usage)


def cluster_cpu(pool) -> float:
    """CPU seconds so far of the client (this process) and of every Dask worker process."""
    return cpu_seconds() + sum(pool.client.run(cpu_seconds).values())


def timed(fn, cpu=cpu_seconds) -> tuple[float, float]:
    """(wall s, CPU s) of ``fn()``."""
    wall, used = time.perf_counter(), cpu()
    fn()
    return time.perf_counter() - wall, cpu() - used


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--structures", type=int, default=40, help="ethylenes to label")
    ap.add_argument("--empty", type=int, default=400, help="empty tasks")
    ap.add_argument("--n-traj", type=int, default=8, help="trajectories (batches of 2)")
    ap.add_argument("--time-fs", type=float, default=10.0, help="trajectory length, fs")
    ap.add_argument("--out", default=str(RESULTS / "dask_overhead_cpu.json"))
    args = ap.parse_args()
    os.chdir(REPO)  # the run input's paths are relative to the repository

    from fusionff.dynamics.runner import run_ensemble

    work = Path(tempfile.mkdtemp(prefix="dask_overhead_"))
    n, n_batches = args.structures, -(-args.n_traj // 2)
    frames, backend = ethylenes(n), MopacBackend()
    result = {
        "machine": platform.machine(),
        "cpus": len(os.sched_getaffinity(0)),
        "load_average_at_start": os.getloadavg(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
    }

    def labelling(name, **kw):
        return lambda: label(frames, backend, 2, work / f"{name}.h5", **kw)

    def ensemble(name, **kw):
        out = work / name
        out.mkdir()
        for cached in ("optimized.xyz", "hessian.npz"):  # the S0 minimum and its Hessian
            source = REPO / "runs" / "stilbene_small_cpu" / cached
            if source.exists():
                shutil.copy(source, out / cached)
        return lambda: run_ensemble(ensemble_config(out, args.n_traj, args.time_fs), **kw)

    try:
        with ProcessPool(2) as pool:
            empty_tasks(pool, 20)  # start the workers
            pool_task = empty_tasks(pool, args.empty)
        label_serial = timed(labelling("serial", workers=1))
        label_pool = timed(labelling("pool", workers=2))[0]
        timed(ensemble("ens_first"))  # computes the Wigner reference if missing, warms up
        ens_local = timed(ensemble("ens_local"))
        tick = time.perf_counter()
        with DaskPool("local:2") as pool:
            cluster_start = time.perf_counter() - tick
            empty_tasks(pool, 20)
            dask_task = empty_tasks(pool, args.empty)
            label_dask = timed(labelling("dask", pool=pool), lambda: cluster_cpu(pool))
            ens_cold = timed(ensemble("ens_cold", pool=pool))[0]
            ens_warm = timed(ensemble("ens_warm", pool=pool), lambda: cluster_cpu(pool))
        identical = all(
            same_files(work / "ens_local", work / n, args.n_traj) for n in ("ens_cold", "ens_warm")
        )
        summary = json.loads((work / "ens_local" / "summary.json").read_text())
        steps = summary["timing"]["trajectory_steps"]
    finally:
        shutil.rmtree(work, ignore_errors=True)

    result |= {
        "empty_task_ms": {"process_pool_2": 1e3 * pool_task, "dask_local_2": 1e3 * dask_task},
        "dask_cluster_start_s": cluster_start,
        "labelling": {
            "structures": n,
            "states": 2,
            "wall_s": {
                "serial": label_serial[0],
                "process_pool_2": label_pool,
                "dask_local_2": label_dask[0],
            },
            "cpu_s": {"serial": label_serial[1], "dask_local_2": label_dask[1]},
            "structures_per_s": {
                "serial": n / label_serial[0],
                "process_pool_2": n / label_pool,
                "dask_local_2": n / label_dask[0],
            },
            "dask_cpu_overhead_per_task_ms": 1e3 * (label_dask[1] - label_serial[1]) / n,
            "ratio_wall_dask_over_pool": label_dask[0] / label_pool,
        },
        "ensemble": {
            "input": "md/stilbene_small_cpu.yaml",
            "n_traj": args.n_traj,
            "batch_size": 2,
            "time_fs": args.time_fs,
            "trajectory_steps": steps,
            "wall_s": {"local": ens_local[0], "dask_cold": ens_cold, "dask_warm": ens_warm[0]},
            "cpu_s": {"local": ens_local[1], "dask_warm": ens_warm[1]},
            "dask_cpu_overhead_per_batch_s": (ens_warm[1] - ens_local[1]) / n_batches,
            "ratio_wall_dask_warm_over_local": ens_warm[0] / ens_local[0],
            "ratio_cpu_dask_warm_over_local": ens_warm[1] / ens_local[1],
            "files_bit_identical": identical,
        },
        "load_average_at_end": os.getloadavg(),
    }
    rows = [
        ("empty task: wall ms", f"{1e3 * pool_task:.2f}", f"{1e3 * dask_task:.2f}"),
        (
            f"label {n}: wall s (serial {label_serial[0]:.1f})",
            f"{label_pool:.2f}",
            f"{label_dask[0]:.2f}",
        ),
        (f"label {n}: CPU s (serial)", f"{label_serial[1]:.2f}", f"{label_dask[1]:.2f}"),
        (
            f"ensemble {args.n_traj} traj: wall s",
            f"{ens_local[0]:.1f}",
            f"{ens_warm[0]:.1f} (cold {ens_cold:.1f})",
        ),
        (f"ensemble {args.n_traj} traj: CPU s", f"{ens_local[1]:.1f}", f"{ens_warm[1]:.1f}"),
    ]
    print(f"{'':36s} {'local':>10s} {'dask local:2':>20s}")
    for name, a, b in rows:
        print(f"{name:36s} {a:>10s} {b:>20s}")
    print(f"Dask cluster start {cluster_start:.1f} s; ensemble files identical: {identical}")
    print(
        f"ratio dask/local: labelling wall {label_dask[0] / label_pool:.2f} (against the pool), "
        f"ensemble wall {ens_warm[0] / ens_local[0]:.2f}, CPU {ens_warm[1] / ens_local[1]:.2f}"
    )
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
