"""The training loop: shuffled batches, EMA weights, LR schedule, early stopping, resumable.

A run lives in its output directory::

    split.json            the split (reused on resume; extended when data files are added)
    checkpoint.pt         model, EMA and best weights, optimizer, scheduler, RNG, history
    history.jsonl         one JSON record per epoch
    train.log             the progress lines and the final metrics table
    model.fff             the final model (best EMA weights by validation loss)
    metrics.json          train, validation and test metrics of the final model
    learning_curve.png    losses and per-state validation MAEs against the epoch

``Trainer(config).fit()`` starts a run, or continues it from ``checkpoint.pt`` when there is
one: a run stopped at any point and continued gives the same weights as one never stopped
(bitwise in float64 on the CPU).

Ctrl-C (SIGINT) or SIGTERM (a batch system's stop) ends an invocation cleanly: the epoch in
progress is dropped, the run goes back to its last checkpoint, and ``model.fff``,
``metrics.json`` and the learning curve are written from there (:attr:`TrainResult.interrupted`
names the signal); running the config again continues from that checkpoint.

``Trainer(config, new_stage=True)`` (``fusionff train --new-stage``) continues a run with other
optimisation settings (loss, optimizer, schedule, batch size, EMA decay, force mask) or on
more data files (the next data snapshot, with or without other settings): a new *stage*, as
in MACE's second, energy-weighted stage. The stage starts from the best EMA weights so far,
with a fresh optimizer and schedule (a cosine spans the stage's own epochs, from its start to
``max_epochs``) and a fresh best validation loss (the loss, or the validation set, is another
now); model, split (extended by added files) and seed stay. History records carry their
stage, and the checkpoint lists each stage's start and changed settings.

Under ``torchrun`` every rank builds a ``Trainer`` and trains shards of each (global) batch;
the run is the one-process run up to rounding, and rank 0 alone writes the files above (see
:mod:`fusionff.train.distributed`).

``init_from: PATH.fff`` starts a fresh run from a model file's matching parameters
(:mod:`fusionff.train.pretrained`); the checkpoint, ``metrics.json`` and ``model.fff`` record
the file's path and SHA-256 and what was copied.
"""

from __future__ import annotations

import dataclasses
import io
import math
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import torch

from fusionff.models.config import ModelConfig
from fusionff.models.io import load_model, save_model
from fusionff.models.multistate_mace import MultiStateMACE
from fusionff.train import report
from fusionff.train.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from fusionff.train.config import TrainConfig
from fusionff.train.data import file_sha256, load_training_data
from fusionff.train.distributed import join
from fusionff.train.ema import ExponentialMovingAverage
from fusionff.train.evaluate import Predictions, metrics_of, predict
from fusionff.train.loss import (
    coupling_loss,
    gap_loss,
    multistate_loss,
    outer_coupling_loss,
    trains_couplings,
)
from fusionff.train.metrics import format_metrics
from fusionff.train.pretrained import copy_matching_parameters, describe, fine_tune_model_keys
from fusionff.train.split import load_or_create_split, split_was_extended, train_subsample
from fusionff.train.statistics import model_config_for

RESUMABLE_CHANGES = (
    "data",
    "output",
    "max_epochs",
    "early_stopping_patience",
    "checkpoint_every",
    "time_limit_minutes",
    "device",
)
"""Config keys that may differ between a run and its continuation (split.json checks that the
data files are the same by their SHA-256)."""
STAGE_CHANGES = RESUMABLE_CHANGES + (
    "loss",
    "optimizer",
    "schedule",
    "batch_size",
    "ema_decay",
    "mask_forces_above",
    "exclude",
    "release",
)
"""Config keys that may also differ when a run goes on as a new stage."""
OUTPUT_FILES = (
    "checkpoint.pt",
    "split.json",
    "history.jsonl",
    "train.log",
    "model.fff",
    "metrics.json",
    "learning_curve.png",
)


@dataclass
class TrainResult:
    """What a finished run produced (files in ``output``)."""

    output: Path
    model_path: Path
    epochs: int
    best_epoch: int
    stopped_early: bool
    training_time_s: float
    validation_metrics: dict[str, Any]
    test_metrics: dict[str, Any] | None
    history: list[dict[str, Any]]
    interrupted: str | None = None
    """Name of the signal (SIGINT, SIGTERM) that ended the invocation early, else None."""


