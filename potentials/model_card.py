"""Write the model card of a trained potential and its plain-MACE counterpart, side by side.

From the repository root, after ``fusionff train potentials/stilbene-r1.yaml`` and
``fusionff train potentials/stilbene-r1-plain.yaml`` (whose run directories are
``potentials/training/stilbene-r1`` and ``potentials/training/stilbene-r1-plain``)::

    python potentials/model_card.py                      # stilbene-r1 (the defaults)
    python potentials/model_card.py --copy               # also copy the model files here

It evaluates both models (EMA weights of their best validation epoch, as saved in
``model.fff``) on the first model's stored test split (the second model's split may differ
only where it never trained or validated on those structures: ``check_unseen``), on the
whole test split and on the subsets near
the S1/S0 intersection (reference gap below 0.5 eV and below 1 eV) and per stage of the
dataset recipe (wigner, twist, seam, meci samples; active: frames of surface-hopping
trajectories chosen by active learning), counts parameters,
reads training times and epochs from ``metrics.json`` and writes ``<name>.md`` and
``<name>.metrics.json`` beside this script. All errors are measured here, from the files.
"""

from __future__ import annotations

import argparse
import copy
import json
import shutil
from pathlib import Path

import numpy as np
import yaml

from fusionff.train.report import stage_changes_text

HERE = Path(__file__).resolve().parent
GAPS = (0.5, 1.0)
STAGES = {"w": "wigner", "t": "twist", "s": "seam", "m": "meci", "a": "active"}
"""Sampling stages by their letter in ``sampling.source_index_stage``: the four of
data/stilbene/recipe.py and the active-learning rounds of data/stilbene/active_learning.py."""


def sampling_stages(paths: list[str], ids: np.ndarray) -> np.ndarray | None:
    """The recipe stage (wigner, twist, seam, meci, active) of each structure ``ids`` (rows of the
    files one after another), from the files' ``sampling.source_index_stage`` provenance and
    each entry's ``meta["source_index"]``; None when a file does not record them."""
    from fusionff.data.dataset import MultiStateDataset

    stages = []
    for path in paths:
        with MultiStateDataset.open(path) as ds:
            letters = ds.provenance.get("sampling", {}).get("source_index_stage")
            meta = ds.arrays()["meta"]
        if not letters:
            return None
        stages += [STAGES[letters[json.loads(m)["source_index"]]] for m in meta]
    return np.array(stages)[ids]


def seen_structures(run: Path) -> set[tuple[str, str, int]]:
    """(file path, file SHA-256, row) of every structure ``run`` trained or validated on."""
    from fusionff.train.split import split_rows

    record = json.loads((run / "split.json").read_text())
    sha = {f["path"]: f["sha256"] for f in record["files"]}
    return {
        (path, sha[path], row)
        for subset in ("train", "validation")
        for path, row in split_rows(run, subset)
    }


def same_split(a: Path, b: Path) -> bool:
    """Whether runs ``a`` and ``b`` stored the same ``split.json``."""
    return json.loads((a / "split.json").read_text()) == json.loads((b / "split.json").read_text())


def check_unseen(test_run: Path, run: Path) -> int:
    """Raise ValueError naming the structures if ``run`` trained or validated on any structure
    of ``test_run``'s test split (same file path, same SHA-256, same row); else return how many
    test structures were checked. Lets a model be scored on another run's test split."""
    from fusionff.train.split import split_rows

    record = json.loads((test_run / "split.json").read_text())
    sha = {f["path"]: f["sha256"] for f in record["files"]}
    test = [(path, sha[path], row) for path, row in split_rows(test_run, "test")]
    seen = seen_structures(run)
    overlap = [f"{path} row {row}" for path, digest, row in test if (path, digest, row) in seen]
    if overlap:
        raise ValueError(
            f"{run} trained or validated on {len(overlap)} structure(s) of {test_run}'s test "
            f"split ({', '.join(overlap[:5])}{', ...' if len(overlap) > 5 else ''}): its errors "
            "there would not be test errors"
        )
    return len(test)


