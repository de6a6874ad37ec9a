"""Size and evaluation speed of plain and fusion MultiStateMACE on trans-stilbene (26 atoms).

Prints parameter counts and the time per structure for energies + forces of every state,
single structures (the ASE-calculator path) and batches (the dynamics path), with the ratio
fusion/plain measured in the same process. Writes benchmarks/results/model_eval_<device>.json.

    python benchmarks/model_eval.py [--device cpu|cuda] [--dtype float64|float32]
        [--channels 32] [--batches 1,16,128] [--threads N] [--shipped]

``--shipped`` times the trained potentials/stilbene-r1-plain.fff and stilbene-r1.fff (their
own widths and dtype) instead of two randomly initialised models of ``--channels``.
``--files BASELINE.fff OTHER.fff --tag NAME`` times any two model files the same way (the
ratio is OTHER/BASELINE), e.g. the adiabatic and diabatic heads trained side by side at R2::

    python benchmarks/model_eval.py --files potentials/stilbene-r2-adiabatic-round1.fff \
        potentials/stilbene-r2.fff --tag r2_heads --threads 1 --batches 1,8,64
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from fusionff import MultiStateMACE, Potential, load_model
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
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    ap.add_argument("--shipped", action="store_true", help="the trained stilbene potentials")
    ap.add_argument("--files", nargs=2, type=Path, metavar=("BASELINE", "OTHER"))
    ap.add_argument("--tag", help="with --files: the results file is model_eval_<device>_<tag>")
    args = ap.parse_args()
    if args.files and (args.shipped or not args.tag):
        ap.error("--files needs --tag and excludes --shipped")
    if args.threads:
        torch.set_num_threads(args.threads)
    potentials = Path(__file__).parent.parent / "potentials"
    dev = torch.device(args.device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    atoms = trans_stilbene()
    z = atoms.numbers
    rng = np.random.default_rng(0)
    rows = []
    for fusion in (False, True):
        torch.manual_seed(0)
        if args.files:
            model = load_model(args.files[int(fusion)])
        elif args.shipped:
            model = load_model(potentials / f"stilbene-r1{'' if fusion else '-plain'}.fff")
        else:
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
        which = {"file": str(args.files[int(fusion)])} if args.files else {"fusion": fusion}
        row = which | {"parameters": model.num_parameters()}
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
    what = (
        f"{args.files[0]} / {args.files[1]}"
        if args.files
        else "shipped stilbene-r1-plain.fff / stilbene-r1.fff"
        if args.shipped
        else f"C={args.channels}, l_max=2, nu=3, 2 layers, {args.dtype}"
    )
    print(
        f"trans-stilbene, 26 atoms, 2 states, {what}, {args.device} "
        f"({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
    )
    keys = [k for k in plain if k not in ("fusion", "file")]
    names = (
        ("baseline", "other", "other/base") if args.files else ("plain", "fusion", "fusion/plain")
    )
    print(f"{'':28s}{names[0]:>12s}{names[1]:>12s}{names[2]:>14s}")
    for k in keys:
        print(f"{k:28s}{plain[k]:12.3f}{fus[k]:12.3f}{fus[k] / plain[k]:14.2f}")
    tag = args.tag if args.files else "shipped" if args.shipped else args.dtype
    out = Path(__file__).parent / "results" / f"model_eval_{dev.type}_{tag}.json"
    out.write_text(
        json.dumps(
            {
                "device": args.device,
                "models": what,
                "dtype": str(pot.dtype).removeprefix("torch."),
                "threads": torch.get_num_threads(),
                "rows": rows,
            },
            indent=2,
        )
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
