"""The ensemble runner behind ``fusionff run md/<name>.yaml``.

Trajectories run in batches of ``batch_size``; each batch is one tensor program on the device
(:func:`fusionff.dynamics.engine.run` in chunks of ``checkpoint_every`` steps). Output
directory::

    config.yaml          the resolved run config
    topology.pdb         atoms of the molecule (one dummy atom X for Tully's models)
    traj_00000.h5md ...  one H5MD file per trajectory (:mod:`fusionff.dynamics.h5md`)
    checkpoint.pt        batch state after the last chunk (tensors and plain data only)
    summary.json         the ensemble summary, written when every batch is done
    hessian.npz          with ``wigner.hessian: compute``: the cached S0 Hessian
    optimized.xyz        with ``wigner.optimize``: the cached S0 minimum of the potential

After every chunk the buffered frames are appended to the files and ``checkpoint.pt`` is
replaced atomically; running the same config again continues from it (the files are cut back
to the frames the checkpoint counted), and the result is identical to an uninterrupted run.

The checkpoint also keeps the state of every finished batch at its last step (before the
trajectories still running were marked time-limited) and the batches' layout, so a finished
run can grow: ``fusionff run CONFIG --time-fs LONGER --n-traj MORE --extend``
(:func:`run_ensemble` ``extend=True``) continues each batch from there and runs the new
trajectories in new batches of ``batch_size``; the files and summary equal those of a run
made in one go with the same batches (tested bit for bit; a trajectory does not depend on its
batch except, with float32 models, at rounding level). Only the length and the number of
trajectories may change, and only upwards; runs made before 2026-12-05 cannot be extended.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import sys
import time
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import torch
import yaml
from ase import Atoms
from ase.io import read, write

from fusionff.atomic_files import write_atomically
from fusionff.device import resolve_device, set_threads
from fusionff.dynamics.engine import initial_state, run
from fusionff.dynamics.frame_buffer import FrameBuffer, write_packed
from fusionff.dynamics.h5md import TrajectoryFile, in_parallel
from fusionff.dynamics.initial_conditions import (
    optimize_structure,
    read_starts,
    reference_hessian,
    sample_molecules,
    tully_wave_packet,
)
from fusionff.dynamics.protocol import ElectronicStructure
from fusionff.dynamics.recorder import BatchRecorder, StopTracker
from fusionff.dynamics.rng import trajectory_seeds
from fusionff.dynamics.run_config import (
    OVERRIDES,
    RunConfig,
    describe_config,
    potential_identity,
)
from fusionff.dynamics.state import FAILED, Status, SurfaceHoppingState
from fusionff.dynamics.tully import TullyModel

if TYPE_CHECKING:
    from fusionff.executor import TaskPool

__all__ = ["run_ensemble", "build_structure", "STATUS_NAMES", "CHECKPOINT_FORMAT"]

CHECKPOINT_FORMAT = "fusionff-run-checkpoint"
SUMMARY_FORMAT = "fusionff-ensemble-summary"
STATUS_NAMES = {
    Status.STOPPED: "stopped",
    Status.TIME_LIMIT: "time-limit",
    Status.ENERGY_DRIFT: "energy-drift",
    Status.BLEW_UP: "blew-up",
    Status.COMMITTEE_SPREAD: "committee-spread",
    Status.STATE_ORDER: "state-order",
    Status.OUT_OF_DOMAIN: "out-of-domain",
    Status.POTENTIAL_FAILED: "potential-failed",
}
"""Status names in the summary; a run without stop criteria reports TIME_LIMIT as "ok"."""
RUN_FILES = re.compile(r"(traj_\d{5}\.h5md|checkpoint\.pt|summary\.json|topology\.pdb)$")


def build_structure(config: RunConfig, atoms: Atoms | None, device: torch.device):
    """The electronic structure named by ``config.potential``, from the registry of
    :mod:`fusionff.dynamics.structures` (which imports the backend only now)."""
    p = config.potential
    return p.entry.build(p.options, atoms, device)


def _potential_files(config: RunConfig) -> list[dict[str, str]]:
    """The files the potential's kind names (a model file, or a committee's list of them),
    each with the SHA-256 of its content: which models ran, exactly, whatever their paths
    hold later. Files that do not exist are left out."""
    p = config.potential
    value = None if p.entry.content_option is None else getattr(p.options, p.entry.content_option)
    paths = [] if value is None else [value] if isinstance(value, str) else list(value)
    return [
        {"path": str(q), "sha256": hashlib.sha256(Path(q).read_bytes()).hexdigest()}
        for q in paths
        if Path(q).exists()
    ]


def _potential_fingerprint(config: RunConfig, files: list[dict[str, str]] | None = None) -> str:
    """The potential's identity (its resolved spec less options that do not change results,
    such as MOPAC's ``workers``) plus the SHA-256 of the files its kind names (a model file,
    or a committee's list of them; one file gives the same fingerprint as before lists);
    ``files``: :func:`_potential_files` where the caller has it already."""
    p = config.potential
    digests = [f["sha256"] for f in (_potential_files(config) if files is None else files)]
    content = "" if not digests else digests[0] if len(digests) == 1 else digests
    spec = potential_identity(p.as_dict())
    return json.dumps({"potential": spec, "model_sha256": content}, sort_keys=True)


NOT_IN_IDENTITY = ("output", "threads")
"""Top-level keys that do not change results: a run resumes with other values."""


GROWABLE = ("n_steps", "n_traj", "batch_size")
"""Keys an extension (``extend``) may change: the length, and more trajectories (in new
batches of the new ``batch_size``)."""


def _config_digest(resolved: dict[str, Any], fingerprint: str, length: bool = True) -> str:
    """Identifies a run: the resolved config (the output directory, the thread count and the
    potential's runtime options such as MOPAC workers aside: none changes results) and the
    potential. ``length=False``: everything but :data:`GROWABLE` (what a run that extends
    another must share with it)."""
    skip = NOT_IN_IDENTITY if length else (*NOT_IN_IDENTITY, *GROWABLE)
    relevant = {k: v for k, v in resolved.items() if k not in skip}
    relevant["potential"] = potential_identity(resolved["potential"])
    if resolved["initial_conditions"].get("file") is None:  # digests of runs made before it
        relevant["initial_conditions"] = {
            k: v for k, v in resolved["initial_conditions"].items() if k != "file"
        }
    text = json.dumps(relevant, sort_keys=True) + fingerprint
    return hashlib.sha256(text.encode()).hexdigest()


def _state_to_plain(state: SurfaceHoppingState) -> dict[str, torch.Tensor | None]:
    return {k: None if v is None else v.cpu() for k, v in vars(state).items()}


RESUME_KEYS = ("state", "steps_done", "reached_at", "initial", "frames", "hops")
"""What a batch continues from (:func:`_resume_point`)."""


def _resume_point(state, steps_done: int, stop, initial: list, files: list) -> dict[str, Any]:
    """A batch at step ``steps_done``, as plain data on the CPU: its state, the stop
    criterion's times, the initial-condition records, and the frames and hop rows its files
    hold (cut back to these on continuing)."""
    return {
        "state": _state_to_plain(state),
        "steps_done": steps_done,
        "reached_at": stop.reached_at.cpu(),
        "initial": initial,
        "frames": [f.n_frames for f in files],
        "hops": [len(f.hops) for f in files],
    }


@dataclass
class _WorkerSetup:
    """What a worker needs, besides the batch index, to run any batch of an ensemble exactly
    as the client would (sent to each worker once).

    Attributes:
        atoms: the molecule of ``config.structure`` (None for Tully's models).
        fingerprint: the potential's identity (:func:`_potential_fingerprint`) in the client.
        reference, hessian: the Wigner reference geometry and its (3N, 3N) Hessian,
            eV/Angstrom^2, as the client computed or read them (None where not used).
        threads: PyTorch CPU threads of the client; each task runs with as many.
        layout: the batches, (first trajectory, count) each.
        structure: the electronic structure the caller gave, or None: each worker builds
            ``config.potential`` itself.
    """

    config: RunConfig
    atoms: Atoms | None
    fingerprint: str
    reference: Atoms | None
    hessian: Any
    threads: int
    structure: ElectronicStructure | None
    layout: list[tuple[int, int]]


class _Ensemble:
    """One invocation of a run: sets up, loops over batches, writes checkpoints and summary.
    With ``setup`` it is a Dask worker's copy that only computes batches (no files)."""

    def __init__(
        self, config: RunConfig, structure, log: TextIO | None, setup: _WorkerSetup | None = None
    ) -> None:
        self.config = config
        self.out = Path(config.output)
        self.device = resolve_device(config.device)
        self.log = log
        self.resolved = config.as_dict()
        self.potential_files = _potential_files(config) if setup is None else []
        """The potential's files and their SHA-256 as this invocation found them (client only)."""
        if setup is None:
            self.fingerprint = _potential_fingerprint(config, self.potential_files)
            self.atoms = None if config.structure is None else read(config.structure)
        else:
            self.fingerprint, self.atoms = setup.fingerprint, setup.atoms
        self.digest = _config_digest(self.resolved, self.fingerprint)
        self.base_digest = _config_digest(self.resolved, self.fingerprint, length=False)
        self.layout = default_layout(config.n_traj, config.batch_size, 0)
        """The batches, (first trajectory, count) each: batches of ``batch_size``, unless the
        run was extended with more trajectories (then read from the checkpoint)."""
        if setup is not None:
            self.layout = [tuple(b) for b in setup.layout]
        self.ends: dict[int, dict[str, Any]] = {}
        """Each finished batch's state at its last step (:meth:`simulate`), by batch: a longer
        run continues from it (``extend``)."""
        self.structure: ElectronicStructure = structure or build_structure(
            config, self.atoms, self.device
        )
        # the Wigner reference geometry and its Hessian, set on first use
        self.reference: Atoms | None = None if setup is None else setup.reference
        self.hessian = None if setup is None else setup.hessian
        self.steps_done_total = 0
        self.started = time.perf_counter()
        self.executor: str | None = None
        """Where the batches ran, when not here (for the summary)."""

    # files ----------------------------------------------------------------------------
    def topology(self) -> Atoms:
        return Atoms("X") if self.atoms is None else self.atoms

    def prepare(self, restart: bool, extend: bool = False) -> dict[str, Any] | None:
        """Create the output directory; return the checkpoint to continue from, if any (with
        ``extend``, a run of the same config at a shorter length, turned into the start of
        this one by :meth:`lengthen`)."""
        self.out.mkdir(parents=True, exist_ok=True)
        checkpoint = self.out / "checkpoint.pt"
        if restart:
            for path in self.out.iterdir():
                if RUN_FILES.match(path.name):
                    path.unlink()
        if not checkpoint.exists():
            write(self.out / "topology.pdb", self.topology())
            (self.out / "config.yaml").write_text(yaml.safe_dump(self.resolved, sort_keys=False))
            return None
        saved = torch.load(checkpoint, weights_only=True)
        if saved.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"{checkpoint}: not a fusionff run checkpoint")
        if saved["config_sha256"] != self.digest:
            if extend and saved.get("base_sha256") == self.base_digest:
                return self.lengthen(saved)
            hint = ""
            if saved.get("base_sha256") == self.base_digest:
                hint = (
                    "; it differs only in length or number of trajectories: --extend continues it"
                )
            elif extend:
                hint = (
                    "; --extend needs a run of the same config, shorter or with fewer "
                    "trajectories, made since 2026-12-05 (older checkpoints keep no final states)"
                    if "base_sha256" not in saved
                    else "; --extend changes only the length and adds trajectories (time_fs "
                    "or n_steps, n_traj, batch_size)"
                )
            raise ValueError(
                f"{checkpoint}: written by a run with another config or potential file (see "
                f"{self.out / 'config.yaml'}){hint}; use another output directory or --restart"
            )
        self.ends = dict(saved.get("ends", {}))
        if "layout" in saved:
            self.layout = [tuple(b) for b in saved["layout"]]
        return saved

    def lengthen(self, saved: dict[str, Any]) -> dict[str, Any]:
        """Turn the checkpoint ``saved`` of this run at a shorter length into this run's start:
        every batch continues from where it ended (a batch left half done, from its last
        checkpoint; batches never started, from their start). The config file is rewritten, the
        old summary removed and the new checkpoint written before any step."""
        c, checkpoint = self.config, self.out / "checkpoint.pt"
        old_steps = [end["n_steps"] for end in saved["ends"].values()]
        if saved.get("state") is not None:
            old_steps.append(saved["n_steps"])
        longest = max(old_steps, default=0)
        if longest > c.n_steps:
            raise ValueError(
                f"{checkpoint}: the run there has {longest} steps, more than the {c.n_steps} "
                "asked for; --extend only makes a run longer"
            )
        layout = [tuple(b) for b in saved["layout"]]
        n_old = sum(count for _, count in layout)
        if n_old > c.n_traj:
            raise ValueError(
                f"{checkpoint}: the run there has {n_old} trajectories, more than the "
                f"{c.n_traj} asked for; --extend only adds trajectories"
            )
        self.layout = layout + default_layout(c.n_traj - n_old, c.batch_size, n_old)
        self.ends = dict(saved["ends"])
        if saved.get("state") is not None:  # the batch in progress continues as it was
            self.ends[saved["batch"]] = {key: saved[key] for key in RESUME_KEYS} | {
                "n_steps": saved["n_steps"],
                "finished": False,
            }
        (self.out / "summary.json").unlink(missing_ok=True)
        (self.out / "config.yaml").write_text(yaml.safe_dump(self.resolved, sort_keys=False))
        first = 0  # batches finished at this length already (only trajectories were added)
        while first < len(layout) and self._finished_here(first):
            first += 1
        start = {"batch": first, "complete": False, "records": saved["records"], "state": None}
        self.save_checkpoint(start)
        if self.log is not None:
            print(
                f"extending {self.out} from {longest} to {c.n_steps} steps "
                f"({c.n_steps * c.dynamics.dt:g} fs) and from {n_old} to {c.n_traj} "
                "trajectories",
                file=self.log,
                flush=True,
            )
        return start

    def save_checkpoint(self, payload: dict[str, Any]) -> None:
        payload = {
            "format": CHECKPOINT_FORMAT,
            "version": 1,
            "config_sha256": self.digest,
            "base_sha256": self.base_digest,
            "n_steps": self.config.n_steps,
            "ends": self.ends,
            "layout": self.layout,
            **payload,
        }
        write_atomically(self.out / "checkpoint.pt", lambda p: torch.save(payload, p))

    # initial conditions ----------------------------------------------------------------
    def initial_conditions(self, indices: list[int], seeds: torch.Tensor):
        ic = self.config.initial_conditions
        if not self.config.potential.entry.molecular:
            return tully_wave_packet(ic, self.structure, seeds.numel(), self.device)
        if ic.file is not None:
            return read_starts(ic, self.atoms, self.structure, indices, self.device)
        self.wigner_reference()
        return sample_molecules(
            ic, self.reference, self.hessian, self.structure, seeds, self.device
        )

    def wigner_reference(self) -> None:
        """Set the Wigner reference geometry (optimised if asked) and its Hessian, unless
        they are set, where the run samples Wigner starts; computed or read once."""
        ic = self.config.initial_conditions
        if not self.config.potential.entry.molecular or ic.file is not None:
            return
        if self.hessian is None:
            self.reference = self.atoms
            if ic.wigner.optimize:
                self.reference = self.optimized_structure()
            self.hessian = reference_hessian(
                ic.wigner,
                self.reference,
                self.structure,
                self.device,
                self.out / "hessian.npz",
                source=self.fingerprint,
            )

    def optimized_structure(self) -> Atoms:
        path = self.out / "optimized.xyz"
        opt = optimize_structure(
            self.config.initial_conditions.wigner,
            self.atoms,
            self.structure,
            self.device,
            path,
            source=self.fingerprint,
        )
        if self.log is not None:
            how = "read from" if opt.cached else f"{opt.steps} BFGS steps, written to"
            print(
                f"S0 optimisation: energy lowered by {opt.start_energy - opt.energy:.4f} eV, "
                f"max force {opt.max_force:.4f} eV/Angstrom ({how} {path})",
                file=self.log,
                flush=True,
            )
        return opt.atoms

    # one batch -------------------------------------------------------------------------
    @property
    def n_batches(self) -> int:
        return len(self.layout)

    def batch_indices(self, batch: int) -> list[int]:
        first, count = self.layout[batch]
        return list(range(first, first + count))

    def trajectory_file(self, index: int) -> TrajectoryFile:
        topology = self.topology()
        return TrajectoryFile(
            self.out / _trajectory_name(index),
            topology.numbers,
            topology.get_masses() if self.atoms is not None else [TullyModel.mass_amu],
            self.structure.n_states,
        )

    def run_batch(self, batch: int, saved: dict[str, Any] | None, records: list) -> None:
        """Run batch ``batch`` here (from its start, or from the checkpoint ``saved``) into its
        files, with a checkpoint after every chunk; append its records."""
        files = [self.trajectory_file(i) for i in self.batch_indices(batch)]

        def after_chunk(state, steps_done, stop, initial, recorder, seconds) -> None:
            in_parallel([f.flush for f in files])
            self.save_checkpoint(
                {"batch": batch, "complete": False, "records": records}
                | _resume_point(state, steps_done, stop, initial, files)
            )
            self.progress(batch, self.n_batches, steps_done, state, recorder.take_count(), seconds)

        new, self.ends[batch] = self.simulate(batch, files, saved, after_chunk)
        _replace_records(records, new)
        self.batch_done(batch, records)

    def _finished_here(self, batch: int) -> bool:
        """Whether batch ``batch`` ended at this run's length (nothing to continue)."""
        end = self.ends.get(batch)
        return (
            end is not None and end.get("finished", True) and end["n_steps"] == self.config.n_steps
        )

    def continuation(self, batch: int) -> dict[str, Any] | None:
        """What a worker needs to continue batch ``batch`` from its end in a shorter run
        (None: the batch has none and starts afresh): the end, and for each of its files the
        frames and hops up to it (the files are cut back to them here, as on resuming)."""
        end = self.ends.get(batch)
        if end is None:
            return None
        prefixes = []
        for i, n_frames, n_hops in zip(
            self.batch_indices(batch), end["frames"], end["hops"], strict=True
        ):
            f = self.trajectory_file(i)
            f.resume(n_frames, n_hops)
            prefixes.append(
                {
                    "n_frames": n_frames,
                    "hops": f.hops,
                    "last_step": f.last_step,
                    "flag": f.flag,
                    "flag_time_fs": f.flag_time_fs,
                }
            )
        return {"end": end, "files": prefixes}

    def batch_done(self, batch: int, records: list) -> None:
        """The checkpoint after batch ``batch``, whose files are complete."""
        self.save_checkpoint(
            {
                "batch": batch + 1,
                "complete": batch + 1 == self.n_batches,
                "records": records,
                "state": None,
            }
        )

    def simulate(self, batch: int, files: list, saved: dict[str, Any] | None, after_chunk):
        """Run batch ``batch`` into ``files`` (:class:`TrajectoryFile`, or :class:`FrameBuffer`
        on a worker), from its start or from ``saved`` (a checkpoint's state of the batch, or
        its end in a shorter run), calling ``after_chunk(state, steps_done, stop, initial,
        recorder, seconds)`` after every chunk of ``checkpoint_every`` steps; returns its
        records and its end (the state at its last step, before trajectories still running
        are marked time-limited; plain data on the CPU, from which a longer run continues)."""
        c = self.config
        indices = self.batch_indices(batch)
        seeds = trajectory_seeds(c.seed, torch.tensor(indices, device=self.device))
        stop = StopTracker(c.stop, seeds)
        if saved is None:
            start = self.initial_conditions(indices, seeds)
            state = initial_state(
                self.structure,
                start.positions,
                start.velocities,
                start.masses,
                start.active,
                seeds,
                c.dynamics,
            )
            initial = [
                {"initial_state": int(a), "initial_gap_ev": float(g), "samples_drawn": n}
                for a, g, n in zip(
                    start.active.tolist(), start.gaps.tolist(), start.attempts, strict=True
                )
            ]
            in_parallel(
                [
                    partial(f.create, {"trajectory": i, "seed": seed, **info})
                    for i, f, seed, info in zip(
                        indices, files, seeds.tolist(), initial, strict=True
                    )
                ]
            )
            steps_done = 0
            stop.start(state)
            recorder = BatchRecorder(files, c.write_every)
            recorder.start(state)
        else:
            state = SurfaceHoppingState(
                **{k: None if v is None else v.to(self.device) for k, v in saved["state"].items()}
            )
            initial, steps_done = saved["initial"], saved["steps_done"]
            stop.reached_at = saved["reached_at"].to(self.device)
            for f, n_frames, n_hops in zip(files, saved["frames"], saved["hops"], strict=True):
                f.resume(n_frames, n_hops)
            recorder = BatchRecorder(files, c.write_every)
            recorder.resume(state)
        while steps_done < c.n_steps and bool(state.running.any()):
            chunk = min(c.checkpoint_every, c.n_steps - steps_done)
            tick = time.perf_counter()
            state = run(
                state, self.structure, c.dynamics, chunk, stop=stop, observer=recorder, final=False
            )
            steps_done += chunk
            after_chunk(state, steps_done, stop, initial, recorder, time.perf_counter() - tick)
        end = _resume_point(state, steps_done, stop, initial, files) | {"n_steps": c.n_steps}
        state = run(state, self.structure, c.dynamics, 0, final=True)
        recorder.finish(state)
        records = [
            self.record(i, f, state, k, initial[k])
            for k, (i, f) in enumerate(zip(indices, files, strict=True))
        ]
        final = [
            {
                "status": r["status"],
                "final_state": r["final_state"],
                "final_time": r["final_time_fs"],
            }
            for r in records
        ]
        in_parallel([partial(f.flush, x) for f, x in zip(files, final, strict=True)])
        return records, end

    def write_batch(self, result: _BatchResult, records: list) -> None:
        """Write a batch that a worker ran into its files, then the checkpoint after it."""
        indices = self.batch_indices(result.batch)
        for i, packed in zip(indices, result.trajectories, strict=True):
            write_packed(packed, self.trajectory_file(i))
        _replace_records(records, result.records)
        self.ends[result.batch] = result.end
        self.steps_done_total += result.trajectory_steps
        self.batch_done(result.batch, records)
        if self.log is not None:
            print(
                f"batch {result.batch + 1}/{self.n_batches} written: {len(indices)} trajectories, "
                f"{result.seconds:.1f} s on {result.worker} "
                f"({result.trajectory_steps / max(result.seconds, 1e-9):.0f} trajectory-steps/s)",
                file=self.log,
                flush=True,
            )

    def record(self, index: int, f: TrajectoryFile, state, k: int, initial: dict) -> dict:
        status = Status(int(state.status[k]))
        c = state.coefficients[k]  # |c|^2 as in the files (see BatchRecorder)
        name = STATUS_NAMES[status]
        if status == Status.TIME_LIMIT and self.config.stop is None:
            name = "ok"
        hops = [
            {"step": s, "time_fs": t, "from": a, "to": b}
            for s, t, a, b, frustrated in f.hops
            if not frustrated
        ]
        frustrated = [
            {"step": s, "time_fs": t, "from": a, "to": b}
            for s, t, a, b, frustrated in f.hops
            if frustrated
        ]
        return {
            "index": index,
            "file": f.path.name,
            "seed": int(state.seeds[k]),
            **initial,
            "final_state": int(state.active[k]),
            "status": name,
            "final_time_fs": float(state.time[k]),
            "n_steps": int(state.step[k]),
            "n_frames": f.n_frames,
            "n_hops": int(state.n_hops[k]),
            "n_frustrated": int(state.n_frustrated[k]),
            "flag": f.flag,
            "flag_time_fs": f.flag_time_fs,
            "hops": hops,
            "frustrated_hops": frustrated,
            "final_populations": (c.real**2 + c.imag**2).tolist(),
        }

    def progress(self, batch, n_batches, steps_done, state, advanced, seconds) -> None:
        self.steps_done_total += advanced
        if self.log is None:
            return
        status = state.status
        failed = int(sum((status == s).sum() for s in FAILED))
        running = int(state.running.sum())
        finished = state.batch_size - running - failed
        rate = advanced / max(seconds, 1e-9)
        print(
            f"batch {batch + 1}/{n_batches}  step {steps_done}/{self.config.n_steps}  "
            f"running {running}  finished {finished}  failed {failed}  "
            f"{rate:.0f} trajectory-steps/s",
            file=self.log,
            flush=True,
        )

    def summary(self, records: list[dict]) -> dict[str, Any]:
        counts: dict[str, int] = {}
        for r in records:
            counts[r["status"]] = counts.get(r["status"], 0) + 1
        dyn = self.config.dynamics
        notes = [
            "status 'ok': ran to the time limit without stop criteria; 'time-limit': the stop "
            "criterion was not met in time; 'stopped': it was met",
        ]
        if dyn.algorithm == "kappa-tsh":
            notes.append(
                f"kappa-TSH couplings are used only where the gap is below "
                f"kappa_gap_threshold = {dyn.kappa_gap_threshold} eV (zero above it)"
            )
        wall = time.perf_counter() - self.started
        return {
            "format": SUMMARY_FORMAT,
            "version": 1,
            "config": self.resolved,
            "potential_files": self.potential_files,
            "notes": notes,
            "units": {"time": "fs", "energy": "eV", "length": "Angstrom"},
            "n_traj": len(records),
            "status_counts": dict(sorted(counts.items())),
            "trajectories": sorted(records, key=lambda r: r["index"]),
            "timing": {
                "note": "this invocation only (a resumed run counts from its restart)",
                "wall_s": wall,
                "trajectory_steps": self.steps_done_total,
                "trajectory_steps_per_s": self.steps_done_total / max(wall, 1e-9),
                "device": str(self.device),
                "cpu_threads": torch.get_num_threads(),
            }
            | ({} if self.executor is None else {"executor": self.executor}),
        }


def _trajectory_name(index: int) -> str:
    return f"traj_{index:05d}.h5md"


def default_layout(n_traj: int, batch_size: int, first: int) -> list[tuple[int, int]]:
    """Batches of ``batch_size`` (the last one smaller) over trajectories ``first`` to
    ``first + n_traj - 1``: (first trajectory, count) each."""
    return [
        (first + start, min(batch_size, n_traj - start)) for start in range(0, n_traj, batch_size)
    ]


def _replace_records(records: list[dict], new: list[dict]) -> None:
    """Put a batch's records ``new`` into ``records``, replacing those of the same
    trajectories (an extended batch's records of the shorter run)."""
    indices = {r["index"] for r in new}
    records[:] = [r for r in records if r["index"] not in indices] + new


@dataclass
class _BatchResult:
    """One batch as a worker ran it: its trajectories (:meth:`FrameBuffer.packed`, in batch
    order), records, end (:meth:`_Ensemble.simulate`), trajectory-steps taken, seconds and
    where (host:pid)."""

    batch: int
    trajectories: list[dict[str, Any]]
    records: list[dict[str, Any]]
    end: dict[str, Any]
    trajectory_steps: int
    seconds: float
    worker: str


_WORKER_STRUCTURES: dict[tuple[str, str], ElectronicStructure] = {}
"""A worker's electronic structure, built once and kept for the next batches."""


def _worker_structure(setup: _WorkerSetup) -> ElectronicStructure:
    device = resolve_device(setup.config.device)
    key = (setup.fingerprint, str(device))
    if key not in _WORKER_STRUCTURES:
        if _potential_fingerprint(setup.config) != setup.fingerprint:
            raise ValueError(
                f"Dask worker on {socket.gethostname()}: the potential's files "
                f"({setup.config.potential.as_dict()}) are missing there or differ from the "
                "client's; workers need them at the same paths (a shared file system)"
            )
        _WORKER_STRUCTURES.clear()
        _WORKER_STRUCTURES[key] = build_structure(setup.config, setup.atoms, device)
    return _WORKER_STRUCTURES[key]


def compute_batch(
    setup: _WorkerSetup, batch: int, resume: dict[str, Any] | None = None
) -> _BatchResult:
    """Run batch ``batch`` of an ensemble in memory and return it (a Dask task); with
    ``resume`` (:meth:`_Ensemble.continuation`), continue it from the end it had in a shorter
    run: the result then holds only the frames and hops after that end.

    Pure: it writes no file, and its result depends only on its arguments (the batch's
    trajectories have their own random streams, and it runs with the client's thread
    count), so a task re-run after a worker died, or run on any worker, returns the same
    frames, bit for bit, as the client would compute for that batch (for potentials that
    keep no memory between evaluations: models, Tully's). Frames in eV, Angstrom, fs.
    """
    tick = time.perf_counter()
    set_threads(setup.threads)
    structure = setup.structure or _worker_structure(setup)
    ensemble = _Ensemble(setup.config, structure, None, setup)
    names = [Path(_trajectory_name(i)) for i in ensemble.batch_indices(batch)]
    if resume is None:
        buffers = [FrameBuffer(name) for name in names]
    else:
        buffers = [
            FrameBuffer(name, prefix) for name, prefix in zip(names, resume["files"], strict=True)
        ]
    steps = []

    def after_chunk(state, steps_done, stop, initial, recorder, seconds) -> None:
        steps.append(recorder.take_count())

    saved = None if resume is None else resume["end"]
    records, end = ensemble.simulate(batch, buffers, saved, after_chunk)
    return _BatchResult(
        batch,
        [b.packed() for b in buffers],
        records,
        end,
        sum(steps),
        time.perf_counter() - tick,
        f"{socket.gethostname()}:{os.getpid()}",
    )


def _run_on_pool(ensemble: _Ensemble, pool: TaskPool, batches: range, records: list, structure):
    """Run ``batches`` as tasks of ``pool`` and write each (files, then checkpoint) here in
    batch order, so the checkpoint always counts a complete prefix of batches, as a run
    without a pool leaves it between batches; at most two tasks per slot in flight.

    A task that fails (raises, or its workers died too often) stops the run with its error
    once the batches before it are written. SIGTERM raises ``SystemExit`` here (a batch
    being written is completed first); on it, as on any error, the pool is stopped before the
    exception propagates."""
    from fusionff.executor import StopOnSigterm

    config = ensemble.config
    setup = _WorkerSetup(
        config,
        ensemble.atoms,
        ensemble.fingerprint,
        ensemble.reference,
        ensemble.hessian,
        torch.get_num_threads(),
        structure,
        ensemble.layout,
    )
    shared = pool.share(setup)
    todo = iter(batches)
    running: dict[Future, int] = {}
    finished: dict[int, _BatchResult] = {}
    failed: dict[int, BaseException] = {}
    next_write = batches.start

    def fill() -> None:
        slots = pool.slots()
        while not failed and len(running) < 2 * slots and len(finished) < 4 * slots:
            batch = next(todo, None)
            if batch is None:
                return
            resume = ensemble.continuation(batch)
            running[pool.submit(compute_batch, shared, batch, resume)] = batch

    with StopOnSigterm() as stop:
        try:
            fill()
            while next_write < batches.stop:
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    batch = running.pop(future)
                    if future.exception() is None:
                        finished[batch] = future.result()
                    else:
                        failed[batch] = future.exception()
                while next_write in finished:
                    with stop.deferred():
                        ensemble.write_batch(finished.pop(next_write), records)
                        next_write += 1
                if failed and not any(b < min(failed) for b in running.values()):
                    raise failed[min(failed)]
                fill()
        except BaseException as exc:
            stop.hold()  # a second SIGTERM must not interrupt the cleanup
            pool.stop()
            if ensemble.log is not None and isinstance(exc, (KeyboardInterrupt, SystemExit)):
                print(
                    f"stopped: {next_write - batches.start} batch(es) written; run the same "
                    "command again to continue",
                    file=ensemble.log,
                    flush=True,
                )
            raise


def _resume_note(saved: dict[str, Any], ensemble: _Ensemble, checkpoint: Path) -> str:
    """What a resumed run continues from: batch (from its start, from its end in a shorter
    run, or at a step), time, trajectories done."""
    c = ensemble.config
    batch, n_batches = saved["batch"], ensemble.n_batches
    done = sum(count for _, count in ensemble.layout[:batch])
    end = ensemble.ends.get(batch)
    if saved.get("state") is not None:
        step = saved["steps_done"]
        where = (
            f"batch {batch + 1}/{n_batches} at step {step}/{c.n_steps} "
            f"({step * c.dynamics.dt:g} fs)"
        )
    elif end is not None and end["n_steps"] < c.n_steps:
        where = (
            f"batch {batch + 1}/{n_batches} from its end in a shorter run (step "
            f"{end['steps_done']}/{c.n_steps})"
        )
    else:
        where = f"batch {batch + 1}/{n_batches} from its start"
    return (
        f"resuming from {checkpoint}: {where}; {done} of {c.n_traj} trajectories done "
        "(--restart starts afresh)"
    )


def run_ensemble(
    config: RunConfig,
    *,
    restart: bool = False,
    extend: bool = False,
    structure: ElectronicStructure | None = None,
    log: TextIO | None = None,
    pool: TaskPool | None = None,
) -> dict[str, Any]:
    """Run (or continue) the ensemble of ``config``; returns the summary (also in summary.json).

    Reproducibility (CPU, measured): the same config on the same machine with the same thread
    count gives bit-identical files, whether run in one go or resumed from a checkpoint (the
    potential evaluates under PyTorch's deterministic algorithms: :mod:`fusionff.potential`).
    Other thread counts, machines or GPUs are not promised to match bit for bit, and a
    trajectory's float32 forces depend on the batch it runs in at rounding level (README).

    Args:
        restart: delete the output directory's run files first instead of continuing.
        extend: the output directory holds this run at a shorter length (``n_steps``; any
            other key must be the same): continue every trajectory still running at its end
            to the length of ``config`` (the files and summary then equal those of a run made
            at this length in one go). A finished trajectory stays as it was.
        structure: an electronic structure to use instead of ``config.potential`` (tests, or a
            potential built in Python); it must be the same on a resumed run.
        log: where progress lines go (None: silent; ``fusionff run`` uses stderr).
        pool: run the batches as tasks there (e.g. a :class:`fusionff.executor.DaskPool`;
            ``fusionff run --dask``), one batch per task, and write their files here in
            batch order. Workers run with this process's thread count and build the
            potential from ``config.potential`` (its files at the same paths), or receive
            ``structure`` (then picklable). The files equal those of a run without a pool.
            A batch that a run without a pool left half done is finished here first. The
            pool is stopped on an error or signal, and left open otherwise.

    ``config.threads``, when set, is applied with :func:`fusionff.device.set_threads` before
    any work (when None, the process keeps its PyTorch thread count; ``fusionff run`` sets the
    default of :func:`fusionff.device.default_threads`).
    """
    if config.threads is not None:
        set_threads(config.threads)
    ensemble = _Ensemble(config, structure, log)
    saved = ensemble.prepare(restart, extend)
    summary_path = ensemble.out / "summary.json"
    if saved is not None and saved["complete"] and summary_path.exists():
        if log is not None:
            print(f"{summary_path}: run already complete", file=log)
        return json.loads(summary_path.read_text())
    if log is not None:
        print(
            f"{config.output}: device {ensemble.device}, {torch.get_num_threads()} CPU thread(s)",
            file=log,
            flush=True,
        )
        if saved is not None:
            note = _resume_note(saved, ensemble, ensemble.out / "checkpoint.pt")
            print(note, file=log, flush=True)
    records = [] if saved is None else list(saved["records"])
    first = 0 if saved is None else saved["batch"]
    n_batches = ensemble.n_batches
    half_done = saved if saved is not None and saved.get("state") is not None else None
    if pool is not None and half_done is not None:
        ensemble.run_batch(first, half_done, records)  # a batch a run without a pool left so
        first, half_done = first + 1, None
    if pool is None:
        for batch in range(first, n_batches):
            # from a checkpoint in the batch, or from its end in a shorter run, or afresh
            resume = half_done if batch == first and half_done else ensemble.ends.get(batch)
            ensemble.run_batch(batch, resume, records)
    elif first < n_batches:
        ensemble.wigner_reference()
        ensemble.executor = pool.description
        if log is not None:
            print(f"batches {first + 1}..{n_batches} on {pool.description}", file=log, flush=True)
        _run_on_pool(ensemble, pool, range(first, n_batches), records, structure)
    summary = ensemble.summary(records)
    write_atomically(summary_path, lambda p: p.write_text(json.dumps(summary, indent=1)))
    if log is not None:
        counts = ", ".join(f"{k} {v}" for k, v in summary["status_counts"].items())
        print(f"{summary_path}: {summary['n_traj']} trajectories ({counts})", file=log)
    return summary


def run_main(args) -> int:
    """``fusionff run CONFIG.yaml [--restart] [--n-traj N ...] [--show-config]``."""
    overrides = {key: getattr(args, key, None) for key in OVERRIDES}
    extend = getattr(args, "extend", False)
    config = RunConfig.from_yaml(args.config, overrides)
    if getattr(args, "show_config", False):
        print("\n".join(describe_config(config)))
        return 0
    set_threads(config.threads)  # None: the default, before any work
    address = getattr(args, "dask", None)
    if not address:
        run_ensemble(config, restart=args.restart, extend=extend, log=sys.stderr)
        return 0
    from fusionff.executor import DaskPool

    with DaskPool(address) as pool:
        run_ensemble(config, restart=args.restart, extend=extend, log=sys.stderr, pool=pool)
    return 0
