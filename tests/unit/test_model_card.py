"""potentials/model_card.py scores a model on another run's test split only where that model
never trained or validated on it (check_unseen): read from the runs' split.json alone."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def card():
    spec = importlib.util.spec_from_file_location("model_card", ROOT / "potentials/model_card.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(folder: Path, files: list[tuple[str, str, int]], train, validation, test) -> Path:
    folder.mkdir()
    record = {
        "files": [{"path": p, "sha256": h, "n_structures": n} for p, h, n in files],
        "train": train,
        "validation": validation,
        "test": test,
    }
    (folder / "split.json").write_text(json.dumps(record))
    return folder


def test_a_run_with_an_extended_split_may_score_its_predecessor(tmp_path, card):
    """The newer run (files a, b; test rows a:1, b:2) and an older run trained on file a alone
    whose training and validation rows avoid a:1: 2 test structures checked, no error."""
    newer = _run(tmp_path / "new", [("a.h5", "x", 4), ("b.h5", "y", 3)], [0, 2, 4], [3], [1, 6])
    older = _run(tmp_path / "old", [("a.h5", "x", 4)], [0, 2], [3], [1])
    assert card.check_unseen(newer, older) == 2


def test_a_model_that_trained_on_a_test_structure_is_refused_by_name(tmp_path, card):
    """The older run validated on a:1, a test structure of the newer run: refused, and the
    message names the file and row."""
    newer = _run(tmp_path / "new", [("a.h5", "x", 4), ("b.h5", "y", 3)], [0, 2, 4], [3], [1, 6])
    older = _run(tmp_path / "old", [("a.h5", "x", 4)], [0, 2], [1], [3])
    with pytest.raises(ValueError, match=r"1 structure\(s\).*a\.h5 row 1"):
        card.check_unseen(newer, older)
    trained = _run(tmp_path / "trained", [("b.h5", "y", 3)], [2], [0], [1])  # b:2 = newer's 6
    with pytest.raises(ValueError, match=r"b\.h5 row 2"):
        card.check_unseen(newer, trained)


def test_the_same_path_with_other_contents_is_another_file(tmp_path, card):
    """A run whose file a.h5 had another SHA-256 trained on other data: a:1 there is not the
    newer run's test structure a:1."""
    newer = _run(tmp_path / "new", [("a.h5", "x", 4)], [0, 2], [3], [1])
    other = _run(tmp_path / "other", [("a.h5", "z", 4)], [1, 2], [0], [3])
    assert card.check_unseen(newer, other) == 1


def test_stage_lines_skip_runs_without_stages_and_name_only_existing_stage_files(card):
    """A run from before stages were recorded (no 'stages' in its metrics) gives no start, and
    a stage whose settings live in the recipe itself (no NAME.stageK.yaml beside the card) is
    not sent to a file that does not exist."""
    stages = [
        {"stage": 1, "after_epoch": 0, "changes": {}},
        {"stage": 2, "after_epoch": 100, "changes": {"optimizer.lr": [0.001, 0.0005]}},
    ]
    results = {"C = 48 (shipped)": {"stages": stages}, "C = 12": {}}
    (line,) = card.stage_lines("no-such-potential", results)
    assert line == (
        "- Stage 2 (`fusionff train ... --new-stage`; C = 48 after epoch 100): "
        "optimizer.lr 0.001 -> 0.0005."
    )
    assert card.stage_lines("no-such-potential", {"C = 12": {}}) == []


def test_a_member_whose_stage_changed_other_settings_gets_a_line_of_its_own(card):
    """The partner's stage 2 added data and set another rate; the first run's stage 2 only
    halved its rate: two lines for stage 2, each naming its own run, and the first run's
    stage 3 alone."""
    first = [
        {"stage": 1, "after_epoch": 0, "changes": {}},
        {"stage": 2, "after_epoch": 100, "changes": {"optimizer.lr": [0.001, 0.0005]}},
        {"stage": 3, "after_epoch": 130, "changes": {"data": [["a.h5"], ["a.h5", "b.h5"]]}},
    ]
    partner = [
        {"stage": 1, "after_epoch": 0, "changes": {}},
        {
            "stage": 2,
            "after_epoch": 90,
            "changes": {"optimizer.lr": [0.002, 0.0005], "data": [["a.h5"], ["a.h5", "b.h5"]]},
        },
    ]
    lines = card.stage_lines(
        "no-such-potential", {"wide (shipped)": {"stages": first}, "partner": {"stages": partner}}
    )
    assert len(lines) == 3
    assert lines[0].startswith("- Stage 2 (`fusionff train ... --new-stage`; wide after epoch 100)")
    assert lines[1].startswith(
        "- Stage 2 (`fusionff train ... --new-stage`; partner after epoch 90)"
    )
    assert "0.002 -> 0.0005" in lines[1] and "b.h5" in lines[1]
    assert "0.002" not in lines[0] and "b.h5" not in lines[0]
    assert lines[2].startswith("- Stage 3 (`fusionff train ... --new-stage`; wide after epoch 130)")


def test_first_stage_settings_are_recovered_from_a_later_stage_recipe(card):
    """A recipe continued with --new-stage holds stage 2's rate (5e-4 after 1e-3) and epochs:
    stage 1's rate comes back; a recipe that is stage 1 itself (R1's, with stage files beside
    it) is left as it is."""
    stages = [
        {"stage": 1, "after_epoch": 0, "changes": {}},
        {"stage": 2, "after_epoch": 100, "changes": {"optimizer.lr": [0.001, 0.0005]}},
    ]
    later = {"optimizer": {"name": "adam", "lr": 0.0005}, "batch_size": 8}
    assert card.first_stage(later, stages) == (
        {"optimizer": {"name": "adam", "lr": 0.001}, "batch_size": 8},
        True,
    )
    assert later["optimizer"]["lr"] == 0.0005  # the recipe itself is not changed
    itself = {"optimizer": {"name": "adam", "lr": 0.001}, "batch_size": 8}
    assert card.first_stage(itself, stages) == (itself, False)


def test_a_stage_on_more_data_files_is_shown_by_the_files_added_and_undone_for_stage_1(card):
    """A stage that only added data files (the next snapshot, the same settings) is described
    by the number of files and the added ones, not by both lists; stage 1's settings get the
    data list back as it was before that stage."""
    stages = [
        {"stage": 1, "after_epoch": 0, "changes": {}},
        {"stage": 2, "after_epoch": 100, "changes": {"optimizer.lr": [0.001, 0.0005]}},
        {"stage": 3, "after_epoch": 130, "changes": {"data": [["a.h5"], ["a.h5", "b.h5"]]}},
    ]
    lines = card.stage_lines("no-such-potential", {"C = 48 (shipped)": {"stages": stages}})
    assert lines[1] == (
        "- Stage 3 (`fusionff train ... --new-stage`; C = 48 after epoch 130): "
        "data 1 -> 2 files (+b.h5)."
    )
    recipe = {"data": ["a.h5", "b.h5"], "optimizer": {"lr": 0.0005}}
    stage_1 = {"data": ["a.h5"], "optimizer": {"lr": 0.001}}
    assert card.first_stage(recipe, stages) == (stage_1, True)
