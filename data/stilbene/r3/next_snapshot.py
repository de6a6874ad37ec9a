"""Freeze the next R3 snapshot and set up the shipped run's continuation on it, in one step.

    HDF5_USE_FILE_LOCKING=FALSE python data/stilbene/r3/next_snapshot.py 14 \\
        --rows al7:0:54 transfer:375:420 \\
        --from-run potentials/training/stilbene-r3-cleanwide-snapshot-13 --epochs 30 --lr 5e-4

does what the snapshot-13 continuation did by hand (twelfth session): for each QUEUE:START:STOP
it copies rows START..STOP-1 of ``data/stilbene/stilbene-r3-QUEUE.h5`` into
``data/stilbene/r3/snapshot-K/stilbene-r3-QUEUE-rowsSTART-(STOP-1).h5`` (``freeze_rows.py``),
copies the run directory to ``...-snapshot-K`` (the name's ``snapshot-N`` replaced), and
writes its ``train.yaml``: the new files added to the data list, ``output`` pointed at the
copy, ``max_epochs`` raised by ``--epochs`` and the rate set to ``--lr`` (a cosine then spans
the new stage's epochs). It starts nothing; it prints the command that does:
``fusionff train NEW_RUN/train.yaml --new-stage`` once (the best weights, a fresh optimiser and
schedule, the split extended by the new files), then the same without ``--new-stage`` to
continue. ``--exclude FILE`` adds label lists to the config's ``exclude`` (stored labels found
on a higher solution, ``relabel_check.py --exclude-out``, whose relabelled rows the snapshot
trains instead; give the partner the same). It refuses to overwrite a snapshot folder or a run
directory that exists, and a queue range the queue does not hold yet.

A second run continues on the same snapshot (a committee member, e.g. the partner) with
``--reuse``: the snapshot's frozen files are taken as they are (each must exist with the rows
asked for), nothing is frozen again. A frozen file may also lie in an earlier snapshot's folder,
so that a run that missed a snapshot catches up in one stage (name the rows of both).
``--config`` names the run's recipe where its directory holds no ``train.yaml`` (a run started
from a recipe elsewhere, as the partner's)::

    python data/stilbene/r3/next_snapshot.py 15 --rows al7:0:54 transfer:375:416 al8:0:48 \
        transfer:416:445 --reuse --from-run potentials/training/stilbene-r3-partner-snapshot-13 \
        --config potentials/stilbene-r3-partner.yaml --epochs 30 --lr 5e-4
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import shutil
import sys
from pathlib import Path

import yaml

from fusionff.data.dataset import MultiStateDataset

ROOT = Path(__file__).resolve().parents[3]
QUEUES = ROOT / "data/stilbene"
SNAPSHOTS = ROOT / "data/stilbene/r3"


def _freeze_module():
    path = Path(__file__).resolve().parents[1] / "r2/freeze_rows.py"
    spec = importlib.util.spec_from_file_location("freeze_rows", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def parse_rows(text: str) -> tuple[str, int, int]:
    """``QUEUE:START:STOP`` -> (queue, start, stop), STOP exclusive."""
    match = re.fullmatch(r"([a-z0-9]+):(\d+):(\d+)", text)
    if match is None or int(match[2]) >= int(match[3]):
        raise argparse.ArgumentTypeError(f"{text!r}: expected QUEUE:START:STOP with START < STOP")
    return match[1], int(match[2]), int(match[3])


def next_run_name(run: Path, snapshot: int) -> Path:
    """``...-snapshot-N`` -> ``...-snapshot-K`` beside it."""
    name, n = re.subn(r"snapshot-\d+$", f"snapshot-{snapshot}", run.name)
    if n != 1:
        raise ValueError(f"{run}: the run directory's name does not end in snapshot-N")
    return run.with_name(name)


def frozen_path(folder: Path, queue: str, start: int, stop: int, reuse: bool) -> Path:
    """Where rows ``start..stop-1`` of ``queue`` are frozen: in ``folder`` (snapshot K); with
    ``reuse``, also an earlier snapshot's folder when K's has no such file (exactly one may)."""
    name = f"stilbene-r3-{queue}-rows{start}-{stop - 1}.h5"
    if not reuse or (folder / name).is_file():
        return folder / name
    k = int(folder.name.rsplit("-", 1)[1])
    earlier = sorted(
        path
        for path in folder.parent.glob(f"snapshot-*/{name}")
        if re.fullmatch(r"snapshot-\d+", path.parent.name)
        and int(path.parent.name.rsplit("-", 1)[1]) < k
    )
    if len(earlier) > 1:
        found = ", ".join(str(p.parent.name) for p in earlier)
        sys.exit(f"{name} is frozen in several snapshots ({found}); freeze each range once")
    return earlier[0] if earlier else folder / name


def continuation_config(
    config: dict,
    new_files: list[str],
    output: str,
    epochs: int,
    lr: float,
    exclude: list[str] = (),
) -> dict:
    """The run's config with the new files, output, ``max_epochs`` raised and the rate set;
    ``exclude`` (label lists, see ``TrainConfig.exclude``) is added to the config's own."""
    out = dict(config)
    out["data"] = [*config["data"], *(f for f in new_files if f not in config["data"])]
    if exclude:
        old = config.get("exclude") or []
        old = [old] if isinstance(old, str) else list(old)
        out["exclude"] = [*old, *(f for f in exclude if f not in old)]
    out["output"] = output
    out["max_epochs"] = int(config["max_epochs"]) + epochs
    out["optimizer"] = {**config["optimizer"], "lr": lr}
    return out


