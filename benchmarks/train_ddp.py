"""Data-parallel training on CPU ranks against one process, in the same invocation: time per
epoch and the validation curve of ``fusionff train`` on a random subset of the stilbene R1
set, run (1) as one process with one thread, (2) under ``torchrun --nproc_per_node R`` (gloo,
one thread per rank), optionally (3) as one process with R threads. Same config, same global
batch, so the validation curves should agree to rounding; the speed-up is the ratio of the
epoch times. Writes benchmarks/results/train_ddp_cpu.json.

    python benchmarks/train_ddp.py [--structures 192] [--epochs 4] [--batch 16] [--ranks 2]
        [--threads-baseline]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

from fusionff.data.dataset import MultiStateDataset

MODEL = {
    "r_max": 5.0,
    "channels": 8,
    "l_max": 1,
    "hidden_l_max": 1,
    "correlation": 2,
    "num_layers": 2,
    "radial_mlp": [16],
    "readout_hidden": 8,
}


def write_subset(source: str, path: Path, n: int, seed: int) -> None:
    """``n`` random structures of ``source`` (sorted) into a new dataset file."""
    with MultiStateDataset.open(source) as ds:
        rows = np.sort(np.random.default_rng(seed).choice(len(ds), size=n, replace=False))
        with MultiStateDataset.create(path, ds.n_states, method=ds.method) as out:
            out.extend(ds[int(i)] for i in rows)


def train(config: Path, ranks: int, threads: int) -> float:
    """``fusionff train CONFIG`` as one process (``ranks == 1``) or under torchrun; returns
    the wall time of the command, s."""
    if ranks == 1:
        command = [sys.executable, "-m", "fusionff.cli", "train", str(config)]
    else:
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
        command += ["--nproc_per_node", str(ranks), "-m", "fusionff.cli", "train", str(config)]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="data/stilbene/stilbene-r1.h5")
    ap.add_argument("--structures", type=int, default=192)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--batch", type=int, default=16, help="global batch")
    ap.add_argument("--ranks", type=int, default=2)
    ap.add_argument("--dtype", default="float64", choices=["float32", "float64"])
    ap.add_argument(
        "--threads-baseline", action="store_true", help="also one process with --ranks threads"
    )
    args = ap.parse_args()
    runs = [("1 process, 1 thread", 1, 1), (f"{args.ranks} ranks x 1 thread", args.ranks, 1)]
    if args.threads_baseline:
        runs.append((f"1 process, {args.ranks} threads", 1, args.ranks))
    load_before = os.getloadavg()
    results: dict = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "data": f"{args.structures} random structures of {args.data} (seed 0)",
        "split": "75% train, 25% validation",
        "model": MODEL,
        "dtype": args.dtype,
        "global_batch": args.batch,
        "epochs": args.epochs,
        "runs": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        write_subset(args.data, tmp / "subset.h5", args.structures, seed=0)
        for name, ranks, threads in runs:
            out = tmp / f"run{len(results['runs'])}"
            raw = {
                "data": str(tmp / "subset.h5"),
                "output": str(out),
                "model": MODEL,
                "split": {"train": 0.75, "validation": 0.25, "test": 0.0},
                "loss": {"energy": 100.0, "forces": 1.0},
                "batch_size": args.batch,
                "max_epochs": args.epochs,
                "early_stopping_patience": None,
                "dtype": args.dtype,
                "device": "cpu",
                "seed": 0,
            }
            config = out.with_suffix(".yaml")
            config.write_text(yaml.safe_dump(raw))
            wall = train(config, ranks, threads)
            history = [
                json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()
            ]
            results["runs"][name] = {
                "ranks": ranks,
                "threads": threads,
                "wall_s": wall,
                "epoch_s": [r["time_s"] for r in history],
                "val_loss": [r["val_loss"] for r in history],
                "val_force_mae": [r["val_force_mae"] for r in history],
            }
    results["load_average_before_after"] = [load_before[0], os.getloadavg()[0]]
    names = list(results["runs"])
    base = results["runs"][names[0]]
    print(f"{results['data']}, global batch {args.batch}, {args.dtype}")
    print("epoch " + "".join(f"| {n:>28} " for n in names) + " (epoch s, validation loss)")
    for e in range(args.epochs):
        cells = [(r["epoch_s"][e], r["val_loss"][e]) for r in results["runs"].values()]
        print(f"{e + 1:>5} " + "".join(f"| {t:>13.2f} {v:>14.6e} " for t, v in cells))
    for name in names[1:]:
        run = results["runs"][name]
        # epoch 1 carries one-off costs (allocator warm-up): the median of the rest
        t_base = statistics.median(base["epoch_s"][1:] or base["epoch_s"])
        t_run = statistics.median(run["epoch_s"][1:] or run["epoch_s"])
        pairs = zip(run["val_loss"], base["val_loss"], strict=True)
        diff = max(abs(a - b) / abs(b) for a, b in pairs)
        run |= {"speedup_vs_1_process": t_base / t_run, "val_loss_max_rel_diff": diff}
        print(
            f"{name}: {t_run:.2f} s per epoch against {t_base:.2f} s, speed-up "
            f"{t_base / t_run:.2f}x; validation losses agree to {diff:.1e} (relative); "
            f"wall {run['wall_s']:.1f} s against {base['wall_s']:.1f} s"
        )
    print(f"load average before/after: {results['load_average_before_after']}")
    path = Path(__file__).parent / "results" / "train_ddp_cpu.json"
    path.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
