"""How well do the reference forces of the stilbene set agree with their own energies?

For a random sample of labelled structures, this script displaces each one along a random
unit direction u of the 3N-dimensional configuration space by +-h and recomputes both states
with the same MOPAC keywords. The central difference ``D = (E(x + h u) - E(x - h u)) / 2h``
is the energy's derivative along u, which the stored forces predict as ``-F . u``. The
difference ``D + F . u`` is the error of the stored gradient projected on a random direction;
for errors spread evenly over the 3N components its mean absolute value equals the
per-component mean absolute error of the stored forces (the quantity a model's force MAE is
measured in), so it is the floor below which no model of these labels can be shown to be.

    python data/stilbene/check_forces.py [--n 300] [--h 0.005] [--workers 2]

Writes ``data/stilbene/force_check.json`` (per state and per stage: the mean absolute error,
the median and the 95th percentile of ``|D + F . u|`` and the mean of ``|F . u|``, eV/Angstrom)
and prints the table. Units: Angstrom and eV throughout.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from multiprocessing import Pool
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
FILES = {"r1": HERE / "stilbene-r1.h5", "al1": HERE / "stilbene-r1-al1.h5"}
STAGE_NAMES = {"w": "wigner", "t": "twist", "s": "seam", "m": "meci", "a": "active"}

_backend = None


def _init(keywords: str) -> None:
    global _backend
    from fusionff.labeling.mopac import MopacBackend

    _backend = MopacBackend(keywords)


def _directional(task):
    """(E(x + h u) - E(x - h u)) / 2h for both states; NaN where MOPAC failed."""
    numbers, positions, u, h = task
    plus = _backend.compute(numbers, positions + h * u, 2)
    minus = _backend.compute(numbers, positions - h * u, 2)
    return (plus.energies - minus.energies) / (2 * h)


def main(argv=None) -> int:
    from fusionff.data.dataset import MultiStateDataset

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=300, help="structures to check (default 300)")
    p.add_argument("--h", type=float, default=0.005, help="step along u, Angstrom")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=HERE / "force_check.json")
    args = p.parse_args(argv)

    rows = []  # (file key, row, stage letter, numbers, positions, forces)
    keywords = None
    for key, path in FILES.items():
        ds = MultiStateDataset.open(path)
        a = ds.arrays()
        prov = ds.provenance
        keywords = keywords or prov["keywords"]
        if prov["keywords"] != keywords:
            raise ValueError(f"{path}: keywords {prov['keywords']!r} differ from {keywords!r}")
        stages = prov["sampling"].get("source_index_stage", "")
        for i in range(len(a["offsets"]) - 1):
            if not (a["energy_mask"][i].all() and a["force_mask"][i].all()):
                continue
            lo, hi = a["offsets"][i], a["offsets"][i + 1]
            src = json.loads(str(a["meta"][i])).get("source_index", i)
            stage = stages[src] if key == "r1" and src < len(stages) else "a"
            rows.append(
                (key, i, stage, a["numbers"][lo:hi], a["positions"][lo:hi], a["forces"][lo:hi])
            )
    rng = np.random.default_rng(args.seed)
    pick = rng.choice(len(rows), size=min(args.n, len(rows)), replace=False)
    tasks, projected = [], []
    for k in pick:
        _, _, _, numbers, positions, forces = rows[k]
        u = rng.normal(size=positions.shape)
        u /= np.linalg.norm(u)
        tasks.append((numbers, positions, u, args.h))
        projected.append(np.einsum("ask,ak->s", forces, u))  # F_s . u for each state
    start = time.perf_counter()
    with Pool(args.workers, initializer=_init, initargs=(keywords,)) as pool:
        derivs = pool.map(_directional, tasks, chunksize=4)
    seconds = time.perf_counter() - start
    derivs, projected = np.array(derivs), np.array(projected)
    err = derivs + projected  # (n, S) eV/Angstrom
    stage_of = np.array([rows[k][2] for k in pick])
    ok = np.isfinite(err).all(axis=1)
    report = {
        "description": __doc__.split("\n\n")[1].replace("\n", " "),
        "keywords": keywords,
        "h_angstrom": args.h,
        "seed": args.seed,
        "n_checked": int(ok.sum()),
        "n_failed": int((~ok).sum()),
        "seconds": round(seconds, 1),
        "units": "eV/Angstrom",
        "rows": [[rows[k][0], int(rows[k][1])] for k in pick],
        "error": err.tolist(),
        "groups": {},
    }
    groups = {"all": ok} | {
        STAGE_NAMES[s]: ok & (stage_of == s) for s in sorted(set(stage_of)) if s in STAGE_NAMES
    }
    print(f"{ok.sum()} structures checked ({(~ok).sum()} failed) in {seconds:.0f} s, h = {args.h}")
    print(f"{'group':>8} {'n':>4} | per state: MAE  median  p95  of |D + F.u|;  mean |F.u|")
    for name, m in groups.items():
        entry = {"n": int(m.sum())}
        line = f"{name:>8} {m.sum():>4} |"
        for s in range(err.shape[1]):
            e = np.abs(err[m, s])
            stats = {
                "mae": float(e.mean()),
                "median": float(np.median(e)),
                "p95": float(np.percentile(e, 95)),
                "mean_abs_projected_force": float(np.abs(projected[m, s]).mean()),
            }
            entry[f"S{s}"] = stats
            line += (
                f" S{s} {stats['mae']:.3f} {stats['median']:.3f} {stats['p95']:.3f};"
                f" {stats['mean_abs_projected_force']:.3f} |"
            )
        report["groups"][name] = entry
        print(line)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"written {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
