"""What the runner hooks into the engine: the stop criterion and the per-step recorder.

:class:`StopTracker` is the engine's ``stop`` callable: it remembers when each trajectory first
became active on the target state and halts it ``after_fs`` later (and, for Tully's models,
halts particles that leave the interaction region). :class:`BatchRecorder` is the engine's
``observer``: after every step it buffers frames (every ``write_every`` steps, the last frame
of a trajectory that just ended, and the frame where a committee's spread first exceeded the
run's limits) and hop events into the trajectory files, and the reason of such a flag.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from fusionff.dynamics.engine import total_energy
from fusionff.dynamics.h5md import TrajectoryFile
from fusionff.dynamics.integrator import kinetic_energy
from fusionff.dynamics.run_config import StopSpec
from fusionff.dynamics.spread import spread_reason
from fusionff.dynamics.state import Status, SurfaceHoppingState
from fusionff.units import BOHR_ANGSTROM

__all__ = ["StopTracker", "BatchRecorder"]

TIME_TOLERANCE_FS = 1e-6
"""Slack in comparing accumulated times with ``after_fs``."""


class StopTracker:
    """Stop criterion of one batch (see :class:`~fusionff.dynamics.run_config.StopSpec`).

    The engine calls it with the running subset of the batch; rows are matched to the batch by
    their (unique) random-stream seeds.

    Attributes:
        reached_at: (B,) fs, when each trajectory first became active on ``spec.state``
            (NaN: not yet); part of the checkpoint.
    """

    def __init__(self, spec: StopSpec | None, seeds: Tensor) -> None:
        self.spec = spec
        self.order = torch.argsort(seeds)
        self.sorted_seeds = seeds[self.order]
        self.reached_at = torch.full(
            (seeds.numel(),), float("nan"), dtype=torch.float64, device=seeds.device
        )

    def start(self, state: SurfaceHoppingState) -> None:
        """Note the trajectories that start on the target state."""
        if self.spec is not None and self.spec.state is not None:
            on_target = state.active == self.spec.state
            self.reached_at = torch.where(on_target, state.time, self.reached_at)

    def __call__(self, sub: SurfaceHoppingState) -> Tensor:
        spec = self.spec
        halt = torch.zeros(sub.batch_size, dtype=torch.bool, device=sub.device)
        if spec is None:
            return halt
        if spec.region_bohr is not None:
            x = sub.positions[:, 0, 0] / BOHR_ANGSTROM
            outward = sub.velocities[:, 0, 0] < 0
            halt |= (x > spec.region_bohr) | ((x < -spec.region_bohr) & outward)
        if spec.state is not None:
            rows = self.order[torch.searchsorted(self.sorted_seeds, sub.seeds)]
            reached = self.reached_at[rows]
            first = torch.isnan(reached) & (sub.active == spec.state)
            reached = torch.where(first, sub.time, reached)
            self.reached_at[rows] = reached
            halt |= sub.time - reached >= spec.after_fs - TIME_TOLERANCE_FS  # False for NaN
        return halt


class BatchRecorder:
    """Engine observer that buffers frames and hops of a batch into its trajectory files.

    A committee's spreads (``energy_spread``, ``force_spread`` of the state) go into every
    frame; the step where a trajectory is first flagged for its spread (``flag_time``) is
    always a frame, and the reason (:func:`~fusionff.dynamics.spread.spread_reason`) is given
    to its file.

    Args:
        files: one :class:`TrajectoryFile` per trajectory of the batch, in batch order.
        write_every: frame stride in steps (step 0 is always a frame).
    """

    def __init__(self, files: list[TrajectoryFile], write_every: int) -> None:
        self.files = files
        self.write_every = write_every
        self._advanced: Tensor | None = None

    def _remember(self, state: SurfaceHoppingState) -> None:
        self.active = state.active.clone()
        self.n_frustrated = state.n_frustrated.clone()
        self.status = state.status.clone()
        self.flag_time = None if state.flag_time is None else state.flag_time.clone()
        if self._advanced is None:
            self._advanced = torch.zeros((), dtype=torch.int64, device=state.device)

    def _newly_flagged(self, state: SurfaceHoppingState, candidates: Tensor) -> Tensor:
        """(B,) bool: ``candidates`` whose spread flag was raised since the last state."""
        if state.flag_time is None:
            return torch.zeros_like(candidates)
        before = self.flag_time
        if before is None:
            before = torch.full_like(state.flag_time, float("nan"))
        return candidates & torch.isnan(before) & ~torch.isnan(state.flag_time)

    def start(self, state: SurfaceHoppingState) -> None:
        """Write frame 0 of every trajectory (and the flags raised at the start)."""
        everyone = torch.ones(state.batch_size, dtype=torch.bool, device=state.device)
        self._write(state, everyone)
        self.flag_time = None
        self._flags(state, self._newly_flagged(state, everyone))
        self._remember(state)

    def resume(self, state: SurfaceHoppingState) -> None:
        """Continue from a checkpointed state (its frames are already in the files)."""
        self._remember(state)

    def take_count(self) -> int:
        """Trajectory-steps taken since the last call."""
        count = int(self._advanced)
        self._advanced.zero_()
        return count

    def __call__(self, state: SurfaceHoppingState) -> None:
        advanced = self.status == Status.RUNNING
        self._advanced += advanced.sum()
        hopped = advanced & (state.active != self.active)
        frustrated = advanced & (state.n_frustrated != self.n_frustrated)
        ended = advanced & (state.status != Status.RUNNING)
        flagged = self._newly_flagged(state, advanced)
        write = advanced & ((state.step % self.write_every == 0) | ended | flagged)
        events = hopped | frustrated
        any_events, any_write, any_flagged = torch.stack(
            [events.any(), write.any(), flagged.any()]
        ).tolist()
        if any_events:
            self._hops(state, hopped, frustrated)
        if any_write:
            self._write(state, write)
        if any_flagged:
            self._flags(state, flagged)
        self._remember(state)

    def finish(self, state: SurfaceHoppingState) -> None:
        """Write the last frame of trajectories whose last step is not yet a frame."""
        steps = state.step.tolist()
        missing = [f.last_step != s for f, s in zip(self.files, steps, strict=True)]
        if any(missing):
            self._write(state, torch.tensor(missing, device=state.device))

    def _hops(self, state: SurfaceHoppingState, hopped: Tensor, frustrated: Tensor) -> None:
        before, after = self.active.tolist(), state.active.tolist()
        steps, times = state.step.tolist(), state.time.tolist()
        two_states = state.n_states == 2
        for k in torch.nonzero(hopped | frustrated).squeeze(1).tolist():
            if bool(hopped[k]):
                self.files[k].add_hop(steps[k], times[k], before[k], after[k], False)
            else:  # the engine does not expose the target of a frustrated attempt
                target = 1 - before[k] if two_states else -1
                self.files[k].add_hop(steps[k], times[k], before[k], target, True)

    def _flags(self, state: SurfaceHoppingState, flagged: Tensor) -> None:
        """Give the files of ``flagged`` trajectories the reason and time of their flag."""
        for k in torch.nonzero(flagged).squeeze(1).tolist():
            active = int(state.active[k])
            time_fs = float(state.flag_time[k])
            reason = spread_reason(
                state.energy_spread[k].tolist(),
                float(state.force_spread[k, active]),
                active,
                time_fs,
            )
            self.files[k].set_flag(reason, time_fs)

    def _write(self, state: SurfaceHoppingState, mask: Tensor) -> None:
        rows = torch.nonzero(mask).squeeze(1)
        sub = state.select(rows)
        values = {
            "position": sub.positions,
            "velocity": sub.velocities,
            "active_state": sub.active,
            "energies": sub.energies,
            # |c|^2 as re^2 + im^2: torch's complex abs() may differ in the last bit with the
            # number of elements (vectorised vs scalar paths), which would make files depend
            # on the batch size
            "populations": sub.coefficients.real**2 + sub.coefficients.imag**2,
            "kinetic_energy": kinetic_energy(sub.velocities, sub.masses),
            "total_energy": total_energy(sub),
        }
        if sub.energy_spread is not None:
            values["energy_std"] = sub.energy_spread
            values["force_std"] = sub.force_spread
        arrays = {k: v.detach().cpu().numpy() for k, v in values.items()}
        steps, times = sub.step.tolist(), sub.time.tolist()
        for j, k in enumerate(rows.tolist()):
            self.files[k].add_frame(
                steps[j], times[j], **{name: np.copy(a[j]) for name, a in arrays.items()}
            )
