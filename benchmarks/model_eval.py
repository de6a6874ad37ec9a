"""Size and evaluation speed of plain and fusion MultiStateMACE on trans-stilbene (26 atoms).

Prints parameter counts and the time per structure for energies + forces of every state,
single structures (the ASE-calculator path) and batches (the dynamics path), with the ratio
fusion/plain measured in the same process. Writes benchmarks/results/model_eval_<device>.json.

    python benchmarks/model_eval.py [--device cpu|cuda] [--dtype float64|float32]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from fusionff import MultiStateMACE, Potential
from fusionff.data.molecules import trans_stilbene


def best_time(fn, repeat: int, sync=lambda: None) -> float:
    """Best of 3 rounds of ``repeat`` calls, seconds per call (after one warm-up call)."""
    fn()  # warm-up
    sync()
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        for _ in range(repeat):
            fn()
        sync()
        best = min(best, (time.perf_counter() - t) / repeat)
    return best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float64")
    ap.add_argument("--channels", type=int, default=32)
    ap.add_argument("--batches", default="1,16,128")
    args = ap.parse_args()
    dev = torch.device(args.device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    atoms = trans_stilbene()
    z = atoms.numbers
    rng = np.random.default_rng(0)
    rows = []
    for fusion in (False, True):
        torch.manual_seed(0)
        model = MultiStateMACE(
            elements=["H", "C"],
            n_states=2,
            r_max=5.0,
            channels=args.channels,
            l_max=2,
            correlation=3,
            num_layers=2,
            fusion=fusion,
            dtype=args.dtype,
        )
        pot = Potential(model, device=args.device)
        row = {"fusion": fusion, "parameters": model.num_parameters()}
        single = best_time(
            lambda pot=pot: pot.evaluate_structures([z], [atoms.positions]), 10, sync
        )
        row["single_ms"] = 1e3 * single
        for b in [int(s) for s in args.batches.split(",")]:
            x = atoms.positions[None] + 0.05 * rng.normal(size=(b, len(z), 3))
            xt = torch.as_tensor(x, dtype=pot.dtype, device=dev)
            t = best_time(lambda pot=pot, xt=xt: pot.evaluate(z, xt), max(1, 20 // b), sync)
            row[f"batch{b}_ms_per_structure"] = 1e3 * t / b
        rows.append(row)
    plain, fus = rows
    print(
        f"trans-stilbene, 26 atoms, 2 states, C={args.channels}, l_max=2, nu=3, 2 layers, "
        f"{args.dtype}, {args.device} ({platform.processor() or platform.machine()}, "
        f"{torch.get_num_threads()} threads)"
    )
    keys = [k for k in plain if k != "fusion"]
    print(f"{'':28s}{'plain':>12s}{'fusion':>12s}{'fusion/plain':>14s}")
    for k in keys:
        print(f"{k:28s}{plain[k]:12.3f}{fus[k]:12.3f}{fus[k] / plain[k]:14.2f}")
    out = Path(__file__).parent / "results" / f"model_eval_{dev.type}_{args.dtype}.json"
    out.write_text(
        json.dumps(
            {
                "device": args.device,
                "dtype": args.dtype,
                "threads": torch.get_num_threads(),
                "rows": rows,
            },
            indent=2,
        )
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
