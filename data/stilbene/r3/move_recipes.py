"""Move the R3 recipes that follow the shipped committee to a newly shipped snapshot, in one step.

    python data/stilbene/r3/move_recipes.py potentials/training/stilbene-r3-cleanwide-snapshot-20 \\
        --partner-run potentials/training/stilbene-r3-partner-snapshot-20

After a round ships (``next_snapshot.py``, the two stages trained, their ``model.fff`` copied into
``potentials/``), five files still name the previous snapshot; this script rewrites their
mechanical parts from the two new runs' ``train.yaml`` (``tests/unit/
test_r3_recipes_follow_shipped.py`` checks the result; the exclude lists follow the wide run's
where it has one):

* ``potentials/stilbene-r3.yaml``: the data and exclude lists, ``output``, ``max_epochs``, the
  snapshot number on its first line, and the optimiser / schedule comments (``stages 2-S``, the
  new stage's epochs ``A-B``);
* ``potentials/stilbene-r3-l3.yaml`` and ``-scratchwide.yaml`` (the GPU capacity pair): the data
  and exclude lists, ``output`` (``...-snapshot-K``), the split-copy line and ``(cleanwide,
  snapshot K)``;
* ``potentials/stilbene-r3-partner.yaml``: the three commands of its header that made the
  shipped stage (``next_snapshot.py K --rows ... --reuse``, the split copy, the first epoch);
  its rows are read back from the frozen files' names;
* ``benchmarks/gpu_session.sh``: ``from scratch on snapshot K``.

The narrative parts of the two headers (which stage, which session, the best epoch) stay a hand
edit: the script prints what to write there. It refuses a run whose name does not end in
``snapshot-K``, and any file where a pattern it rewrites is missing (nothing is written then).
Each data line keeps an inline comment it had.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[3]
RECIPE = "potentials/stilbene-r3.yaml"
PARTNER = "potentials/stilbene-r3-partner.yaml"
GPU_PAIR = ("potentials/stilbene-r3-l3.yaml", "potentials/stilbene-r3-scratchwide.yaml")
GPU_SCRIPT = "benchmarks/gpu_session.sh"


class MoveError(ValueError):
    """A file lacks a pattern this script rewrites."""


def snapshot_of(run: str) -> int:
    match = re.search(r"snapshot-(\d+)$", run.rstrip("/"))
    if match is None:
        raise MoveError(f"{run}: the run directory's name does not end in snapshot-K")
    return int(match[1])


def sub_once(pattern: str, repl, text: str, where: str, flags: int = 0) -> str:
    """``re.subn`` that insists on exactly one match (``where`` names the file in the error)."""
    out, n = re.subn(pattern, repl, text, flags=flags)
    if n != 1:
        raise MoveError(f"{where}: expected one match of {pattern!r}, found {n}")
    return out


def replace_data_block(text: str, files: list[str], where: str, key: str = "data") -> str:
    """Replace the list under ``KEY:`` (``data`` or ``exclude``) with ``files``, one ``  - PATH``
    line each; a path that was listed before keeps its inline comment."""
    lines = text.splitlines(keepends=True)
    try:
        start = next(i for i, line in enumerate(lines) if line.rstrip() == f"{key}:")
    except StopIteration:
        raise MoveError(f"{where}: no '{key}:' list") from None
    end = start + 1
    comments: dict[str, str] = {}
    while end < len(lines) and lines[end].startswith("  - "):
        entry = lines[end][4:].rstrip("\n")
        path, _, comment = entry.partition("#")
        if comment:
            comments[path.strip()] = entry[len(path.rstrip()) :]
        end += 1
    if end == start + 1:
        raise MoveError(f"{where}: the '{key}:' list is empty")
    block = [f"  - {path}{comments.get(path, '')}\n" for path in files]
    return "".join(lines[: start + 1] + block + lines[end:])


def replace_exclude_block(text: str, config: dict, where: str) -> str:
    """The ``exclude:`` list moved to the run's (a recipe keeps its list where the run has
    none)."""
    exclude = config.get("exclude") or []
    exclude = [exclude] if isinstance(exclude, str) else list(exclude)
    return replace_data_block(text, exclude, where, key="exclude") if exclude else text


def rows_of(files: list[str], snapshot: int) -> list[str]:
    """``QUEUE:START:STOP`` of the files frozen in snapshot K's folder (STOP exclusive)."""
    rows = []
    for path in files:
        match = re.fullmatch(
            rf"data/stilbene/r3/snapshot-{snapshot}/stilbene-r3-([a-z0-9]+)-rows(\d+)-(\d+)\.h5",
            path,
        )
        if match:
            rows.append(f"{match[1]}:{match[2]}:{int(match[3]) + 1}")
    if not rows:
        raise MoveError(f"no file of snapshot {snapshot} in the run's data list")
    return rows


def move_recipe(text: str, config: dict, where: str) -> tuple[str, tuple[int, int]]:
    """The shipped recipe moved to ``config`` (the new wide run's train.yaml); also the new
    stage's epochs."""
    k = snapshot_of(config["output"])
    old = yaml.safe_load(text)
    first, last = int(old["max_epochs"]) + 1, int(config["max_epochs"])
    if last < first:
        raise MoveError(f"{where}: max_epochs {old['max_epochs']} is not below the run's {last}")
    text = sub_once(r"\A(# Recipe of the shipped .*? snapshot )\d+", rf"\g<1>{k}", text, where)
    text = replace_data_block(text, config["data"], where)
    text = replace_exclude_block(text, config, where)
    text = sub_once(r"^output: .*$", f"output: {config['output']}", text, where, re.M)
    text = sub_once(r"^max_epochs: \d+", f"max_epochs: {last}", text, where, re.M)
    text = sub_once(r"(# stages 2-)(\d+)", lambda m: f"{m[1]}{int(m[2]) + 1}", text, where)
    text = sub_once(r"(over the stage's epochs \()\d+-\d+\)", rf"\g<1>{first}-{last})", text, where)
    return text, (first, last)


