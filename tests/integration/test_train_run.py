"""End-to-end training on the toy two-state dataset: learning, resume identity, output files."""

from __future__ import annotations

import io
import json
import math
import os
import signal

import numpy as np
import pytest
import torch

from fusionff import load_model
from fusionff.models.io import read_header
from fusionff.train.config import ConfigError, TrainConfig
from fusionff.train.data import file_sha256
from fusionff.train.toy import write_toy_dataset
from fusionff.train.trainer import Trainer

from .train_helpers import TINY_MODEL, tiny_training


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """40 toy structures (2 states, some labels masked, one failed)."""
    path = tmp_path_factory.mktemp("toy") / "toy.h5"
    write_toy_dataset(path, n=40, seed=0)
    return path


def tiny_config(data, output, **overrides) -> TrainConfig:
    return TrainConfig.from_dict(tiny_training(data, output, **overrides))


class Killed(Exception):
    """Stands for the process being killed after a checkpoint."""


def test_training_lowers_validation_error(toy, tmp_path):
    """30 epochs of a tiny float64 model lower the validation loss and the force MAE of both
    states."""
    trainer = Trainer(
        tiny_config(
            toy,
            tmp_path,
            max_epochs=30,
            early_stopping_patience=None,
            optimizer={"lr": 0.02},
            schedule={"name": "exponential", "gamma": 0.97},
        )
    )
    before_loss, before = trainer.validate()
    result = trainer.fit()
    after_loss, after = trainer.validate()
    f_before = [s["force_mae"] for s in before["states"]]
    f_after = [s["force_mae"] for s in after["states"]]
    e_before = [s["energy_mae"] for s in before["states"]]
    e_after = [s["energy_mae"] for s in after["states"]]
    numbers = (
        f"validation loss {before_loss:.3f} -> {after_loss:.3f}; force MAE (meV/A) "
        f"{np.round(f_before, 1)} -> {np.round(f_after, 1)}; energy MAE (meV) "
        f"{np.round(e_before, 1)} -> {np.round(e_after, 1)}; {result.training_time_s:.1f} s"
    )
    assert after_loss < 0.5 * before_loss, numbers
    assert all(a < 0.8 * b for a, b in zip(f_after, f_before, strict=True)), numbers
    assert result.epochs == 30 and len(result.history) == 30


def _state(path):
    return torch.load(path / "checkpoint.pt", weights_only=True)


