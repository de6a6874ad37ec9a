"""Forces of every state: one backward pass per state against one vmapped backward pass over
all states (``torch.autograd.grad(..., is_grads_batched=True)``): the two ways of
:func:`fusionff.models.multistate_mace.state_forces` (``batched``), forced one way each.

On a CPU core the two cost the same (measured 2026-12-04 with the R2 potential, B = 1-64). On
a GPU, evaluation of a few thousand atoms is bound by kernel launches, and the vmapped pass
launches one set of backward kernels instead of one per state, so it may pay there: this
script measures it, prints the ratio loop/batched per batch size and the largest force
difference, and writes benchmarks/results/forces_batched_<device>.json.

    python benchmarks/forces_batched.py [--device cuda] [--batches 1,64,512]
        [--model potentials/stilbene-r2-adiabatic.fff]
"""

from __future__ import annotations

import argparse
import json
import time
from functools import partial
from pathlib import Path

import numpy as np
import torch
from ase.io import read

import fusionff.models.multistate_mace as multistate
from fusionff.data.graph import build_graph
from fusionff.models.io import load_model

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batches", default="1,16,64")
    ap.add_argument("--model", default=str(ROOT / "potentials/stilbene-r2-adiabatic.fff"))
    ap.add_argument("--structure", default=str(ROOT / "data/stilbene/r2/cis-r2.xyz"))
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    model = load_model(args.model).to(device)
    atoms = read(args.structure)
    rng = np.random.default_rng(0)
    library = multistate.state_forces
    ways = {"loop": partial(library, batched=False), "batched": partial(library, batched=True)}
    rows = []
    for b in (int(x) for x in args.batches.split(",")):
        positions = [atoms.positions + rng.normal(0, 0.05, atoms.positions.shape) for _ in range(b)]
        graph = build_graph(
            [atoms.numbers] * b, positions, model.r_max, None, None, model.dtype, device
        )
        best, forces = {}, {}
        for _ in range(2):  # interleaved rounds, the best time of each way kept
            for name, way in ways.items():
                multistate.state_forces = way
                forces[name] = model(graph)["forces"].detach()  # warm-up
                sync()
                tick = time.perf_counter()
                for _ in range(args.repeats):
                    model(graph)
                sync()
                seconds = (time.perf_counter() - tick) / args.repeats
                best[name] = min(best.get(name, np.inf), seconds)
        multistate.state_forces = library
        difference = float((forces["loop"] - forces["batched"]).abs().max())
        rows.append(
            {
                "batch": b,
                "loop_ms": 1e3 * best["loop"],
                "batched_ms": 1e3 * best["batched"],
                "loop_over_batched": best["loop"] / best["batched"],
                "max_force_difference_eV_per_A": difference,
            }
        )
        print(
            f"B {b:5d}: loop {1e3 * best['loop']:9.2f} ms, batched {1e3 * best['batched']:9.2f} "
            f"ms, loop/batched {best['loop'] / best['batched']:.2f}, max |dF| {difference:.1e}",
            flush=True,
        )
    name = torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu"
    out = ROOT / "benchmarks" / "results" / f"forces_batched_{device.type}.json"
    out.write_text(
        json.dumps(
            {"device": name, "model": args.model, "threads": args.threads, "rows": rows}, indent=1
        )
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