def move_gpu_recipe(text: str, config: dict, shipped_run: str, where: str) -> str:
    """One of the GPU capacity pair moved to the shipped run's data and split."""
    k = snapshot_of(shipped_run)
    old = yaml.safe_load(text)
    snapshot_of(old["output"])  # refuses an output not named ...-snapshot-N
    output = re.sub(r"snapshot-\d+$", f"snapshot-{k}", old["output"])
    text = replace_data_block(text, config["data"], where)
    text = replace_exclude_block(text, config, where)
    text = sub_once(r"^output: .*$", f"output: {output}", text, where, re.M)
    text = sub_once(
        r"^#     cp \S+/split\.json \S+$",
        f"#     cp {shipped_run}/split.json {output}/",
        text,
        where,
        re.M,
    )
    return sub_once(r"\(cleanwide, snapshot \d+\)", f"(cleanwide, snapshot {k})", text, where)


def stage_of(train_yaml: str, run: str) -> tuple[str, int]:
    """The run a stage continued and its epochs, from the header ``next_snapshot.py`` writes."""
    match = re.search(
        r"\A# (\S+) continued on snapshot \d+ .*?max_epochs (\d+) -> (\d+)", train_yaml, re.S
    )
    if match is None:
        raise MoveError(f"{run}/train.yaml: no header of next_snapshot.py (continued on ...)")
    previous = str(Path(run.rstrip("/")).with_name(match[1]))
    return previous, int(match[3]) - int(match[2])


def move_partner_header(
    text: str,
    partner: dict,
    previous: str,
    epochs: int,
    rows: list[str],
    where: str,
    wide_run: str,
) -> str:
    """The partner recipe's three commands of its shipped stage."""
    out = partner["output"]
    k = snapshot_of(out)
    lr = partner["optimizer"]["lr"]
    command = (
        f"#     python data/stilbene/r3/next_snapshot.py {k} --rows {' '.join(rows)} \\\n"
        f"#         --reuse --from-run {previous} --epochs {epochs} --lr {lr:g}\n"
        f"#     cp {wide_run}/split.json {out}/\n"
        f"#     OMP_NUM_THREADS=1 fusionff train {out}/train.yaml --new-stage\n"
    )
    pattern = (
        r"^#     python data/stilbene/r3/next_snapshot\.py .*\n(?:#         .*\n)*"
        r"#     cp \S+/split\.json \S+\n#     OMP_NUM_THREADS=1 fusionff train \S+ --new-stage\n"
    )
    return sub_once(pattern, lambda _: command, text, where, re.M)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "wide_run", help="the shipped wide run, .../stilbene-r3-cleanwide-snapshot-K"
    )
    parser.add_argument("--partner-run", required=True, help="the shipped partner run (same K)")
    parser.add_argument("--root", type=Path, default=ROOT, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    root = args.root
    try:
        k = snapshot_of(args.wide_run)
        if snapshot_of(args.partner_run) != k:
            raise MoveError(f"{args.partner_run} is not of snapshot {k}")
        wide = yaml.safe_load((root / args.wide_run / "train.yaml").read_text())
        partner_text = (root / args.partner_run / "train.yaml").read_text()
        partner = yaml.safe_load(partner_text)
        wide_run = args.wide_run.rstrip("/")
        if wide["output"] != wide_run or partner["output"] != args.partner_run.rstrip("/"):
            raise MoveError("a run's train.yaml names another output than its directory")
        if partner["data"] != wide["data"]:
            raise MoveError("the partner's data list differs from the wide run's")
        if partner.get("exclude") != wide.get("exclude"):
            raise MoveError("the partner's exclude list differs from the wide run's")
        texts = {
            name: (root / name).read_text() for name in (RECIPE, PARTNER, *GPU_PAIR, GPU_SCRIPT)
        }
        new = {}
        new[RECIPE], (first, last) = move_recipe(texts[RECIPE], wide, RECIPE)
        for name in GPU_PAIR:
            new[name] = move_gpu_recipe(texts[name], wide, wide_run, name)
        new[PARTNER] = move_partner_header(
            texts[PARTNER],
            partner,
            *stage_of(partner_text, args.partner_run),
            rows_of(wide["data"], k),
            PARTNER,
            wide_run,
        )
        new[GPU_SCRIPT] = sub_once(
            r"from scratch on snapshot \d+",
            f"from scratch on snapshot {k}",
            texts[GPU_SCRIPT],
            GPU_SCRIPT,
        )
    except (MoveError, OSError, KeyError) as err:
        print(f"move_recipes: {err}; nothing written", file=sys.stderr)
        return 1
    for name, text in new.items():
        if text != texts[name]:
            (root / name).write_text(text)
            print(f"{name}: moved to snapshot {k}")
    print(
        f"By hand: {RECIPE}'s header (snapshot {k} as the next stage, its best epoch, epochs "
        f"{first}-{last}, the session, what snapshot {k} adds) and {PARTNER}'s (its shipped "
        f"stage on snapshot {k}, its epochs and best epoch)."
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