def split_metrics(run: Path, models: list, train_run: Path | None = None) -> dict:
    """Metrics of the mean of ``models``' energies and forces (one model: its own) on the
    stored test split of ``run`` (whole split, near-intersection subsets, sampling stages) and
    on the training split of ``train_run`` (default ``run``)."""
    from fusionff.train.cli import run_data_files
    from fusionff.train.data import load_training_data
    from fusionff.train.evaluate import mean_predictions, metrics_of, predict
    from fusionff.train.metrics import compute_metrics
    from fusionff.train.split import read_split

    data = load_training_data(run_data_files(run), models[0].r_max)  # SHA-256 checked
    split_rows = read_split(run / "split.json", data)

    def mean_prediction(rows: np.ndarray):
        return mean_predictions([predict(m, data, rows, 16, couplings=False) for m in models])

    test = split_rows["test"]
    pred = mean_prediction(test)
    energies = pred.energies.numpy()
    forces = pred.forces.numpy()
    atoms = data.atom_indices(test)
    ref = data.energies[test]
    gap = ref[:, 1] - ref[:, 0]

    def metrics(rows: np.ndarray) -> dict:
        atom_rows = np.repeat(rows, data.n_atoms[test])
        return compute_metrics(
            energies[rows],
            ref[rows],
            data.energy_mask[test][rows],
            data.n_atoms[test][rows],
            forces[atom_rows],
            data.forces[atoms][atom_rows],
            data.force_mask[test][rows],
            near_gap=None,
        )

    everything = np.ones(len(test), dtype=bool)
    out = {"all": metrics(everything)}
    for g in GAPS:
        rows = gap < g
        out[f"gap_below_{g:g}_eV"] = metrics(rows) if rows.any() else None
    stages = sampling_stages(data.paths, data.ids[test])
    for stage in STAGES.values() if stages is not None else ():
        rows = stages == stage
        out[f"stage_{stage}"] = metrics(rows) if rows.any() else None
    if train_run is not None and train_run != run:
        data = load_training_data(run_data_files(train_run), models[0].r_max)
        split_rows = read_split(train_run / "split.json", data)
    train = split_rows["train"]
    out["train"] = metrics_of(data, train, mean_prediction(train))
    return out


def evaluate_run(run: Path, test_run: Path | None = None) -> dict:
    """Metrics of ``run/model.fff`` on the test split of ``test_run`` (default ``run``; another
    run's only where ``run`` never trained or validated on it, :func:`check_unseen`) and on
    ``run``'s own training split."""
    from fusionff.models.io import load_model

    test_run = run if test_run is None else test_run
    if test_run != run:
        check_unseen(test_run, run)
    model = load_model(run / "model.fff", device="cpu")
    split = json.loads((run / "split.json").read_text())
    summary = json.loads((run / "metrics.json").read_text())
    n_params = sum(p.numel() for p in model.parameters())
    return {
        "metrics": split_metrics(test_run, [model], train_run=run),
        "n_parameters": int(n_params),
        "dtype": str(model.dtype).replace("torch.", ""),
        "epochs": summary["epochs"],
        "best_epoch": summary["best_epoch"],
        "training_time_s": summary["training_time_s"],
        "split": summary["split"],
        "data": split["files"],
        "stages": summary.get("stages") or [{"stage": 1, "after_epoch": 0, "changes": {}}],
    }


def evaluate_committee(runs: list[Path]) -> dict:
    """:func:`evaluate_run`'s metrics for the mean of the runs' models (parameters summed;
    epochs and training time are the members'), on the first run's test and training splits;
    a member with another split must not have trained or validated on that test split."""
    from fusionff.models.io import load_model

    for run in runs[1:]:
        if not same_split(runs[0], run):
            check_unseen(runs[0], run)
    models = [load_model(run / "model.fff", device="cpu") for run in runs]
    return {
        "metrics": split_metrics(runs[0], models),
        "n_parameters": int(sum(p.numel() for m in models for p in m.parameters())),
    }


