"""data/stilbene/r3/next_snapshot.py: freezing the next snapshot's queue rows and setting up a
run's continuation on it, on toy queue files in a temporary tree; and a second run continued on
the same snapshot (--reuse, --config) without freezing again."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from fusionff.data.dataset import MultiStateDataset
from fusionff.train.data import file_sha256
from fusionff.train.toy import write_toy_dataset
from tests.conftest import load_script

nxt = load_script("data/stilbene/r3/next_snapshot.py")


def test_rows_and_run_names_parse_or_fail_clearly():
    assert nxt.parse_rows("al8:0:54") == ("al8", 0, 54)
    for bad in ("al8:5:5", "al8:0", "AL8:0:3"):
        with pytest.raises(Exception, match="QUEUE:START:STOP"):
            nxt.parse_rows(bad)
    run = Path("potentials/training/stilbene-r3-cleanwide-snapshot-14")
    assert nxt.next_run_name(run, 15).name == "stilbene-r3-cleanwide-snapshot-15"
    with pytest.raises(ValueError, match="does not end in snapshot-N"):
        nxt.next_run_name(Path("runs/wide"), 15)


def test_continuation_config_appends_new_files_once_and_raises_the_epochs():
    config = {"data": ["a.h5", "b.h5"], "max_epochs": 130, "optimizer": {"name": "adam", "lr": 1}}
    out = nxt.continuation_config(config, ["b.h5", "c.h5"], "run-15", 30, 5e-4)
    assert out["data"] == ["a.h5", "b.h5", "c.h5"]
    assert out["max_epochs"] == 160 and out["output"] == "run-15"
    assert out["optimizer"] == {"name": "adam", "lr": 5e-4}
    assert config["data"] == ["a.h5", "b.h5"] and config["optimizer"]["lr"] == 1  # unchanged


@pytest.fixture
def tree(tmp_path, monkeypatch):
    """A repository-like tree: a queue file of 6 toy structures, a wide run with train.yaml and
    a partner run without one (its recipe elsewhere)."""
    queues = tmp_path / "data/stilbene"
    snapshots = queues / "r3"
    snapshots.mkdir(parents=True)
    write_toy_dataset(queues / "stilbene-r3-q.h5", n=6, seed=1)
    for attr, value in (("ROOT", tmp_path), ("QUEUES", queues), ("SNAPSHOTS", snapshots)):
        monkeypatch.setattr(nxt, attr, value)
    runs = tmp_path / "potentials/training"
    config = {"data": ["old.h5"], "max_epochs": 10, "optimizer": {"name": "adam", "lr": 1e-3}}
    wide = runs / "wide-snapshot-1"
    partner = runs / "partner-snapshot-1"
    for run in (wide, partner):
        run.mkdir(parents=True)
        (run / "checkpoint.pt").write_bytes(b"weights")
    (wide / "train.yaml").write_text(yaml.safe_dump({**config, "output": str(wide)}))
    recipe = tmp_path / "partner.yaml"
    recipe.write_text(yaml.safe_dump({**config, "output": str(partner)}))
    return tmp_path, wide, partner, recipe


def test_a_snapshot_is_frozen_once_and_a_second_run_continues_on_it(tree, capsys):
    """The first call freezes rows 1-3 into snapshot-2 and writes the wide run's copy with the
    data list grown; the partner, whose directory has no train.yaml, needs --config, and on
    the existing snapshot --reuse, which takes the frozen file as it is (and refuses rows that
    were not frozen)."""
    root, wide, partner, recipe = tree
    assert nxt.main(["2", "--rows", "q:1:4", "--from-run", str(wide), "--epochs", "5"]) == 0
    frozen = root / "data/stilbene/r3/snapshot-2/stilbene-r3-q-rows1-3.h5"
    with (
        MultiStateDataset.open(frozen) as data,
        MultiStateDataset.open(root / "data/stilbene/stilbene-r3-q.h5") as queue,
    ):
        assert len(data) == 3
        assert (data[0].positions == queue[1].positions).all()
    wide2 = wide.with_name("wide-snapshot-2")
    written = yaml.safe_load((wide2 / "train.yaml").read_text())
    assert written["data"] == ["old.h5", "data/stilbene/r3/snapshot-2/stilbene-r3-q-rows1-3.h5"]
    assert (
        written["max_epochs"] == 15 and written["output"] == "potentials/training/wide-snapshot-2"
    )
    assert (wide2 / "checkpoint.pt").read_bytes() == b"weights"
    assert "--new-stage" in capsys.readouterr().out
    sha = file_sha256(frozen)

    partner_args = ["2", "--rows", "q:1:4", "--from-run", str(partner)]
    with pytest.raises(SystemExit, match="--reuse"):
        nxt.main(partner_args)  # the snapshot exists: not frozen over
    with pytest.raises(SystemExit, match="--config"):
        nxt.main([*partner_args, "--reuse"])  # no train.yaml in the partner's directory
    with pytest.raises(SystemExit, match=r"stilbene-r3-q-rows0-3\.h5 not found"):
        nxt.main(
            ["2", "--rows", "q:0:4", "--from-run", str(partner), "--reuse", "--config", str(recipe)]
        )
    assert nxt.main([*partner_args, "--reuse", "--config", str(recipe)]) == 0
    assert file_sha256(frozen) == sha  # taken as it was
    partner2 = yaml.safe_load((partner.with_name("partner-snapshot-2") / "train.yaml").read_text())
    assert partner2["data"] == written["data"]
    with pytest.raises(SystemExit, match="exists already"):
        nxt.main([*partner_args, "--reuse", "--config", str(recipe)])  # its copy exists now


def test_rows_the_queue_does_not_hold_are_refused_before_anything_is_written(tree):
    root, wide, _, _ = tree
    with pytest.raises(SystemExit, match="holds 6 rows; rows 4-7"):
        nxt.main(["3", "--rows", "q:4:8", "--from-run", str(wide)])
    assert not (root / "data/stilbene/r3/snapshot-3").exists()
    with pytest.raises(SystemExit, match="does not exist"):
        nxt.main(["3", "--rows", "q:0:2", "--from-run", str(wide), "--reuse"])


def test_a_run_that_missed_a_snapshot_catches_up_with_files_of_both(tree):
    """--reuse finds each frozen range in snapshot K's folder or an earlier one: the partner,
    left at snapshot 1, continues on snapshot 3 with snapshot 2's rows and snapshot 3's; a range
    frozen in no snapshot is still refused, and one frozen twice is ambiguous."""
    root, wide, partner, recipe = tree
    assert nxt.main(["2", "--rows", "q:0:2", "--from-run", str(wide)]) == 0
    wide2 = wide.with_name("wide-snapshot-2")
    assert nxt.main(["3", "--rows", "q:2:5", "--from-run", str(wide2)]) == 0
    args = ["3", "--from-run", str(partner), "--reuse", "--config", str(recipe)]
    with pytest.raises(SystemExit, match=r"snapshot-3/stilbene-r3-q-rows5-5\.h5 not found"):
        nxt.main([*args, "--rows", "q:0:2", "q:5:6"])
    assert nxt.main([*args, "--rows", "q:0:2", "q:2:5"]) == 0
    written = yaml.safe_load((partner.with_name("partner-snapshot-3") / "train.yaml").read_text())
    wide3 = yaml.safe_load((wide.with_name("wide-snapshot-3") / "train.yaml").read_text())
    assert (
        written["data"]
        == wide3["data"]
        == [
            "old.h5",
            "data/stilbene/r3/snapshot-2/stilbene-r3-q-rows0-1.h5",
            "data/stilbene/r3/snapshot-3/stilbene-r3-q-rows2-4.h5",
        ]
    )
    twice = root / "data/stilbene/r3/snapshot-1/stilbene-r3-q-rows0-1.h5"
    twice.parent.mkdir()
    twice.write_bytes((root / "data/stilbene/r3/snapshot-2/stilbene-r3-q-rows0-1.h5").read_bytes())
    (root / "data/stilbene/r3/snapshot-4").mkdir()
    with pytest.raises(SystemExit, match="several snapshots"):
        nxt.main(["4", "--rows", "q:0:2", "--from-run", str(wide), "--reuse"])


def test_continuation_config_adds_exclude_lists_once():
    """--exclude: new label lists follow the config's own (a single path or a list), each once;
    without it the config's exclude is left as it was."""
    config = {"data": ["a.h5"], "max_epochs": 1, "optimizer": {"lr": 1}, "exclude": "old.xyz"}
    out = nxt.continuation_config(config, [], "run", 1, 1e-3, exclude=["new.xyz", "old.xyz"])
    assert out["exclude"] == ["old.xyz", "new.xyz"] and config["exclude"] == "old.xyz"
    assert nxt.continuation_config(config, [], "run", 1, 1e-3)["exclude"] == "old.xyz"
    del config["exclude"]
    assert nxt.continuation_config(config, [], "run", 1, 1e-3, ["n.xyz"])["exclude"] == ["n.xyz"]
