"""How much of a showcase run's yield depends on R2's domain limit, and where its hops are.

R2's CAS(2,2) describes the central C=C pi/pi* only: where a hydrogen of one central carbon
bends over to the other, the C-H bond enters the active space and labels fail the guard (at
1.37-1.58 A on the frames tried), so runs stop trajectories at a domain limit (1.45 A in
md/stilbene_cis_r2.yaml). This script re-applies stricter limits to the written frames (one
per fs; a dip between two frames is missed) of a finished run: a trajectory whose hydrogen
came closer than the limit at any written frame counts as out of the domain, and the yields
are recomputed over the rest, with the products that ``fusionff analyze`` classified. It also
gives the hydrogen-to-other-carbon distance at each hop (nearest written frame).

    fusionff analyze runs/stilbene_cis_r2
    python data/stilbene/r2/showcase_domain.py runs/stilbene_cis_r2 \
        --out data/stilbene/r2/showcase-round13/domain.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import h5py
import numpy as np

from fusionff.analysis.intervals import Proportion

PAIRS = ((1, 13), (14, 0))  # (hydrogen, the other central carbon), 0-based
LIMITS = (1.45, 1.5, 1.55, 1.6, 1.65, 1.7, 1.8)
FAILED_OTHERWISE = ("energy-drift", "state-order", "blew-up", "potential-failed")


def hydrogen_distance(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(time fs, shortest hydrogen-to-other-carbon distance Angstrom) per written frame."""
    with h5py.File(path, "r") as f:
        group = f["particles/molecule/position"]
        positions, time = group["value"][:], group["time"][:]
    d = [np.linalg.norm(positions[:, h] - positions[:, c], axis=-1) for h, c in PAIRS]
    return time, np.minimum(*d)


def percentiles(values: np.ndarray) -> dict[str, float]:
    """The 0, 10, 25, 50, 75 and 100th percentiles of ``values``, rounded to 1e-3."""
    q = (0, 10, 25, 50, 75, 100)
    return dict(zip(map(str, q), np.percentile(values, q).round(3).tolist(), strict=True))


def interval(k: int, n: int) -> dict:
    return Proportion.of(k, n).to_dict()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    summary = json.loads((args.run_dir / "summary.json").read_text())
    analysis = json.loads((args.run_dir / "analysis" / "analysis.json").read_text())
    product = {p["index"]: p["product"] for p in analysis["products"]["trajectories"]}
    trajectories = summary["trajectories"]
    closest, at_hops = [], []
    for t in trajectories:
        time, d = hydrogen_distance(args.run_dir / t["file"])
        closest.append(float(d.min()))
        at_hops += [float(d[np.argmin(np.abs(time - h["time_fs"]))]) for h in t["hops"]]
    closest, at_hops = np.array(closest), np.array(at_hops)
    rows = []
    for limit in LIMITS:
        out = [
            i
            for i, t in enumerate(trajectories)
            if closest[i] < limit or t["status"] == "out-of-domain"
        ]
        kept = [
            i
            for i, t in enumerate(trajectories)
            if i not in set(out) and t["status"] not in FAILED_OTHERWISE
        ]
        n = len(kept)
        counts = {k: sum(product.get(i) == k for i in kept) for k in ("trans", "cis", "DHP", "S1")}
        decayed = counts["trans"] + counts["cis"] + counts["DHP"]
        rows.append(
            {
                "limit_angstrom": limit,
                "out_of_domain": len(out),
                "analysed": n,
                "counts": counts,
                "s0": interval(decayed, n),
                "quantum_yield_trans": interval(counts["trans"], n),
                "trans_of_decayed": interval(counts["trans"], decayed) if decayed else None,
            }
        )
    result = {
        "run": str(args.run_dir),
        "pairs": [list(p) for p in PAIRS],
        "note": "written frames only (one per fs as run); products as fusionff analyze gave them",
        "closest_per_trajectory_percentiles": percentiles(closest),
        "at_hops": {
            "n": int(len(at_hops)),
            "percentiles": percentiles(at_hops),
            "below": {str(x): int((at_hops < x).sum()) for x in (1.6, 1.7, 1.8, 2.0)},
        },
        "limits": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(f"hydrogen to the other central carbon at the {len(at_hops)} hops (A): "
          f"{result['at_hops']['percentiles']}; below 1.6/1.7/1.8/2.0 A: "
          f"{list(result['at_hops']['below'].values())}")  # fmt: skip
    print("limit  out  analysed  S0      trans yield [95%]        trans of decayed")
    for r in rows:
        q, s0, tr = r["quantum_yield_trans"], r["s0"], r["trans_of_decayed"]
        frac = "-" if tr is None else f"{tr['value']:.2f} ({tr['count']}/{tr['n']})"
        print(f"{r['limit_angstrom']:5.2f} {r['out_of_domain']:4d} {r['analysed']:8d}  "
              f"{s0['value']:.3f}  {q['value']:.3f} [{q['ci95'][0]:.3f}, {q['ci95'][1]:.3f}]  "
              f"{frac}")  # fmt: skip


if __name__ == "__main__":
    main()
