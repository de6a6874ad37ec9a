"""Active learning for the stilbene set: label where surface hopping on the models goes wrong.

One round, each stage cached in the work directory (a killed run continues):

  dynamics   S1 ensembles from trans and cis (kappa-TSH, 300 K Wigner) on the first
             committee model, as the md/stilbene_*_s1.yaml inputs but shorter   -> work/runs/
  select     frames every ``--stride-fs`` of every trajectory, scored by the disagreement
             of the two committee models (fusion and plain, trained apart on the same data):
             max over states of |E_fusion - E_plain| per atom plus the largest force
             difference / 10; all frames of the last ``--tail-fs`` before a trajectory was
             flagged (energy drift: the model entered a hole), then the highest-scoring frames
             at least ``--spacing-fs`` apart in each trajectory, up to ``--n``   -> selection.json
  label      S0 and S1 at R1 (MOPAC, resumable runner) into the round's dataset
             (a second file next to stilbene-r1.h5; training lists both files)
  report     statistics by origin of the frames                 -> stilbene-r1-al1-stats.json

The sampling provenance of the output marks every source index with stage "a" (active), so
``potentials/model_card.py`` reports its test errors apart from the recipe's stages. Run from
the repository root::

    python data/stilbene/active_learning.py          # round 1 -> data/stilbene/stilbene-r1-al1.h5

Round 1 used the interim models of commit 9db71df (their SHA-256 is stored in the output's
provenance); with other models the same command selects other frames.

The spacing rule is the library's (:func:`fusionff.analysis.selection.pick_separated`). Its
:func:`~fusionff.analysis.selection.select_frames` does the whole selection for a run made on
the committee itself (``potential: {model: [a.fff, b.fff]}``, whose frames record the spread):
top spreads at least a spacing apart plus frames of small gap, written as a queue for
``fusionff label``. This script keeps round 1's recipe: dynamics on one model, the two
models' disagreement computed afterwards.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import time
from pathlib import Path

import numpy as np
import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
ISOMERS = ("trans", "cis")
log = logging.getLogger("active_learning")


def _sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _relative(path: Path) -> str:
    """``path`` relative to the repository root where it lies inside it."""
    path = Path(path).resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def _json_dump(path: Path, value) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(value, indent=1, sort_keys=True) + "\n")
    tmp.replace(path)


# ---------------------------------------------------------------------- dynamics
def run_config(args, isomer: str) -> dict:
    """The md/stilbene_<isomer>_s1.yaml input with this round's size, seed and output."""
    raw = yaml.safe_load((ROOT / "md" / f"stilbene_{isomer}_s1.yaml").read_text())
    raw.update(
        potential=str(args.models[0]),
        structure=str(HERE / f"{isomer}-r1.xyz"),
        n_traj=args.n_traj,
        batch_size=args.n_traj,
        time_fs=args.time_fs,
        device="cpu",
        seed=args.seed,
        output=str(args.work / "runs" / isomer),
    )
    raw.pop("n_steps", None)
    return raw


def stage_dynamics(args) -> None:
    from fusionff.dynamics.run_config import RunConfig
    from fusionff.dynamics.runner import run_ensemble

    for isomer in ISOMERS:
        t0 = time.perf_counter()
        summary = run_ensemble(RunConfig.from_dict(run_config(args, isomer)), log=None)
        log.info(
            "dynamics %s: %d trajectories %s (%.0f s)",
            isomer,
            summary["n_traj"],
            summary["status_counts"],
            time.perf_counter() - t0,
        )


# ---------------------------------------------------------------------- selection
def trajectory_frames(args):
    """Every H5MD trajectory of the dynamics stage: (isomer, index, times, positions, status,
    numbers), frames every ``stride_fs``."""
    import h5py

    for isomer in ISOMERS:
        out = args.work / "runs" / isomer
        summary = json.loads((out / "summary.json").read_text())
        for record in summary["trajectories"]:
            path = out / Path(record["file"]).name
            with h5py.File(path, "r") as f:
                time_fs = f["particles/molecule/position/time"][()]
                positions = f["particles/molecule/position/value"][()]
                numbers = f["particles/molecule/species"][()]
            dt = float(time_fs[1] - time_fs[0]) if len(time_fs) > 1 else 1.0
            stride = max(1, int(round(args.stride_fs / dt)))
            keep = np.arange(0, len(time_fs), stride)
            # the last frame too: for a flagged trajectory it is the closest to the hole
            keep = np.unique(np.append(keep, len(time_fs) - 1))
            yield isomer, record, time_fs[keep], positions[keep], numbers