class Trainer:
    """One training run (see the module docstring).

    Args:
        config: the run's settings.
        restart: delete the output directory's run files first instead of continuing.
        log: stream for the progress lines (default stderr).
        new_stage: continue the run in the output directory as a new stage with this config's
            optimisation settings (see the module docstring); needs a checkpoint.
    """

    def __init__(
        self,
        config: TrainConfig,
        restart: bool = False,
        log: TextIO | None = None,
        new_stage: bool = False,
    ):
        if restart and new_stage:
            raise ValueError("restart and new_stage exclude each other")
        self.config = config
        self.ranks = join(config.device)  # one rank unless under torchrun (distributed.py)
        self.log = log if log is not None else sys.stderr
        if not self.ranks.is_main:  # rank 0 alone reports and writes files
            self.log = io.StringIO()
        self._stop = _StopOnSignal()  # entered by fit()
        self.output = Path(config.output)
        self.output.mkdir(parents=True, exist_ok=True)
        if restart and self.ranks.is_main:
            for name in OUTPUT_FILES:
                (self.output / name).unlink(missing_ok=True)
        self.ranks.barrier()  # the others read the output directory after rank 0 cleared it
        self.device = self.ranks.device
        self.dtype = torch.float64 if config.dtype == "float64" else torch.float32
        r_max = config.model.get("r_max", ModelConfig.__dataclass_fields__["r_max"].default)
        self.data = load_training_data(config.data, r_max)
        masked = None
        if config.mask_forces_above is not None:
            masked = self.data.mask_forces_above(config.mask_forces_above)
        self.files = [
            {"path": p, "sha256": file_sha256(p), "n_structures": n}
            for p, n in zip(self.data.paths, self.data.file_rows, strict=True)
        ]
        split_seed = config.split_seed
        extended = split_was_extended(self.output / "split.json", self.files)
        # (file, matched structures, unmatched labels) of each list, for the log
        excluded, self.excluded = self._listed_labels(config.exclude)
        released, self.released = self._listed_labels(config.release)
        self.split = self.ranks.main_first(
            lambda: load_or_create_split(
                self.output / "split.json",
                self.data,
                config.split,
                split_seed,
                self.files,
                excluded,
                released,
            )
        )
        n_train = len(self.split["train"])
        self.split = train_subsample(self.split, config.split.train_subsample, split_seed)
        if len(self.split["train"]) < n_train:
            self._say(
                f"training on {len(self.split['train'])} of the {n_train} structures of the "
                f"training split (split.train_subsample {config.split.train_subsample})"
            )
        checkpoint_path = self.output / "checkpoint.pt"
        checkpoint = load_checkpoint(checkpoint_path) if checkpoint_path.exists() else None
        if new_stage and checkpoint is None:
            raise FileNotFoundError(
                f"{checkpoint_path}: no checkpoint to continue as a new stage; train the first "
                "stage without --new-stage"
            )
        stage_changes: dict[str, list[Any]] = {}
        pretrained: MultiStateMACE | None = None  # the init_from model of a fresh run
        if checkpoint is not None:
            stage_changes = self._check_continuation(checkpoint["config"], new_stage)
            if new_stage and not stage_changes:
                raise ValueError(
                    f"{checkpoint_path}: the config changes no stage setting and no data file, "
                    "so there is no new stage to begin; continue the run without --new-stage"
                )
            model_config = ModelConfig.from_dict(checkpoint["model_config"])
        else:
            fresh_config = config
            if config.init_from is not None:  # fine-tuning: statistics still from this data
                pretrained = load_model(config.init_from)
                keys = fine_tune_model_keys(config.model, pretrained.config, config.init_from)
                fresh_config = dataclasses.replace(config, model=keys)
            model_config = model_config_for(fresh_config, self.data, self.split["train"])
        torch.manual_seed(config.seed)
        self.model = MultiStateMACE(config=model_config).to(self.device)
        self.init_from: dict[str, Any] | None = None  # provenance of init_from, once used
        if pretrained is not None:
            copied, fresh = copy_matching_parameters(self.model, pretrained)
            self.init_from = {
                "path": config.init_from,
                "sha256": file_sha256(config.init_from),
                "copied": copied,
                "fresh": fresh,
            }
        self.ema = ExponentialMovingAverage(self.model, config.ema_decay)
        self.train_couplings = trains_couplings(config.loss.nacs, self.data, self.model)
        self.optimizer = _optimizer(config, self.model)
        self.scheduler = _scheduler(config, self.optimizer)
        self.shuffle = torch.Generator().manual_seed(config.seed)
        weights = config.loss.states or [1.0] * model_config.n_states
        self.state_weights = torch.tensor(weights, dtype=self.dtype, device=self.device)
        self.val_labels = self.data.labels(self.split["validation"], self.dtype, self.device)
        self.epoch, self.best_epoch, self.bad_epochs = 0, 0, 0
        self.best_loss, self.elapsed, self.stopped_early = math.inf, 0.0, False
        self.best_weights: dict[str, torch.Tensor] | None = None
        self.history: list[dict[str, Any]] = []
        self.stages: list[dict[str, Any]] = [{"stage": 1, "after_epoch": 0, "changes": {}}]
        if checkpoint is not None:
            self._restore(checkpoint, new_stage)
            self._say(f"resuming {self.output} after epoch {self.epoch}")
            if new_stage:
                self._begin_stage(stage_changes)
            if extended:
                # another validation set: its losses do not compare with the stored best
                self.best_loss, self.bad_epochs, self.stopped_early = math.inf, 0, False
                sizes = {k: len(v) for k, v in self.split.items()}
                self._say(
                    f"data files added: split extended to {sizes}; the best validation loss "
                    "and early stopping start afresh"
                )
        else:
            sizes = {k: len(v) for k, v in self.split.items()}
            self._say(
                f"{len(self.data)} usable structures ({self.data.n_skipped} skipped), split "
                f"{sizes}; model {model_config.n_states} states, elements "
                f"{model_config.elements}, {self.model.num_parameters():,} parameters, "
                f"device {self.device}"
            )
            if self.init_from is not None:
                self._say(describe(self.init_from, self.model))
        self.ranks.broadcast_module(self.model)  # rank 0's weights everywhere
        self.ranks.broadcast_module(self.ema.model)
        if self.ranks.active:
            bs, n = config.batch_size, self.ranks.size
            self._say(
                f"data-parallel over {n} ranks on {self.device.type}: each batch of {bs} "
                f"structures split into shards of about {bs / n:.3g}"
            )
        if masked is not None:
            self._say(
                f"mask_forces_above {config.mask_forces_above} eV/A: force labels left out for "
                + ", ".join(f"S{s} {n}" for s, n in enumerate(masked))
                + " structures"
            )
        for path, matched, unmatched in self.excluded:
            missing = f"; {unmatched} listed labels match no structure" if unmatched else ""
            self._say(f"exclude {path}: {matched} structures kept out of every split{missing}")
        for path, matched, unmatched in self.released:
            missing = f"; {unmatched} listed labels match no structure" if unmatched else ""
            self._say(f"release {path}: {matched} structures in the splits again{missing}")

    def _listed_labels(self, paths: list[str]) -> tuple[np.ndarray, list[tuple[str, int, int]]]:
        """The structures that the label lists at ``paths`` name (sorted indices into the data)
        and, per list, (path, matched structures, listed labels matching none)."""
        found_all = np.zeros(0, dtype=np.int64)
        counts = []
        for path in paths:
            found, unmatched = self.data.find_labels(path)
            counts.append((path, len(found), unmatched))
            found_all = np.union1d(found_all, found)
        return found_all, counts

    # ------------------------------------------------------------------ the loop
    def fit(self, on_epoch_end: Callable[[Trainer], None] | None = None) -> TrainResult:
        """Train until ``max_epochs`` or early stopping, then write the final files.

        ``on_epoch_end(trainer)`` runs after each epoch's checkpoint (tests use it to stop a
        run as a kill would).
        """
        with _StopOnSignal() as stop:
            self._stop = stop
            return self._fit(on_epoch_end)

    def _fit(self, on_epoch_end) -> TrainResult:
        c = self.config
        invoked = time.perf_counter()
        while self.epoch < c.max_epochs and not self.stopped_early:
            start = time.perf_counter()
            train_loss = self._train_epoch()
            if train_loss is None:
                return self._interrupted(mid_epoch=True)
            val_loss, val_metrics = self.validate()
            train_loss, val_loss = self.ranks.from_main(train_loss, val_loss)  # alike everywhere
            if not (math.isfinite(train_loss) and math.isfinite(val_loss)):
                raise RuntimeError(
                    f"training diverged in epoch {self.epoch + 1} (loss {train_loss}, validation "
                    f"loss {val_loss}); lower optimizer.lr or set optimizer.clip_grad_norm"
                )
            self.epoch += 1
            improved = val_loss < self.best_loss
            if improved:
                self.best_loss, self.best_epoch, self.bad_epochs = val_loss, self.epoch, 0
                self.best_weights = {
                    k: v.detach().clone() for k, v in self.ema.model.state_dict().items()
                }
            else:
                self.bad_epochs += 1
            lr = self.optimizer.param_groups[0]["lr"]
            if isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                self.scheduler.step(val_loss)
            elif self.scheduler is not None:
                self.scheduler.step()
            patience = c.early_stopping_patience
            self.stopped_early = patience is not None and self.bad_epochs >= patience
            seconds = time.perf_counter() - start
            self.elapsed += seconds
            record = report.epoch_record(self.epoch, train_loss, val_loss, lr, seconds, val_metrics)
            record["stage"] = len(self.stages)
            self.history.append(record)
            if self.ranks.is_main:
                report.append_history(record, self.output / "history.jsonl")
            self._say(report.progress_line(record, c.max_epochs, improved))
            if self.stopped_early:
                self._say(f"early stopping: no lower validation loss in {patience} epochs")
            limit = c.time_limit_minutes
            out_of_time = limit is not None and time.perf_counter() - invoked > 60 * limit
            out_of_time = bool(self.ranks.from_main(out_of_time)[0])  # rank 0's clock decides
            stopping = self._stop_signal() is not None  # arrived during validation: epoch counts
            done = self.epoch >= c.max_epochs or self.stopped_early or out_of_time or stopping
            if done or self.epoch % c.checkpoint_every == 0:
                self.save_checkpoint()
            if on_epoch_end is not None:
                on_epoch_end(self)
            if stopping:
                return self._interrupted(mid_epoch=False)
            if out_of_time and self.epoch < c.max_epochs:
                self._say(
                    f"time limit of {limit} min reached after epoch {self.epoch}; "
                    "run the same config again to continue"
                )
                break
        return self._finish()

    def _train_epoch(self) -> float | None:
        """One pass over the training split; None when a stop signal arrived during it."""
        train, bs = self.split["train"], self.config.batch_size
        order = train[torch.randperm(len(train), generator=self.shuffle).numpy()]
        self.model.train()
        total = 0.0
        bar = _ProgressBar(self.log, self.epoch + 1, self.config.max_epochs, len(order))
        for start in range(0, len(order), bs):
            batch = order[start : start + bs]
            local = self.ranks.shard(batch)  # this rank's structures (all in one process)
            # a rank that a short last batch leaves without structures evaluates a stand-in
            graph = self.data.graph(local if len(local) else batch[:1], self.dtype, self.device)
            labels = self.data.labels(batch, self.dtype, self.device)
            out = self.model(
                graph, compute_forces=True, training=True, compute_couplings=self.train_couplings
            )
            out = self.ranks.gather_rows(out, own=len(local) > 0)  # the whole batch's outputs
            loss = self._loss(
                out["energies"], out["forces"], labels, out.get("nacs"), out.get("nac_outer")
            )
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.ranks.sum_gradients(self.model.parameters())
            if self.config.optimizer.clip_grad_norm is not None:
                torch.nn.utils.clip_grad_norm_(
                    self.model.parameters(), self.config.optimizer.clip_grad_norm
                )
            self.optimizer.step()
            self.ema.update(self.model)
            total += float(loss.detach()) * len(batch)
            bar.update(start + len(batch), total / (start + len(batch)))
            if self._stop_signal() is not None:
                bar.close()
                return None
        bar.close()
        return total / len(order)

    def _interrupted(self, mid_epoch: bool) -> TrainResult:
        """After a stop signal: the final files from the last checkpoint (``mid_epoch``: the
        state on disk, as the epoch in progress is dropped; else the state just saved)."""
        name = self._stop.signal
        what = "after an epoch"
        if mid_epoch:
            path = self.output / "checkpoint.pt"
            if not path.exists():
                raise KeyboardInterrupt(
                    f"{name} during epoch 1 of {self.output}: no epoch finished, nothing written"
                )
            what = f"during epoch {self.epoch + 1}, whose updates are dropped"
            self._restore(load_checkpoint(path))
        self._say(
            f"{name}: stopped {what}; the run is at its checkpoint (epoch {self.epoch}); run "
            "the same config again to continue"
        )
        result = self._finish()
        result.interrupted = name
        return result

    def _loss(self, energies, forces, labels, nacs=None, nac_outer=None) -> torch.Tensor:
        c = self.config.loss
        loss = multistate_loss(
            energies, forces, labels, c.energy, c.forces, self.state_weights, *c.deltas()
        )
        if self.train_couplings:  # the phase-free coupling error (loss.nacs > 0)
            if self.model.config.couplings == "outer":  # on D = d d^T, sign-free
                term = outer_coupling_loss(nac_outer, labels, c.delta_nacs())
            else:
                term = coupling_loss(nacs, labels, c.delta_nacs())
            loss = loss + c.nacs * term
        if c.gap > 0:  # the gap error (loss.gap > 0)
            loss = loss + c.gap * gap_loss(
                energies, labels, c.delta_gap(), c.gap_seam_weight, c.gap_seam_scale
            )
        return loss

    def validate(self) -> tuple[float, dict[str, Any]]:
        """Validation loss and metrics of the EMA weights."""
        indices = self.split["validation"]
        pred = self._predict(self.ema.model, indices)
        loss = self._loss(pred.energies, pred.forces, self.val_labels, pred.nacs, pred.nac_outer)
        loss = float(loss)
        return loss, metrics_of(self.data, indices, pred)

    def _predict(self, model: MultiStateMACE, indices) -> Predictions:
        """:func:`predict` of the structures ``indices``, each rank evaluating a shard."""
        local = predict(model, self.data, self.ranks.shard(indices), self.config.batch_size)
        return self.ranks.gather_predictions(local)

    def _stop_signal(self) -> str | None:
        """The name of a stop signal that arrived on any rank (all ranks agree), else None."""
        mine = self._stop.signal
        number = int(self.ranks.max(signal.Signals[mine].value if mine else 0))
        if number and mine is None:
            self._stop.signal = signal.Signals(number).name
        return self._stop.signal

    # ------------------------------------------------------------------ checkpoints
    def save_checkpoint(self) -> None:
        """Write ``checkpoint.pt`` (atomically) with everything a continuation needs (rank 0
        alone writes it)."""
        if not self.ranks.is_main:
            return
        cpu = lambda sd: {k: v.detach().cpu() for k, v in sd.items()}  # noqa: E731
        save_checkpoint(
            {
                "config": self.config.to_dict(),
                "model_config": self.model.config.to_dict(),
                "epoch": self.epoch,
                "best_loss": self.best_loss,
                "best_epoch": self.best_epoch,
                "bad_epochs": self.bad_epochs,
                "stopped_early": self.stopped_early,
                "elapsed_s": self.elapsed,
                "model": cpu(self.model.state_dict()),
                "ema": {
                    "weights": cpu(self.ema.model.state_dict()),
                    "n_updates": self.ema.n_updates,
                },
                "best_weights": None if self.best_weights is None else cpu(self.best_weights),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": None if self.scheduler is None else self.scheduler.state_dict(),
                "rng": rng_state(self.shuffle, self.device),
                "history": self.history,
                "stages": self.stages,
                "init_from": self.init_from,
            },
            self.output / "checkpoint.pt",
        )

    def _check_continuation(self, stored: dict[str, Any], new_stage: bool) -> dict[str, list]:
        """Refuse settings that a continuation (or, with ``new_stage``, a new stage) cannot
        change; return the changed stage settings ``{key: [before, now]}``."""
        now = _flatten(self.config.to_dict())
        # settings added to the config since the checkpoint was written take their defaults
        before = _flatten(TrainConfig.from_dict(stored).to_dict())
        allowed = STAGE_CHANGES if new_stage else RESUMABLE_CHANGES
        differ = sorted(k for k in now.keys() | before.keys() if now.get(k) != before.get(k))
        changed = [k for k in differ if k.split(".")[0] not in allowed]
        cosine = self.config.schedule.name == "cosine"
        if cosine and not new_stage and now["max_epochs"] != before["max_epochs"]:
            changed.append("max_epochs")  # the cosine schedule spans max_epochs
        if changed:
            details = ", ".join(f"{k}: {before.get(k)!r} -> {now.get(k)!r}" for k in changed)
            hint = (
                "a new stage may change only " + ", ".join(STAGE_CHANGES[len(RESUMABLE_CHANGES) :])
                if new_stage
                else "continue it with its config, go on with other optimisation settings "
                "(fusionff train --new-stage), or start afresh (fusionff train --restart)"
            )
            raise ValueError(
                f"{self.output / 'checkpoint.pt'} belongs to a run with other settings "
                f"({details}); {hint}"
            )
        # what a new stage changes: its optimisation settings and, when files were added or
        # removed, the data (a continuation on the next data snapshot with the same settings
        # is a stage too: fresh optimiser and schedule from the best weights)
        stage_keys = set(STAGE_CHANGES) - set(RESUMABLE_CHANGES)
        if new_stage:
            stage_keys.add("data")
        return {k: [before.get(k), now.get(k)] for k in differ if k.split(".")[0] in stage_keys}

    def _restore(self, state: dict[str, Any], new_stage: bool = False) -> None:
        self.model.load_state_dict(state["model"])
        self.ema.load_state_dict(state["ema"])
        if not new_stage:  # a new stage starts with a fresh optimizer and schedule
            self.optimizer.load_state_dict(state["optimizer"])
            if self.scheduler is not None:
                self.scheduler.load_state_dict(state["scheduler"])
        set_rng_state(state["rng"], self.shuffle, self.device)
        self.epoch, self.best_epoch = int(state["epoch"]), int(state["best_epoch"])
        self.bad_epochs, self.best_loss = int(state["bad_epochs"]), float(state["best_loss"])
        self.stopped_early, self.elapsed = bool(state["stopped_early"]), float(state["elapsed_s"])
        best = state["best_weights"]
        if best is not None:
            self.best_weights = {k: v.to(self.device) for k, v in best.items()}
        self.history = list(state["history"])
        self.stages = list(state.get("stages") or self.stages)
        self.init_from = state.get("init_from")
        if self.ranks.is_main:
            report.write_history(self.history, self.output / "history.jsonl")

    def _begin_stage(self, changes: dict[str, list]) -> None:
        """Start a new stage from the best EMA weights so far (see the module docstring)."""
        if self.best_weights is not None:
            self.model.load_state_dict(self.best_weights)
            self.ema.model.load_state_dict(self.best_weights)
        self.best_loss, self.bad_epochs, self.stopped_early = math.inf, 0, False
        self.best_weights = None
        # the fresh schedule spans this stage's epochs (a cosine ends at min_lr at max_epochs)
        self.scheduler = _scheduler(self.config, self.optimizer, first_epoch=self.epoch)
        stage = {"stage": len(self.stages) + 1, "after_epoch": self.epoch, "changes": changes}
        self.stages.append(stage)
        what = report.stage_changes_text(changes) or "none"
        self._say(
            f"stage {stage['stage']} from the best weights of epoch {self.best_epoch} (fresh "
            f"optimizer, schedule and best validation loss); changed settings: {what}"
        )

    # ------------------------------------------------------------------ the end
    def final_model(self) -> MultiStateMACE:
        """The EMA weights of the epoch with the lowest validation loss (the current EMA
        weights before any epoch)."""
        model = MultiStateMACE(config=self.model.config).to(self.device)
        model.load_state_dict(self.best_weights or self.ema.model.state_dict())
        return model.eval()

    def _finish(self) -> TrainResult:
        model = self.final_model()
        metrics = {}
        for key in ("train", "validation", "test"):  # train: over- or underfitting shows
            indices = self.split[key]
            if len(indices):
                metrics[key] = metrics_of(self.data, indices, self._predict(model, indices))
        test = metrics.get("test")
        sizes = {k: len(v) for k, v in self.split.items()}
        summary = {
            "epochs": self.epoch,
            "best_epoch": self.best_epoch,
            "stopped_early": self.stopped_early,
            "training_time_s": self.elapsed,
            "stages": self.stages,
            "mask_forces_above": self.config.mask_forces_above,
            "init_from": self.init_from,
        }
        metadata = {
            "training": {
                "data": self.files,
                "split": sizes,
                "test_metrics": test,
                "device": str(self.device),
                **summary,
            }
        }
        model_path = self.output / "model.fff"
        if self.ranks.is_main:
            save_model(model, model_path, metadata=metadata)
            report.write_json({**summary, "split": sizes, **metrics}, self.output / "metrics.json")
            if self.history:
                report.plot_learning_curve(self.history, self.output / "learning_curve.png")
            for key, title in (("validation", "validation split"), ("test", "test split")):
                if key in metrics:
                    table = format_metrics(metrics[key], title)
                    with open(self.output / "train.log", "a") as f:
                        f.write(table + "\n")
        self.ranks.barrier()  # every rank returns once the files are written
        return TrainResult(
            output=self.output,
            model_path=model_path,
            epochs=self.epoch,
            best_epoch=self.best_epoch,
            stopped_early=self.stopped_early,
            training_time_s=self.elapsed,
            validation_metrics=metrics["validation"],
            test_metrics=test,
            history=list(self.history),
        )

    def _say(self, line: str) -> None:
        if not self.ranks.is_main:
            return
        print(line, file=self.log, flush=True)
        with open(self.output / "train.log", "a") as f:
            f.write(line + "\n")


