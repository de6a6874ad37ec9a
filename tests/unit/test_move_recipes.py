"""data/stilbene/r3/move_recipes.py: the five files that follow the shipped R3 committee moved
to a new snapshot, on copies of the repository's own recipes in a temporary tree with two
continuation runs set up as next_snapshot.py writes them (no training, no data files read)."""

from __future__ import annotations

import re
import shutil

import pytest
import yaml

from tests.conftest import ROOT, load_script

mv = load_script("data/stilbene/r3/move_recipes.py")
nxt = load_script("data/stilbene/r3/next_snapshot.py")

FILES = [
    "potentials/stilbene-r3.yaml",
    "potentials/stilbene-r3-partner.yaml",
    "potentials/stilbene-r3-l3.yaml",
    "potentials/stilbene-r3-scratchwide.yaml",
    "benchmarks/gpu_session.sh",
]


def shipped_snapshot() -> int:
    output = yaml.safe_load((ROOT / "potentials/stilbene-r3.yaml").read_text())["output"]
    return int(re.search(r"snapshot-(\d+)$", output)[1])


@pytest.fixture
def tree(tmp_path):
    """The repository's recipes copied, and the shipped wide and partner runs continued on a
    snapshot K + 1 that adds two files: their train.yaml as next_snapshot.py writes it."""
    for name in FILES:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, tmp_path / name)
    k = shipped_snapshot()
    new_files = [
        f"data/stilbene/r3/snapshot-{k + 1}/stilbene-r3-al99-rows0-45.h5",
        f"data/stilbene/r3/snapshot-{k + 1}/stilbene-r3-transfer-rows900-912.h5",
    ]
    runs = {}
    for kind in ("cleanwide", "partner"):
        old = ROOT / f"potentials/training/stilbene-r3-{kind}-snapshot-{k}"
        rel = f"potentials/training/stilbene-r3-{kind}-snapshot-{k + 1}"
        config = yaml.safe_load((old / "train.yaml").read_text())
        updated = nxt.continuation_config(config, new_files, rel, 24, 5e-4)
        header = nxt.stage_header(
            old.name, k + 1, config["max_epochs"], updated["max_epochs"], 5e-4, rel
        )
        (tmp_path / rel).mkdir(parents=True)
        (tmp_path / rel / "train.yaml").write_text(
            header + yaml.safe_dump(updated, sort_keys=False)
        )
        runs[kind] = (rel, updated, config)
    return tmp_path, k + 1, runs, new_files


def test_the_five_files_follow_the_new_runs(tree, capsys):
    """After the move: the shipped recipe lists the wide run's data, output and max_epochs with
    the stage count and epoch range one stage on; the GPU pair train on the same data with the
    split line the recipe test wants; the partner's commands name the new snapshot's rows, its
    previous run and stage length; gpu_session.sh names the snapshot. Nothing else changes."""
    root, k, runs, new_files = tree
    wide_rel, wide, wide_old = runs["cleanwide"]
    partner_rel, partner, partner_old = runs["partner"]
    before = {name: (root / name).read_text() for name in FILES}
    assert mv.main([wide_rel, "--partner-run", partner_rel, "--root", str(root)]) == 0

    recipe_text = (root / FILES[0]).read_text()
    recipe = yaml.safe_load(recipe_text)
    assert recipe["data"] == wide["data"] and recipe["output"] == wide_rel
    assert recipe["max_epochs"] == wide["max_epochs"] == wide_old["max_epochs"] + 24
    assert recipe_text.startswith(
        f"# Recipe of the shipped potentials/stilbene-r3.fff: R3 "
        f"(SA-2-CASSCF(2,2)/6-31G) snapshot {k}\n"
    )
    first, last = wide_old["max_epochs"] + 1, wide["max_epochs"]
    assert f"over the stage's epochs ({first}-{last})" in recipe_text
    old_stages = int(re.search(r"# stages 2-(\d+)", before[FILES[0]])[1])
    assert f"# stages 2-{old_stages + 1}:" in recipe_text
    # every other key of the recipe is as it was
    old_recipe = yaml.safe_load(before[FILES[0]])
    for key in set(old_recipe) - {"data", "output", "max_epochs"}:
        assert recipe[key] == old_recipe[key], key

    for name in FILES[2:4]:
        text = (root / name).read_text()
        config = yaml.safe_load(text)
        assert config["data"] == wide["data"]
        assert config["output"].endswith(f"-snapshot-{k}")
        copy = [line for line in text.splitlines() if line.lstrip("# ").startswith("cp ")]
        assert copy == [f"#     cp {wide_rel}/split.json {config['output']}/"]
        assert f"(cleanwide, snapshot {k})" in text

    partner_text = (root / FILES[1]).read_text()
    previous = f"potentials/training/stilbene-r3-partner-snapshot-{k - 1}"
    assert (
        f"#     python data/stilbene/r3/next_snapshot.py {k} --rows al99:0:46 transfer:900:913 \\\n"
        f"#         --reuse --from-run {previous} --epochs 24 --lr 0.0005\n"
        f"#     cp {wide_rel}/split.json {partner_rel}/\n"
        f"#     OMP_NUM_THREADS=1 fusionff train {partner_rel}/train.yaml --new-stage\n"
    ) in partner_text
    # the partner recipe is its first stage: only its header moves
    assert yaml.safe_load(partner_text) == yaml.safe_load(before[FILES[1]])
    assert f"from scratch on snapshot {k};" in (root / FILES[4]).read_text()
    assert "By hand:" in capsys.readouterr().out

    # a file's inline data comment survives a move
    text = before[FILES[2]].replace(wide_old["data"][0], wide_old["data"][0] + "  # first")
    moved = mv.replace_data_block(text, wide["data"], "x")
    assert f"  - {wide['data'][0]}  # first\n" in moved