def committee_scores(models, numbers, positions, chunk: int = 64) -> dict[str, np.ndarray]:
    """Disagreement of the committee (first two models) on (F, N, 3) frames: energy (eV/atom,
    max over states) and force (eV/Angstrom, max over states and atoms) differences."""
    import torch

    e_diff, f_diff = [], []
    with torch.no_grad():
        for start in range(0, len(positions), chunk):
            x = positions[start : start + chunk]
            out = [m.evaluate(numbers, x) for m in models[:2]]
            de = (out[0]["energies"] - out[1]["energies"]).abs().amax(dim=1)
            df = (out[0]["forces"] - out[1]["forces"]).norm(dim=-1).amax(dim=(1, 2))
            e_diff.append(de.double().numpy() / len(numbers))
            f_diff.append(df.double().numpy())
    return {"energy": np.concatenate(e_diff), "force": np.concatenate(f_diff)}


def min_distance(positions: np.ndarray) -> float:
    d = np.linalg.norm(positions[:, None] - positions[None], axis=-1)
    return float(d[np.triu_indices(len(positions), 1)].min())


def stage_select(args) -> list[dict]:
    """Choose the frames to label (see the module docstring); writes selection.json."""
    import torch

    from fusionff.analysis.selection import pick_separated
    from fusionff.potential import Potential

    torch.set_num_threads(1)
    models = [Potential(m, device="cpu") for m in args.models]
    candidates, forced = [], []
    numbers = None
    for isomer, record, times, positions, numbers in trajectory_frames(args):
        scores = committee_scores(models, numbers, positions)
        flagged = record["status"] not in ("ok", "stopped", "time-limit")
        for k, t in enumerate(times):
            if min_distance(positions[k]) < args.min_distance:
                continue  # atoms on top of each other: no reference program converges there
            item = {
                "isomer": isomer,
                "trajectory": int(record["index"]),
                "status": record["status"],
                "time_fs": float(t),
                "energy_disagreement_eV_per_atom": float(scores["energy"][k]),
                "force_disagreement_eV_per_A": float(scores["force"][k]),
                "score": float(scores["energy"][k] + scores["force"][k] / 10.0),
                "positions": positions[k].tolist(),
            }
            if flagged and t >= times[-1] - args.tail_fs:
                forced.append(item)
            else:
                candidates.append(item)
    chosen = list(forced[: args.n])
    taken: dict[str, list[float]] = {}
    for item in chosen:
        taken.setdefault(f"{item['isomer']}/{item['trajectory']}", []).append(item["time_fs"])
    groups = np.array([f"{c['isomer']}/{c['trajectory']}" for c in candidates])
    times = np.array([c["time_fs"] for c in candidates])
    scores = np.array([c["score"] for c in candidates])
    order = np.argsort(-scores, kind="stable")  # best first, ties in frame order
    picked = pick_separated(groups, times, order, args.spacing_fs, args.n - len(chosen), taken)
    chosen += [candidates[i] for i in picked]
    selection = {
        "numbers": np.asarray(numbers).tolist(),
        "models": [{"path": _relative(m), "sha256": _sha256(m)} for m in args.models],
        "settings": {
            k: getattr(args, k)
            for k in ("n", "stride_fs", "tail_fs", "spacing_fs", "min_distance", "seed")
        },
        "n_candidates": len(candidates) + len(forced),
        "n_forced_tail": len(forced),
        "score_quantiles_candidates": {
            q: float(np.quantile(scores, float(q))) for q in ("0.5", "0.9", "0.99")
        },
        "frames": chosen,
    }
    _json_dump(args.work / "selection.json", selection)
    log.info(
        "selected %d frames (%d from flagged tails) of %d; score median %.3f, 90%% %.3f",
        len(chosen),
        min(len(forced), args.n),
        selection["n_candidates"],
        selection["score_quantiles_candidates"]["0.5"],
        selection["score_quantiles_candidates"]["0.9"],
    )
    return chosen


# ---------------------------------------------------------------------- labelling
def stage_label(args) -> dict:
    from recipe import _Geometry, store_sampling  # data/stilbene/ is on sys.path here

    from fusionff.labeling.mopac import MopacBackend
    from fusionff.labeling.runner import label

    selection = json.loads((args.work / "selection.json").read_text())
    numbers = np.array(selection["numbers"])
    frames = selection["frames"]
    store_sampling(  # first, so that a partial file says what it holds
        args.out,
        {
            "recipe": "data/stilbene/active_learning.py",
            "round": args.round,
            "gradient_check": args.check_gradients,
            "models": selection["models"],
            "settings": selection["settings"],
            "frames": [{k: v for k, v in fr.items() if k != "positions"} for fr in frames],
            "source_index_stage": "a" * len(frames),
        },
    )
    backend = MopacBackend()
    if args.check_gradients is not None:  # reject forces that disagree with the energies
        from fusionff.labeling.gradient_check import GradientCheckedBackend

        backend = GradientCheckedBackend(backend, tolerance=args.check_gradients)
    geometries = [_Geometry(numbers, np.array(fr["positions"])) for fr in frames]
    t0 = time.perf_counter()
    summary = label(geometries, backend, 2, args.out, workers=args.workers)
    log.info("labelled %s in %.0f s: %s", args.out, time.perf_counter() - t0, summary)
    return summary