class _StopOnSignal:
    """Context manager: while active, SIGINT and SIGTERM only record their name in
    ``signal`` (the training loop checks it after each batch); a second one of them acts at
    once (KeyboardInterrupt). Outside the main thread it does nothing."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.signal: str | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum, frame) -> None:
        if self.signal is not None:
            raise KeyboardInterrupt(f"second {signal.Signals(signum).name}")
        self.signal = signal.Signals(signum).name

    def __enter__(self) -> _StopOnSignal:
        if threading.current_thread() is threading.main_thread():
            for s in self.SIGNALS:
                self._previous[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)


class _ProgressBar:
    """A one-line bar of the structures trained in the current epoch, with the running loss
    and the time left, redrawn at most once a second; only on a terminal (log files get the
    per-epoch lines alone). The per-epoch line with the validation errors replaces it."""

    def __init__(self, stream: TextIO, epoch: int, max_epochs: int, total: int):
        isatty = getattr(stream, "isatty", None)
        self.on = bool(isatty and isatty())
        self.stream, self.epoch, self.max_epochs, self.total = stream, epoch, max_epochs, total
        self.start = self.last = time.perf_counter()

    def update(self, done: int, loss: float) -> None:
        now = time.perf_counter()
        if not self.on or (now - self.last < 1.0 and done < self.total):
            return
        self.last = now
        filled = int(20 * done / max(self.total, 1))
        left = (now - self.start) * (self.total - done) / max(done, 1)
        self.stream.write(
            f"\repoch {self.epoch:>4}/{self.max_epochs} [{'#' * filled}{'.' * (20 - filled)}] "
            f"{done}/{self.total}  loss {loss:.3e}  {left:.0f} s left "
        )
        self.stream.flush()

    def close(self) -> None:
        if self.on:
            self.stream.write("\r\033[K")  # clear the line for the epoch's summary
            self.stream.flush()


def _optimizer(config: TrainConfig, model: MultiStateMACE) -> torch.optim.Optimizer:
    o = config.optimizer
    cls = torch.optim.AdamW if o.name == "adamw" else torch.optim.Adam
    return cls(model.parameters(), lr=o.lr, weight_decay=o.weight_decay)


def _scheduler(config: TrainConfig, optimizer: torch.optim.Optimizer, first_epoch: int = 0):
    """The configured schedule; a cosine spans the epochs after ``first_epoch`` (a stage's
    start) up to ``max_epochs``."""
    s = config.schedule
    if s.name == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="min", factor=s.factor, patience=s.patience, min_lr=s.min_lr
        )
    if s.name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(
            optimizer, T_max=max(config.max_epochs - first_epoch, 1), eta_min=s.min_lr
        )
    if s.name == "exponential":
        return torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=s.gamma)
    return None


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dict -> {"a.b.c": value}."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out |= _flatten(v, f"{prefix}{k}.")
        else:
            out[f"{prefix}{k}"] = v
    return out