def stage_header(
    from_name: str, snapshot: int, old_epochs: int, new_epochs: int, lr: float, rel_run: str
) -> str:
    """The comment on top of a continuation's train.yaml (``move_recipes.py`` reads it back)."""
    return (
        f"# {from_name} continued on snapshot {snapshot} as a new stage "
        f"(data/stilbene/r3/next_snapshot.py): its checkpoint, split and history copied here,\n"
        f"# the data list grown by snapshot {snapshot}'s files (the split extends), "
        f"max_epochs {old_epochs} -> {new_epochs}, rate {lr}.\n"
        f"# Once: fusionff train {rel_run}/train.yaml --new-stage; then without --new-stage.\n"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("snapshot", type=int, help="the new snapshot's number K")
    parser.add_argument("--rows", type=parse_rows, nargs="+", required=True)
    parser.add_argument("--from-run", type=Path, required=True, help="the run to continue")
    parser.add_argument("--epochs", type=int, default=30, help="epochs of the new stage")
    parser.add_argument("--lr", type=float, default=5e-4, help="the new stage's first rate")
    parser.add_argument(
        "--config",
        type=Path,
        help="the run's recipe where its directory has no train.yaml (default RUN/train.yaml)",
    )
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="the snapshot folder exists (another run continued on it): take its frozen files "
        "for the rows asked for instead of freezing them",
    )
    parser.add_argument(
        "--exclude",
        nargs="+",
        default=[],
        help="label lists (extended XYZ, repository paths) to add to the config's exclude: "
        "stored labels found on a higher solution (relabel_check.py --exclude-out)",
    )
    args = parser.parse_args(argv)

    folder = SNAPSHOTS / f"snapshot-{args.snapshot}"
    run = args.from_run.resolve()
    new_run = next_run_name(run, args.snapshot)
    if new_run.exists():
        sys.exit(f"{new_run} exists already; remove it or choose another snapshot number")
    if folder.exists() and not args.reuse:
        sys.exit(
            f"{folder} exists already: give --reuse to continue another run on its files, or "
            "choose another snapshot number"
        )
    if args.reuse and not folder.exists():
        sys.exit(f"--reuse: {folder} does not exist; freeze the snapshot first (without --reuse)")
    config_path = args.config or run / "train.yaml"
    if not config_path.is_file():
        sys.exit(f"{config_path} not found: name the run's recipe with --config")
    for path in args.exclude:
        if not (ROOT / path).is_file():
            sys.exit(f"--exclude: no file {path} (a path from the repository root)")
    config = yaml.safe_load(config_path.read_text())
    frozen = [
        frozen_path(folder, queue, start, stop, args.reuse) for queue, start, stop in args.rows
    ]
    for (queue, start, stop), dst in zip(args.rows, frozen, strict=True):
        # check every range before writing anything
        source = dst if args.reuse else QUEUES / f"stilbene-r3-{queue}.h5"
        if not source.is_file():
            sys.exit(f"{source} not found")
        with MultiStateDataset.open(source) as data:
            n = len(data)
        if args.reuse and n != stop - start:
            sys.exit(f"{dst} holds {n} rows, not the {stop - start} of rows {start}-{stop - 1}")
        if not args.reuse and stop > n:
            sys.exit(f"{source.name} holds {n} rows; rows {start}-{stop - 1} asked for")
    if not args.reuse:
        freeze = _freeze_module()
        folder.mkdir(parents=True)
    for (queue, start, stop), dst in zip(args.rows, frozen, strict=True):
        if not args.reuse:
            freeze.freeze(str(QUEUES / f"stilbene-r3-{queue}.h5"), start, stop, str(dst))
        verb = "taken as frozen" if args.reuse else "frozen"
        print(f"{dst.relative_to(ROOT)}: rows {start}-{stop - 1} of stilbene-r3-{queue}.h5, {verb}")
    new_files = [str(dst.relative_to(ROOT)) for dst in frozen]
    shutil.copytree(run, new_run)
    rel_run = str(new_run.relative_to(ROOT))
    updated = continuation_config(
        config, new_files, rel_run, args.epochs, args.lr, exclude=args.exclude
    )
    header = stage_header(
        run.name, args.snapshot, config["max_epochs"], updated["max_epochs"], args.lr, rel_run
    )
    (new_run / "train.yaml").write_text(header + yaml.safe_dump(updated, sort_keys=False))
    print(
        f"{rel_run}/train.yaml written; start the stage with\n"
        f"  OMP_NUM_THREADS=1 nohup fusionff train {rel_run}/train.yaml --new-stage "
        f"> train-{new_run.name}.out 2>&1 &"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