# ---------------------------------------------------------------------- report
def stage_report(args) -> dict:
    """Statistics of the round's labelled set by origin (isomer, trajectory status), energies
    relative to R1's trans minimum (minima.json); writes <out stem>-stats.json."""
    from fusionff.data import stilbene as sb
    from fusionff.data.dataset import MultiStateDataset

    with MultiStateDataset.open(args.out) as ds:
        entries = list(ds)
        frames = ds.provenance["sampling"]["frames"]
    e_trans = json.loads((HERE / "minima.json").read_text())["trans"]["E_S0_eV"]
    ok = [e for e in entries if e.status == "ok"]
    frame = [frames[e.meta["source_index"]] for e in ok]
    origin = np.array([f"{f['isomer']}, {f['status']}" for f in frame])
    e0 = np.array([e.energies[0] - e_trans for e in ok])
    gap = np.array([e.energies[1] - e.energies[0] for e in ok])
    fmax = np.array([np.abs(e.forces).max() for e in ok])
    dih = np.abs(np.array([sb.dihedral(e.positions) for e in ok]))

    def describe(rows):
        return {
            "n": int(rows.sum()),
            "E_S0_above_trans_min_eV_median_max": [
                float(np.median(e0[rows])),
                float(e0[rows].max()),
            ],
            "gap_eV_min_median_max": [
                float(gap[rows].min()),
                float(np.median(gap[rows])),
                float(gap[rows].max()),
            ],
            "max_abs_force_eV_per_A_median_max": [
                float(np.median(fmax[rows])),
                float(fmax[rows].max()),
            ],
            "abs_dihedral_deg_min_max": [float(dih[rows].min()), float(dih[rows].max())],
        }

    stats = {
        "n_entries": len(entries),
        "n_ok": len(ok),
        "n_failed": len(entries) - len(ok),
        "all": describe(np.ones(len(ok), dtype=bool)),
        "by_origin": {o: describe(origin == o) for o in sorted(set(origin))},
        "n_E_S0_above_trans_min_gt_10eV": int(np.sum(e0 > 10)),
        "n_max_force_gt_20eV_per_A": int(np.sum(fmax > 20)),
        "n_gap_below_0.5eV": int(np.sum(gap < 0.5)),
    }
    _json_dump(args.out.with_name(args.out.stem + "-stats.json"), stats)
    print(json.dumps(stats, indent=1))
    return stats


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--models",
        type=Path,
        nargs=2,
        default=[ROOT / "potentials/stilbene-r1.fff", ROOT / "potentials/stilbene-r1-plain.fff"],
        help="the committee; the first one runs the dynamics",
    )
    parser.add_argument("--out", type=Path, default=HERE / "stilbene-r1-al1.h5")
    parser.add_argument("--work", type=Path, default=HERE / "work" / "al1")
    parser.add_argument("--n", type=int, default=1000, help="frames to label")
    parser.add_argument("--n-traj", type=int, default=48, help="trajectories per isomer")
    parser.add_argument("--time-fs", type=float, default=300.0)
    parser.add_argument("--stride-fs", type=float, default=5.0)
    parser.add_argument("--tail-fs", type=float, default=20.0)
    parser.add_argument("--spacing-fs", type=float, default=15.0)
    parser.add_argument("--min-distance", type=float, default=0.6, help="Angstrom")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--round", type=int, default=1, help="recorded in the provenance")
    parser.add_argument(
        "--check-gradients",
        type=float,
        metavar="TOL",
        help="label with fusionff.labeling.gradient_check (3x the cost): forces whose slope "
        "along a random direction is off the energies' by more than TOL eV/A are left out "
        "(round 1 ran without; about 2%% of R1 gradients are wrong, data/stilbene/README.md)",
    )
    parser.add_argument(
        "--stages",
        nargs="+",
        default=["dynamics", "select", "label", "report"],
        choices=["dynamics", "select", "label", "report"],
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    args.work.mkdir(parents=True, exist_ok=True)
    if "dynamics" in args.stages:
        stage_dynamics(args)
    if "select" in args.stages:
        stage_select(args)
    if "label" in args.stages:
        stage_label(args)
    if "report" in args.stages:
        stage_report(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