def _f(value, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def table(results: dict[str, dict]) -> list[str]:
    """Markdown rows: one column per model, one row per quantity."""
    names = list(results)
    lines = ["| | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]

    def row(label, get):
        values = []
        for name in names:
            try:
                values.append(get(results[name]))
            except (KeyError, TypeError, IndexError):
                values.append("n/a")
        lines.append(f"| {label} | " + " | ".join(values) + " |")

    row("parameters", lambda r: f"{r['n_parameters']:,}")
    row("epochs (best)", lambda r: f"{r['epochs']} ({r['best_epoch']})")
    row("training time", lambda r: f"{r['training_time_s'] / 60:.0f} min")
    subsets = [("all", "test split")]
    subsets += [(f"gap_below_{g:g}_eV", f"test, gap < {g:g} eV") for g in GAPS]
    subsets += [(f"stage_{s}", f"test, {s} samples") for s in STAGES.values()]
    subsets += [("train", "training split (the fit itself)")]
    subsets = [
        (s, label)
        for s, label in subsets
        if any(r["metrics"].get(s) is not None for r in results.values())
    ]
    for subset, label in subsets:
        row(f"**{label}**: structures", lambda r, s=subset: str(r["metrics"][s]["n_structures"]))
        for state in (0, 1):
            row(
                f"S{state} energy MAE / RMSE (meV)",
                lambda r, s=subset, k=state: (
                    f"{_f(r['metrics'][s]['states'][k]['energy_mae'])} / "
                    f"{_f(r['metrics'][s]['states'][k]['energy_rmse'])}"
                ),
            )
            row(
                f"S{state} force MAE / RMSE (meV/A)",
                lambda r, s=subset, k=state: (
                    f"{_f(r['metrics'][s]['states'][k]['force_mae'])} / "
                    f"{_f(r['metrics'][s]['states'][k]['force_rmse'])}"
                ),
            )
        row(
            "S1-S0 gap MAE / RMSE (meV)",
            lambda r, s=subset: (
                f"{_f(r['metrics'][s]['gaps'][0]['mae'])} / "
                f"{_f(r['metrics'][s]['gaps'][0]['rmse'])}"
            ),
        )
    return lines


def first_stage(config: dict, stages: list[dict]) -> tuple[dict, bool]:
    """Stage 1's settings from a recipe: where the recipe holds a later stage's settings (a run
    continued with --new-stage from the same file), each changed key set back to its value
    before that stage. Returns the settings and whether any were set back."""
    config, undone = copy.deepcopy(config), False
    for stage in reversed(stages[1:]):
        for key, (before, after) in stage["changes"].items():
            *path, last = key.split(".")
            node = config
            for part in path:
                node = node.get(part) if isinstance(node, dict) else None
            if isinstance(node, dict) and node.get(last) == after:
                node[last], undone = before, True
    return config, undone


def stage_lines(name: str, results: dict[str, dict]) -> list[str]:
    """One line per training stage after the first and per distinct change: where it began in
    each run and what it changed (from the runs' metrics.json). Runs whose stage k changed
    different settings (e.g. a committee member that caught up on two snapshots at once) get
    a line of their own."""
    lines = []
    n_stages = max(len(r.get("stages", [])) for r in results.values())
    for k in range(2, n_stages + 1):
        by_change: dict[str, list[str]] = {}
        for label, r in results.items():
            stages = r.get("stages", [])
            if len(stages) < k:  # runs from before stages were recorded have none
                continue
            changes = stage_changes_text(stages[k - 1]["changes"], quote=False, sep="; ")
            start = f"{label.removesuffix(' (shipped)')} after epoch {stages[k - 1]['after_epoch']}"
            by_change.setdefault(changes, []).append(start)
        where = f"`{name}.stage{k}.yaml`, " if (HERE / f"{name}.stage{k}.yaml").exists() else ""
        for changes, starts in by_change.items():
            lines.append(
                f"- Stage {k} ({where}`fusionff train ... --new-stage`; {', '.join(starts)}): "
                f"{changes or 'no settings changed'}."
            )
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--name", default="stilbene-r1")
    parser.add_argument("--fusion-run", type=Path, default=HERE / "training" / "stilbene-r1")
    parser.add_argument("--plain-run", type=Path, default=HERE / "training" / "stilbene-r1-plain")
    parser.add_argument(
        "--labels",
        nargs=2,
        default=["fusion (shipped)", "plain MACE"],
        help="column titles of the first (shipped) and the second run",
    )
    parser.add_argument("--second-name", help="file stem of the second model (default: NAME-plain)")
    parser.add_argument(
        "--describe",
        default="Multi-state MACE with fusion blocks; S0 and S1 of stilbene at R1.",
        help="first sentence of the card",
    )
    parser.add_argument("--copy", action="store_true", help="copy model.fff files here")
    parser.add_argument("--notes", type=Path, help="markdown appended to the card")
    parser.add_argument(
        "--member",
        nargs=3,
        action="append",
        default=[],
        metavar=("RUN", "LABEL", "STEM"),
        help="a further committee member: its run directory, column title and file stem "
        "(copied to STEM.fff with --copy); scored on the first run's test split, none of "
        "whose structures it may have trained or validated on (checked); repeatable",
    )
    parser.add_argument(
        "--committee",
        action="store_true",
        help="add a column: the models as a committee (the mean of their energies and "
        "forces, what the dynamics runs on), on the first run's split (another run's split "
        "must avoid its test structures: checked)",
    )
    args = parser.parse_args(argv)
    second = args.second_name or f"{args.name}-plain"
    runs = {args.labels[0]: args.fusion_run, args.labels[1]: args.plain_run}
    runs |= {label: Path(run) for run, label, _ in args.member}
    results = {
        k: evaluate_run(v, test_run=args.fusion_run)
        for k, v in runs.items()
        if (v / "model.fff").exists()
    }
    one_split = args.labels[1] not in results or same_split(args.fusion_run, args.plain_run)
    if args.committee:
        both = "both" if len(runs) == 2 else f"all {len(runs)}"
        results[f"committee (mean of {both})"] = evaluate_committee(list(runs.values()))
    (HERE / f"{args.name}.metrics.json").write_text(json.dumps(results, indent=1) + "\n")
    if args.copy:
        shutil.copy(args.fusion_run / "model.fff", HERE / f"{args.name}.fff")
        if (args.plain_run / "model.fff").exists():
            shutil.copy(args.plain_run / "model.fff", HERE / f"{second}.fff")
        for run, _, stem in args.member:
            shutil.copy(Path(run) / "model.fff", HERE / f"{stem}.fff")
    config = yaml.safe_load((HERE / f"{args.name}.yaml").read_text())
    first = next(iter(results.values()))
    stage1, set_back = first_stage(config, first.get("stages", []))
    undone = " with the later stages' changes undone" if set_back else ""
    lines = [
        f"# Model card: `{args.name}.fff`",
        "",
        f"{args.describe} Training recipe "
        f"`{args.name}.yaml` (counterpart `{second}.yaml`). Numbers below are "
        "written by `potentials/model_card.py` from the model files and their stored test "
        "split; none is typed in by hand.",
        "",
        f"- Data: {', '.join(f['path'] for f in first['data'])} "
        f"({sum(f['n_structures'] for f in first['data'])} structures); split "
        f"{first['split']} "
        + (
            "(same split for both models)."
            if one_split
            else f"of the first model; the second (`{args.plain_run}`) was trained on its own "
            f"split {results[args.labels[1]]['split']} and is scored on the first model's test "
            "split, none of whose structures it trained or validated on (checked); its "
            "training-split row is its own training split, the committee's the first model's."
        )
        + "".join(
            f" Committee member `{stem}.fff` (`{run}`) was trained on its own split "
            f"{results[label]['split']} and is scored the same way (checked)."
            for run, label, stem in args.member
            if not same_split(args.fusion_run, Path(run))
        ),
        f"- Architecture: `{json.dumps(config['model'])}`; weights {first['dtype']}.",
        f"- Stage 1 (`{args.name}.yaml`{undone}): loss `{json.dumps(stage1['loss'])}`; "
        f"optimiser `{json.dumps(stage1['optimizer'])}`, schedule "
        f"`{json.dumps(stage1['schedule'])}`, batch {stage1['batch_size']}, EMA "
        f"{stage1['ema_decay']}.",
        *stage_lines(args.name, results),
        "- Errors are measured on every label of the test split, including force labels a "
        "stage left out of training (`mask_forces_above`).",
        "",
        "## Test errors, side by side",
        "",
        *table(results),
        "",
    ]
    if args.notes and args.notes.exists():
        lines += [args.notes.read_text().rstrip(), ""]
    (HERE / f"{args.name}.md").write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