def test_a_missing_pattern_or_a_mismatched_run_writes_nothing(tree, capsys):
    root, k, runs, _ = tree
    wide_rel, _, _ = runs["cleanwide"]
    partner_rel, _, _ = runs["partner"]
    before = {name: (root / name).read_text() for name in FILES}
    script = root / "benchmarks/gpu_session.sh"
    script.write_text(re.sub(r"from scratch on snapshot \d+", "from scratch", before[FILES[4]]))
    assert mv.main([wide_rel, "--partner-run", partner_rel, "--root", str(root)]) == 1
    assert "gpu_session.sh: expected one match" in capsys.readouterr().err
    for name in FILES[:4]:
        assert (root / name).read_text() == before[name], name
    other = partner_rel.replace(f"snapshot-{k}", f"snapshot-{k - 1}")
    assert mv.main([wide_rel, "--partner-run", other, "--root", str(root)]) == 1
    assert f"is not of snapshot {k}" in capsys.readouterr().err
    with pytest.raises(mv.MoveError, match="does not end in snapshot-K"):
        mv.snapshot_of("potentials/training/wide")


def test_rows_are_read_back_from_the_frozen_names():
    files = [
        "data/stilbene/r3/snapshot-3/stilbene-r3-al1-rows0-23.h5",
        "data/stilbene/r3/snapshot-4/stilbene-r3-al1-rows24-66.h5",
        "data/stilbene/r3/snapshot-4/stilbene-r3-transfer-rows116-159.h5",
    ]
    assert mv.rows_of(files, 4) == ["al1:24:67", "transfer:116:160"]
    with pytest.raises(mv.MoveError, match="no file of snapshot 5"):
        mv.rows_of(files, 5)


def test_the_stage_header_is_read_back():
    header = nxt.stage_header(
        "p-snapshot-18", 19, 196, 220, 5e-4, "potentials/training/p-snapshot-19"
    )
    assert mv.stage_of(header + "data: []\n", "potentials/training/p-snapshot-19") == (
        "potentials/training/p-snapshot-18",
        24,
    )
    with pytest.raises(mv.MoveError, match="no header"):
        mv.stage_of("data: []\n", "x")


def _add_exclude(root, rel: str, path: str) -> None:
    """Append ``path`` to the exclude list of the run ``rel``'s train.yaml (header kept)."""
    train = root / rel / "train.yaml"
    text = train.read_text()
    config = yaml.safe_load(text)
    config["exclude"] = [*config["exclude"], path]
    header = "".join(line for line in text.splitlines(keepends=True) if line.startswith("#"))
    train.write_text(header + yaml.safe_dump(config, sort_keys=False))


def test_an_exclude_list_added_by_the_stage_moves_into_the_recipes(tree):
    """A stage that excluded one more label list (next_snapshot.py --exclude): the shipped recipe
    and the GPU pair take the run's exclude list, the old entry keeping its inline comment; a
    partner whose exclude list differs from the wide run's is refused, nothing written."""
    root, _, runs, _ = tree
    added = "data/stilbene/r3/recheck99-higher-solution-labels.xyz"
    wide_rel, partner_rel = runs["cleanwide"][0], runs["partner"][0]
    _add_exclude(root, wide_rel, added)
    before = {name: (root / name).read_text() for name in FILES}
    assert mv.main([wide_rel, "--partner-run", partner_rel, "--root", str(root)]) == 1
    assert all((root / name).read_text() == before[name] for name in FILES)
    _add_exclude(root, partner_rel, added)
    assert mv.main([wide_rel, "--partner-run", partner_rel, "--root", str(root)]) == 0
    for name in (FILES[0], FILES[2], FILES[3]):
        text = (root / name).read_text()
        assert yaml.safe_load(text)["exclude"][-1] == added, name
        assert "out-of-domain-labels.xyz  # al5 row 16" in text, name
