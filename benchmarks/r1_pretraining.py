"""Does pre-training on R1 help R2? Side-by-side learning curves of training runs.

Reads the output directories of ``fusionff train`` runs of one recipe on the same data and
split (``history.jsonl`` for the validation MAEs per epoch, ``metrics.json`` for the test
split of the final model and the ``init_from`` record, ``split.json`` for the data hashes),
prints per-state validation MAEs of energies, forces and the S1-S0 gap at equal epochs and the
test-split MAEs, each with its ratio to the first run (the baseline), and writes them to JSON.
A run of ``max_epochs: 0`` (the starting weights alone, e.g. R1's model with R2's reference
energies) has only its test row.

    python benchmarks/r1_pretraining.py scratch=RUN_DIR finetune=RUN_DIR [...]
        [--epochs 1 2 3 5 10 15 20 25 30] [--out benchmarks/results/r1_pretraining_r2.json]

The runs of benchmarks/results/r1_pretraining_r2.json: the adiabatic R2 recipe as it was
then (now potentials/stilbene-r2-adiabatic-round1.yaml) on a frozen 305-structure R2 snapshot
(data paths and output changed, ``max_epochs: 30``), once from scratch and with
``init_from: potentials/stilbene-r1.fff`` (lr 0.005 and 0.002), and the R1 model before any
R2 epoch.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

QUANTITIES = {
    "val_loss": ("validation loss", None),
    "E_S0": ("val energy MAE S0, meV", ("val_energy_mae", 0)),
    "E_S1": ("val energy MAE S1, meV", ("val_energy_mae", 1)),
    "F_S0": ("val force MAE S0, meV/A", ("val_force_mae", 0)),
    "F_S1": ("val force MAE S1, meV/A", ("val_force_mae", 1)),
    "gap": ("val gap MAE S1-S0, meV", ("val_gap_mae", 0)),
}


def read_run(directory: Path) -> dict[str, Any]:
    """History, final metrics and provenance of one run's output directory."""
    path = directory / "history.jsonl"  # absent for a run of max_epochs 0 (the start alone)
    history = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    metrics = json.loads((directory / "metrics.json").read_text())
    split = json.loads((directory / "split.json").read_text())
    curves = {}
    for key, (_, field) in QUANTITIES.items():
        if field is None:
            curves[key] = [r["val_loss"] for r in history]
        else:
            curves[key] = [r[field[0]][field[1]] for r in history]
    test = metrics.get("test")
    test_mae = None
    if test is not None:
        states = test["states"]
        test_mae = {
            "E_S0": states[0]["energy_mae"],
            "E_S1": states[1]["energy_mae"],
            "F_S0": states[0]["force_mae"],
            "F_S1": states[1]["force_mae"],
            "gap": test["gaps"][0]["mae"],
        }
    init = metrics.get("init_from")
    return {
        "directory": str(directory),
        "init_from": None if init is None else {k: init[k] for k in ("path", "sha256")},
        "lr_per_epoch": [r["lr"] for r in history],
        "epochs": metrics["epochs"],
        "best_epoch": metrics["best_epoch"],
        "epoch_s_median": sorted(r["time_s"] for r in history)[len(history) // 2]
        if history
        else None,
        "data": split["files"],
        "split_sizes": metrics["split"],
        "validation": curves,
        "test_mae": test_mae,
    }


def table(runs: dict[str, dict], epochs: list[int]) -> str:
    """Blocks of rows per epoch, one column per run, then the test split; (xN) is the ratio to
    the first run."""
    names = list(runs)
    base = names[0]
    width = max(20, *(len(n) + 2 for n in names))
    lines = []
    for key, (title, _) in QUANTITIES.items():
        lines.append(f"{title:<28}" + "".join(f"{n:>{width}}" for n in names))
        for epoch in epochs:
            cells = []
            for n in names:
                curve = runs[n]["validation"][key]
                if epoch > len(curve):
                    cells.append(f"{'-':>{width}}")
                    continue
                value = curve[epoch - 1]
                ratio = (
                    ""
                    if n == base
                    else f" (x{value / runs[base]['validation'][key][epoch - 1]:.2f})"
                )
                digits = 3 if key == "val_loss" else 1
                cells.append(f"{value:.{digits}f}{ratio}".rjust(width))
            lines.append(f"  epoch {epoch:<20}" + "".join(cells))
        lines.append("")
    lines.append(f"{'test MAE (final model)':<28}" + "".join(f"{n:>{width}}" for n in names))
    for key, (title, _) in list(QUANTITIES.items())[1:]:
        cells = []
        for n in names:
            test = runs[n]["test_mae"]
            value = test[key]
            ratio = "" if n == base else f" (x{value / runs[base]['test_mae'][key]:.2f})"
            cells.append(f"{value:.1f}{ratio}".rjust(width))
        lines.append(f"  {title.removeprefix('val '):<26}" + "".join(cells))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="NAME=RUN_DIR; the first is the baseline")
    parser.add_argument("--epochs", type=int, nargs="+", default=[1, 2, 3, 5, 10, 15, 20, 25, 30])
    parser.add_argument("--out", default="benchmarks/results/r1_pretraining_r2.json")
    parser.add_argument("--note", default="", help="free text stored with the numbers")
    args = parser.parse_args()
    runs = {}
    for item in args.runs:
        name, _, directory = item.partition("=")
        runs[name] = read_run(Path(directory))
    hashes = {name: [f["sha256"][:12] for f in r["data"]] for name, r in runs.items()}
    if len({tuple(h) for h in hashes.values()}) != 1:
        raise SystemExit(f"the runs trained on different data: {hashes}")
    print(table(runs, args.epochs))
    Path(args.out).write_text(
        json.dumps({"note": args.note, "epochs_shown": args.epochs, "runs": runs}, indent=1) + "\n"
    )
    print(f"\nwritten to {args.out}")


if __name__ == "__main__":
    main()
