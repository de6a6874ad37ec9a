"""Which active-learning frames fail R3's active-space guard: every labelled row of the queues
named (default al10-al14) with its active state, time since the trajectory's last hop (fs),
the committee's model gap (eV, from the queue's info line) and whether its label failed, then
how a rule "ground state, after a hop, model gap above G eV" would have sorted the ground-state
frames picked by spread (data/stilbene/r3/README.md, twentieth session;
``fusionff.analysis.selection --skip-hot-ground``).

Run from the repository root (reads the queue files, their labels and the runs they came
from, which must still be in runs/): ``python3 data/stilbene/r3/hot_ground_failures.py``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import h5py
from ase.io import read

from fusionff.analysis.run import read_run
from fusionff.analysis.selection import time_since_hop

HERE = Path(__file__).resolve().parent
LABELS = HERE.parent  # data/stilbene


def rows(queue: str) -> list[dict]:
    """The labelled rows of queue ``queue`` (al10, ...)."""
    frames = read(HERE / f"{queue}.xyz", ":")
    with h5py.File(LABELS / f"stilbene-r3-{queue}.h5", "r") as f:
        status = {
            json.loads(m)["source_index"]: s.decode()
            for m, s in zip(f["meta"][()], f["status"][()], strict=True)
        }
    runs: dict = {}
    out = []
    for k, atoms in enumerate(frames):
        if k not in status:
            continue
        info = atoms.info
        if info["run"] not in runs:
            run = read_run(info["run"], include_failed=True)
            runs[info["run"]] = {t.index: t for t in run.trajectories + run.excluded}
        t = runs[info["run"]][int(info["trajectory"])]
        frame = int(info["frame"])
        out.append(
            {
                "queue": queue,
                "row": k,
                "status": status[k],
                "state": int(t.active_state[frame]),
                # the rule --skip-hot-ground applies (from the first frame without a hop)
                "since_hop_fs": float(time_since_hop(t)[frame]),
                "gap_ev": float(info["model_gap_ev"]),
                "reasons": info["reasons"],
            }
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("queues", nargs="*", default=["al10", "al11", "al12", "al13", "al14"])
    parser.add_argument("--gaps", type=float, nargs="+", default=[5.5, 6.0, 6.25, 6.5])
    parser.add_argument("--after-fs", type=float, nargs="+", default=[0.0, 50.0])
    args = parser.parse_args()
    table = [r for q in args.queues for r in rows(q)]
    failed = [r for r in table if r["status"] != "ok"]
    print(f"{len(table)} labelled rows, {len(failed)} failed:")
    for r in failed:
        print(
            f"  {r['queue']} row {r['row']}: S{r['state']}, {r['since_hop_fs']} fs after "
            f"a hop, model gap {r['gap_ev']:.2f} eV, {r['reasons']}"
        )
    ground = [r for r in table if r["state"] == 0 and "hop" not in r["reasons"]]
    n_fail = sum(r["status"] != "ok" for r in ground)
    print(f"ground-state frames not at a hop: {len(ground)}, {n_fail} failed")
    for gap in args.gaps:
        for after in args.after_fs:
            marked = [r for r in ground if r["gap_ev"] > gap and r["since_hop_fs"] > after]
            bad = sum(r["status"] != "ok" for r in marked)
            print(
                f"  gap > {gap} eV, > {after:g} fs after the hop: {len(marked)} marked, "
                f"{bad} failed; {n_fail - bad} failures among the other "
                f"{len(ground) - len(marked)}"
            )


if __name__ == "__main__":
    main()