def test_resumed_run_equals_uninterrupted_run(toy, tmp_path):
    """2 epochs, a 'kill', then resume to 4 gives bitwise the weights, EMA, optimizer state and
    history of an uninterrupted 4-epoch run (float64, CPU); the checkpoint loads with
    weights_only=True."""
    straight = Trainer(tiny_config(toy, tmp_path / "a")).fit()

    def kill_after_two(trainer):
        if trainer.epoch == 2:
            raise Killed

    with pytest.raises(Killed):
        Trainer(tiny_config(toy, tmp_path / "b")).fit(on_epoch_end=kill_after_two)
    assert _state(tmp_path / "b")["epoch"] == 2
    resumed = Trainer(tiny_config(toy, tmp_path / "b")).fit()

    a, b = _state(tmp_path / "a"), _state(tmp_path / "b")
    for key in ("model", "best_weights"):
        assert all(torch.equal(a[key][k], b[key][k]) for k in a[key]), key
    assert all(torch.equal(a["ema"]["weights"][k], b["ema"]["weights"][k]) for k in a["model"])
    opt_a, opt_b = a["optimizer"]["state"], b["optimizer"]["state"]
    assert all(torch.equal(opt_a[i]["exp_avg_sq"], opt_b[i]["exp_avg_sq"]) for i in opt_a)
    assert a["scheduler"] == b["scheduler"]
    strip = lambda h: [{k: v for k, v in r.items() if k != "time_s"} for r in h]  # noqa: E731
    assert strip(straight.history) == strip(resumed.history)
    lines = (tmp_path / "b" / "history.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2, 3, 4]
    ma, mb = load_model(tmp_path / "a" / "model.fff"), load_model(tmp_path / "b" / "model.fff")
    assert all(
        torch.equal(x, y)
        for x, y in zip(ma.state_dict().values(), mb.state_dict().values(), strict=True)
    )
    assert json.loads((tmp_path / "b" / "split.json").read_text()) == json.loads(
        (tmp_path / "a" / "split.json").read_text()
    )


def test_sigterm_mid_epoch_finishes_from_the_last_checkpoint_and_resumes_identically(toy, tmp_path):
    """SIGTERM during epoch 3 (after its second batch): the invocation drops that epoch, goes
    back to the epoch-2 checkpoint and writes model.fff (the checkpoint's best EMA weights)
    and metrics; the signal handlers are restored; running again then gives bitwise the
    model of an uninterrupted 4-epoch run."""
    Trainer(tiny_config(toy, tmp_path / "a")).fit()
    log = io.StringIO()
    trainer = Trainer(tiny_config(toy, tmp_path / "b"), log=log)
    train_loss, calls = trainer._loss, []

    def loss_then_signal(*args):
        if trainer.model.training and trainer.epoch == 2:
            calls.append(1)
            if len(calls) == 2:
                os.kill(os.getpid(), signal.SIGTERM)
        return train_loss(*args)

    trainer._loss = loss_then_signal
    handler = signal.getsignal(signal.SIGTERM)
    result = trainer.fit()
    assert len(calls) == 2  # no batch after the signal
    assert result.interrupted == "SIGTERM" and result.epochs == 2
    assert signal.getsignal(signal.SIGTERM) is handler
    assert "SIGTERM: stopped during epoch 3, whose updates are dropped" in log.getvalue()
    state = _state(tmp_path / "b")
    assert state["epoch"] == 2 and len(state["history"]) == 2
    model = load_model(tmp_path / "b" / "model.fff")
    assert all(torch.equal(v, state["best_weights"][k]) for k, v in model.state_dict().items())
    assert json.loads((tmp_path / "b" / "metrics.json").read_text())["epochs"] == 2

    Trainer(tiny_config(toy, tmp_path / "b")).fit()
    ma, mb = load_model(tmp_path / "a" / "model.fff"), load_model(tmp_path / "b" / "model.fff")
    assert all(
        torch.equal(x, y)
        for x, y in zip(ma.state_dict().values(), mb.state_dict().values(), strict=True)
    )


def test_signal_during_validation_keeps_the_finished_epoch(toy, tmp_path):
    """SIGINT while epoch 2 is being validated: epoch 2 still counts (checkpointed, even with
    checkpoint_every 3), the invocation ends there with model.fff and interrupted='SIGINT'."""
    log = io.StringIO()
    trainer = Trainer(tiny_config(toy, tmp_path / "c", checkpoint_every=3), log=log)
    validate = trainer.validate

    def validate_then_signal():
        if trainer.epoch == 1:
            os.kill(os.getpid(), signal.SIGINT)
        return validate()

    trainer.validate = validate_then_signal
    result = trainer.fit()
    assert result.interrupted == "SIGINT" and result.epochs == 2
    assert "SIGINT: stopped after an epoch" in log.getvalue()
    assert _state(tmp_path / "c")["epoch"] == 2
    assert (tmp_path / "c" / "model.fff").exists()


def test_output_files_and_model_metadata(toy, tmp_path):
    """A finished run leaves model.fff (EMA weights, data hash, split sizes, test metrics,
    device, time), metrics.json, history.jsonl, train.log and learning_curve.png."""
    result = Trainer(tiny_config(toy, tmp_path, max_epochs=2)).fit()
    out = result.output
    for name in (
        "model.fff",
        "metrics.json",
        "history.jsonl",
        "train.log",
        "learning_curve.png",
        "split.json",
        "checkpoint.pt",
    ):
        assert (out / name).is_file(), name
    assert (out / "learning_curve.png").read_bytes()[:4] == b"\x89PNG"
    meta = read_header(out / "model.fff")["metadata"]["training"]
    assert meta["data"][0]["sha256"] == file_sha256(toy)
    assert meta["split"] == {"train": 25, "validation": 7, "test": 7}
    assert meta["device"] == "cpu" and meta["training_time_s"] > 0
    assert meta["test_metrics"]["states"][1]["force_mae"] > 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test"] == meta["test_metrics"] and metrics["epochs"] == 2
    header = read_header(out / "model.fff")["config"]
    assert header["elements"] == ["H", "C", "O"] and header["n_states"] == 2
    assert header["avg_num_neighbors"] > 1 and len(header["e0s"]["C"]) == 2
    model = load_model(out / "model.fff")
    best = torch.load(out / "checkpoint.pt", weights_only=True)["best_weights"]
    assert all(torch.equal(v, best[k]) for k, v in model.state_dict().items())


def test_resume_with_changed_settings_is_refused(toy, tmp_path):
    """Continuing a checkpoint with another learning rate names the changed key; a longer
    max_epochs is allowed."""
    Trainer(tiny_config(toy, tmp_path, max_epochs=1)).fit()
    with pytest.raises(ValueError, match=r"optimizer\.lr: 0\.01 -> 0\.5"):
        Trainer(tiny_config(toy, tmp_path, max_epochs=1, optimizer={"lr": 0.5}))
    result = Trainer(tiny_config(toy, tmp_path, max_epochs=2)).fit()
    assert result.epochs == 2


def test_early_stopping(toy, tmp_path):
    """With patience 1 and a learning rate too large to improve, training stops early."""
    result = Trainer(
        tiny_config(
            toy,
            tmp_path,
            max_epochs=30,
            early_stopping_patience=1,
            optimizer={"lr": 5.0},
            schedule={"name": "none"},
        )
    ).fit()
    assert result.stopped_early and result.epochs < 30
    assert result.epochs == result.best_epoch + 1


def test_time_limit_ends_invocation_with_model_and_resumes(toy, tmp_path):
    """With a wall-clock limit already exceeded after one epoch, the run stops there, still
    writes its model file, and the same config run again continues to max_epochs."""
    config = tiny_config(toy, tmp_path / "run", max_epochs=3, time_limit_minutes=1e-9)
    first = Trainer(config, log=io.StringIO())
    first.fit()
    assert first.epoch == 1
    assert (tmp_path / "run" / "model.fff").exists()
    second = Trainer(config, log=io.StringIO())
    second.fit()
    assert second.epoch == 2  # one more epoch per invocation under this limit


def _assert_split_extended(old: dict, out) -> dict:
    """The run's split.json after a data file was added: the first file's structures keep the
    subset they had in ``old``. Returns the new split."""
    new = json.loads((out / "split.json").read_text())
    rows_first_file = old["files"][0]["n_structures"]
    for key in ("train", "validation", "test"):
        assert [i for i in new[key] if i < rows_first_file] == old[key]
    return new


def test_continuing_with_an_added_file_extends_the_split(toy, tmp_path):
    """A run continued with a second data file keeps its epochs and weights, trains on the
    extended split (old structures keep their split) and restarts best-loss tracking, since
    the validation set changed."""
    extra = tmp_path / "extra.h5"
    write_toy_dataset(extra, n=20, seed=5)
    out = tmp_path / "run"
    first = Trainer(tiny_config(toy, out, max_epochs=2))
    first.fit()
    old = json.loads((out / "split.json").read_text())
    log = io.StringIO()
    config = tiny_config(toy, out, max_epochs=3)
    config.data = [str(toy), str(extra)]
    second = Trainer(config, log=log)
    assert second.epoch == 2 and second.best_loss == float("inf")
    assert "split extended" in log.getvalue()
    _assert_split_extended(old, out)
    for key in ("train", "validation", "test"):
        assert len(second.split[key]) > len(first.split[key])
    second.fit()
    assert second.epoch == 3 and second.best_epoch == 3


@pytest.mark.slow  # about 5 s
def test_new_stage_changes_optimisation_settings_and_resumes_identically(toy, tmp_path):
    """--new-stage continues a run with another loss, learning rate and schedule: it starts
    from the best EMA weights of stage 1 with a fresh optimizer, records the stage and its
    changed settings, and a stage-2 run killed after one epoch and continued equals an
    uninterrupted one bitwise. Without --new-stage the same change is refused with a hint."""
    stage2 = {
        "loss": {"energy": 10.0, "forces": 10.0, "kind": "huber", "huber_delta_forces": 0.05},
        "optimizer": {"lr": 0.003},
        "schedule": {"name": "exponential", "gamma": 0.9},
        "max_epochs": 5,
    }
    for name in ("a", "b"):
        Trainer(tiny_config(toy, tmp_path / name, max_epochs=3)).fit()
    best = _state(tmp_path / "a")["best_weights"]
    with pytest.raises(ValueError, match=r"loss\.kind: 'mse' -> 'huber'.*--new-stage"):
        Trainer(tiny_config(toy, tmp_path / "a", **stage2))
    log = io.StringIO()
    trainer = Trainer(tiny_config(toy, tmp_path / "a", **stage2), log=log, new_stage=True)
    assert all(torch.equal(trainer.model.state_dict()[k], v) for k, v in best.items())
    assert trainer.optimizer.param_groups[0]["lr"] == 0.003 and trainer.best_loss == math.inf
    assert "stage 2" in log.getvalue() and "loss.kind 'mse' -> 'huber'" in log.getvalue()
    straight = trainer.fit()
    assert [r["stage"] for r in straight.history] == [1, 1, 1, 2, 2]
    assert straight.best_epoch > 3  # the best of stage 2, by the stage-2 loss

    def kill_after_four(t):
        if t.epoch == 4:
            raise Killed

    with pytest.raises(Killed):
        Trainer(tiny_config(toy, tmp_path / "b", **stage2), new_stage=True).fit(
            on_epoch_end=kill_after_four
        )
    with pytest.raises(ValueError, match="no new stage to begin"):  # stage 2 begun already
        Trainer(tiny_config(toy, tmp_path / "b", **stage2), new_stage=True)
    Trainer(tiny_config(toy, tmp_path / "b", **stage2)).fit()  # plain continuation
    a, b = _state(tmp_path / "a"), _state(tmp_path / "b")
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert (
        a["stages"]
        == b["stages"]
        == [
            {"stage": 1, "after_epoch": 0, "changes": {}},
            {
                "stage": 2,
                "after_epoch": 3,
                "changes": {
                    "loss.huber_delta_forces": [0.5, 0.05],
                    "loss.kind": ["mse", "huber"],
                    "optimizer.lr": [0.01, 0.003],
                    "schedule.factor": [0.5, 0.8],
                    "schedule.gamma": [0.99, 0.9],
                    "schedule.name": ["plateau", "exponential"],
                    "schedule.patience": [1, 10],
                },
            },
        ]
    )
    meta = read_header(tmp_path / "a" / "model.fff")["metadata"]["training"]
    assert meta["stages"] == a["stages"]


def test_new_stage_cosine_spans_the_stage_epochs(toy, tmp_path):
    """A new stage's cosine decays from its rate to min_lr over the stage's own epochs (from
    its start to max_epochs), not over the whole run: each stage-2 epoch trains at the cosine
    value for its place in the stage, and the rate after the last is min_lr."""
    lr, min_lr = 0.004, 1.0e-4
    Trainer(tiny_config(toy, tmp_path, max_epochs=2)).fit()
    stage2 = {"optimizer": {"lr": lr}, "schedule": {"name": "cosine", "min_lr": min_lr}}
    trainer = Trainer(tiny_config(toy, tmp_path, max_epochs=6, **stage2), new_stage=True)
    result = trainer.fit()
    used = [r["lr"] for r in result.history if r["stage"] == 2]
    expected = [min_lr + (lr - min_lr) * (1 + math.cos(math.pi * k / 4)) / 2 for k in range(4)]
    assert used == pytest.approx(expected, rel=1e-12)
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(min_lr, rel=1e-12)


def test_new_stage_with_an_added_file_extends_the_split_from_the_best_weights(toy, tmp_path):
    """How a shipped run continues on the next data snapshot: a new stage whose config adds a
    data file and raises max_epochs starts from stage 1's best weights, extends the split
    (old structures keep their subset, the new file's rows are spread over all three) and
    trains on the extended training split."""
    extra = tmp_path / "extra.h5"
    write_toy_dataset(extra, n=20, seed=5)
    out = tmp_path / "run"
    Trainer(tiny_config(toy, out, max_epochs=2)).fit()
    old = json.loads((out / "split.json").read_text())
    best = _state(out)["best_weights"]
    config = tiny_config(toy, out, max_epochs=4, optimizer={"lr": 0.003})
    config.data = [str(toy), str(extra)]
    log = io.StringIO()
    trainer = Trainer(config, log=log, new_stage=True)
    assert "split extended" in log.getvalue() and "stage 2" in log.getvalue()
    assert all(torch.equal(trainer.model.state_dict()[k], v) for k, v in best.items())
    new = _assert_split_extended(old, out)
    rows_first_file = old["files"][0]["n_structures"]
    for key in ("train", "validation", "test"):
        assert any(i >= rows_first_file for i in new[key])  # the added file in every subset
    assert len(trainer.split["train"]) == len(new["train"]) > len(old["train"])
    result = trainer.fit()
    assert [r["stage"] for r in result.history] == [1, 1, 2, 2]


def test_a_new_stage_may_only_add_data_files_and_cannot_begin_twice(toy, tmp_path):
    """The next data snapshot with the same settings is a stage of its own (fresh optimiser
    and schedule from the best weights): allowed, recorded as a data change, logged by the
    file added; once it has begun, --new-stage with the same config is refused (it would
    restart the stage) and a plain continuation goes on."""
    extra = tmp_path / "extra.h5"
    write_toy_dataset(extra, n=20, seed=5)
    out = tmp_path / "run"
    Trainer(tiny_config(toy, out, max_epochs=2)).fit()
    with pytest.raises(ValueError, match="no stage setting and no data file"):
        Trainer(tiny_config(toy, out, max_epochs=3), new_stage=True)
    config = tiny_config(toy, out, max_epochs=3)
    config.data = [str(toy), str(extra)]
    log = io.StringIO()
    trainer = Trainer(config, log=log, new_stage=True)
    assert f"data 1 -> 2 files (+{extra})" in log.getvalue()
    trainer.fit()
    assert _state(out)["stages"][1] == {
        "stage": 2,
        "after_epoch": 2,
        "changes": {"data": [[str(toy)], [str(toy), str(extra)]]},
    }
    with pytest.raises(ValueError, match="no new stage to begin"):
        Trainer(config, new_stage=True)
    config.max_epochs = 4
    assert Trainer(config).fit().history[-1]["stage"] == 2


def test_new_stage_refuses_model_changes_and_needs_a_checkpoint(toy, tmp_path):
    """A new stage may not change the model (it continues the same weights), and there must
    be a first stage to continue."""
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        Trainer(tiny_config(toy, tmp_path / "none"), new_stage=True)
    Trainer(tiny_config(toy, tmp_path / "run", max_epochs=1)).fit()
    model = {**TINY_MODEL, "channels": 6}
    with pytest.raises(ValueError, match=r"model\.channels: 4 -> 6.*a new stage may change only"):
        Trainer(tiny_config(toy, tmp_path / "run", model=model), new_stage=True)


def test_mask_forces_above_leaves_out_large_force_labels(toy, tmp_path):
    """mask_forces_above leaves out exactly the states whose largest atomic force exceeds the
    limit, in training and in the reported metrics, and the log says how many."""
    out = tmp_path / "run"
    plain = Trainer(tiny_config(toy, out, max_epochs=1), log=io.StringIO())
    data = plain.data
    norms = np.linalg.norm(data.forces, axis=-1)
    largest = np.maximum.reduceat(norms, data.atom_offsets[:-1], axis=0)
    limit = float(np.median(largest[data.force_mask]))
    expected = data.force_mask & ~(largest > limit)
    log = io.StringIO()
    masked = Trainer(
        tiny_config(toy, tmp_path / "masked", max_epochs=1, mask_forces_above=limit), log=log
    )
    assert np.array_equal(masked.data.force_mask, expected)
    n_left_out = (data.force_mask & (largest > limit)).sum(axis=0)
    assert all(n > 0 for n in n_left_out)
    assert f"S0 {n_left_out[0]}, S1 {n_left_out[1]} structures" in log.getvalue()
    result = masked.fit()
    test = masked.split["test"]
    assert [s["n_forces"] for s in result.test_metrics["states"]] == list(
        expected[test].sum(axis=0)
    )


def test_excluded_labels_are_trained_and_tested_on_nowhere(toy, tmp_path):
    """``exclude`` lists wrong labels (atoms, positions, energies): their structures are in no
    split, split.json and the log say so, and the test metrics count the others only."""
    from ase import Atoms
    from ase.io import write

    plain = Trainer(tiny_config(toy, tmp_path / "plain", max_epochs=1), log=io.StringIO())
    data = plain.data
    victims = [int(plain.split["test"][0]), int(plain.split["train"][0])]
    frames = []
    for i in victims:
        a, b = data.atom_offsets[i], data.atom_offsets[i + 1]
        energies = np.where(data.energy_mask[i], data.energies[i], np.nan).tolist()
        frames.append(
            Atoms(
                numbers=data.numbers[a:b],
                positions=data.positions[a:b],
                info={"energies": energies},
            )
        )
    wrong = tmp_path / "wrong.xyz"
    write(wrong, frames, format="extxyz")
    log = io.StringIO()
    out = tmp_path / "excluded"
    trainer = Trainer(tiny_config(toy, out, max_epochs=1, exclude=str(wrong)), log=log)
    taken = np.concatenate(list(trainer.split.values()))
    assert not set(victims) & set(taken.tolist()) and len(taken) == len(data) - 2
    assert f"exclude {wrong}: 2 structures kept out of every split" in log.getvalue()
    stored = json.loads((out / "split.json").read_text())
    assert stored["excluded"] == sorted(int(data.ids[i]) for i in victims)
    result = trainer.fit()
    assert result.test_metrics["n_structures"] == len(trainer.split["test"])

    # The suspects checked and found right: a fresh run on the stored split (as a fine-tuning
    # round starts from its predecessor's split.json) takes them back with ``release``.
    again = tmp_path / "released"
    again.mkdir()
    (again / "split.json").write_text((out / "split.json").read_text())
    log = io.StringIO()
    released = Trainer(tiny_config(toy, again, max_epochs=1, release=str(wrong)), log=log)
    assert sorted(np.concatenate(list(released.split.values())).tolist()) == list(range(len(data)))
    assert f"release {wrong}: 2 structures in the splits again" in log.getvalue()
    stored = json.loads((again / "split.json").read_text())
    assert stored["excluded"] == [] and stored["releases"][0]["rows"] == sorted(
        int(data.ids[i]) for i in victims
    )


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_train_subsample_trains_on_part_and_keeps_the_stored_split(toy, tmp_path):
    """split.train_subsample 0.5 trains on half the training split (the log and metrics say
    so) and writes the same split.json as a full run, so both test on the same structures;
    a fraction outside (0, 1] is refused by the config."""
    full = Trainer(tiny_config(toy, tmp_path / "full", max_epochs=1), log=io.StringIO())
    full.fit()
    log = io.StringIO()
    split = {"train": 0.6, "validation": 0.2, "test": 0.2, "train_subsample": 0.5}
    half = Trainer(tiny_config(toy, tmp_path / "half", max_epochs=1, split=split), log=log)
    half.fit()
    n_train = len(full.split["train"])
    assert len(half.split["train"]) == n_train // 2
    assert set(half.split["train"]) <= set(full.split["train"])
    assert np.array_equal(half.split["test"], full.split["test"])
    assert f"training on {n_train // 2} of the {n_train} structures" in log.getvalue()
    stored = [json.loads((tmp_path / d / "split.json").read_text()) for d in ("full", "half")]
    assert all(stored[0][k] == stored[1][k] for k in ("train", "validation", "test"))
    metrics = json.loads((tmp_path / "half" / "metrics.json").read_text())
    assert metrics["split"]["train"] == n_train // 2
    assert metrics["train"]["n_structures"] == n_train // 2  # the part trained on
    with pytest.raises(ConfigError, match="split.train_subsample"):
        tiny_config(toy, tmp_path / "bad", split={"train_subsample": 0.0})


def test_progress_bar_on_a_terminal_only(toy, tmp_path):
    """On a terminal each epoch shows a bar of the structures trained (up to all 25 of the
    split, with the running loss) before its summary line; a log file gets no bar."""
    terminal, logfile = _Terminal(), io.StringIO()
    Trainer(tiny_config(toy, tmp_path / "a", max_epochs=1), log=terminal).fit()
    Trainer(tiny_config(toy, tmp_path / "b", max_epochs=1), log=logfile).fit()
    text = terminal.getvalue()
    assert "\repoch    1/1 [####################] 25/25  loss " in text
    assert text.index("25/25") < text.index("val MAE")
    assert "\r" not in logfile.getvalue() and "25/25" not in logfile.getvalue()
