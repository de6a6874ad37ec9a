"""Tully's scattering experiment: transmission and reflection probabilities on each state.

A particle of mass 2000 starts at x = -10 bohr on the lower adiabatic state with momentum k
(atomic units) and runs until it leaves [-10, 10] bohr; it is counted as transmitted (x > 0) or
reflected, on the lower (0) or upper (1) adiabatic state.

Where the count is taken matters for model 3: its non-adiabatic coupling is not centred at
x = 0 but peaks at x = ln(A/B)/C = -5.7 bohr (where h12 = (h11 - h22)/2 = A), and two thirds of the
mixing angle's turn lie below x = -5 bohr. A trajectory reflected on the upper state crosses
that region on its way out and mostly hops down there; counted at |x| = 5 bohr (the default
bounding box of mudslide's command line), these trajectories are still on the upper state, so
R1 comes out near 0.2 at k = 10 instead of near 0.01 at |x| = 10. ``box_bohr`` sets the stop
region for such comparisons; the default, 10 bohr, is where the coupling has died out
(h12 = 1.2e-5 hartree, 2% of A).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from fusionff.dynamics.engine import SurfaceHoppingConfig, initial_state, run
from fusionff.dynamics.rng import trajectory_seeds
from fusionff.dynamics.state import Status, SurfaceHoppingState
from fusionff.dynamics.tully import TULLY_MASS_AU, Diabatic, TullyModel
from fusionff.units import AU_TIME_FS, AU_VELOCITY_A_PER_FS, BOHR_ANGSTROM

__all__ = ["tully_scattering", "TULLY_START_BOHR"]

TULLY_START_BOHR = -10.0
"""Start of the particle; by default trajectories stop once |x| exceeds 10 bohr."""

OUTCOMES = ("T0", "T1", "R0", "R1")


def _leaves_box(box_bohr: float) -> Callable[[SurfaceHoppingState], torch.Tensor]:
    """Stop criterion: x > box, or x < -box moving left (the start, x = -10, moving right, is
    not a stop even for a smaller box)."""

    def left(state: SurfaceHoppingState) -> torch.Tensor:
        x = state.positions[:, 0, 0] / BOHR_ANGSTROM
        vx = state.velocities[:, 0, 0]
        return (x > box_bohr) | ((x < -box_bohr) & (vx < 0))

    return left


def tully_scattering(
    model: str | Callable[[torch.Tensor], Diabatic] = "simple",
    k: float = 20.0,
    n_traj: int = 2000,
    algorithm: str = "fssh",
    seed: int = 0,
    batch_size: int | None = None,
    device: str | torch.device = "cpu",
    step_bohr: float = 0.04,
    n_substeps: int = 5,
    box_bohr: float = -TULLY_START_BOHR,
    **options,
) -> dict[str, float]:
    """Run Tully's scattering experiment with ``n_traj`` trajectories.

    Args:
        model: "simple", "dual" or "extended", or a one-dimensional diabatic model in atomic
            units (see :class:`~fusionff.dynamics.tully.TullyModel`).
        k: initial momentum, atomic units.
        n_traj: number of trajectories; trajectory i has seed ``trajectory_seeds(seed, i)``, so
            the result does not depend on ``batch_size`` or ``device`` type.
        algorithm: "fssh", "kappa-tsh" or "lz".
        batch_size: trajectories per batch (default: all at once).
        step_bohr: the time step is chosen so that the initial velocity covers this distance.
        n_substeps: electronic sub-steps per nuclear step.
        box_bohr: trajectories stop, and are counted, once |x| exceeds this (bohr, at most 10;
            see the module docstring for why model 3 needs 10).
        **options: further :class:`SurfaceHoppingConfig` fields (e.g. decoherence=True).

    Returns:
        dict with probabilities "T0", "T1", "R0", "R1" (transmitted/reflected on the lower/upper
        adiabatic state), their binomial standard errors "T0_err", ..., the fraction of
        trajectories that did not leave the interaction region in time ("unfinished") and of
        trajectories flagged with a failure ("failed").
    """
    if not 0 < box_bohr <= -TULLY_START_BOHR:
        raise ValueError(f"box_bohr must be in (0, {-TULLY_START_BOHR}], got {box_bohr}")
    structure = TullyModel(model)
    velocity_au = k / TULLY_MASS_AU
    dt_au = step_bohr / velocity_au
    config = SurfaceHoppingConfig(
        dt=dt_au * AU_TIME_FS, n_substeps=n_substeps, algorithm=algorithm, **options
    )
    # enough steps to cross the region several times at the initial speed
    n_steps = int(math.ceil(10 * 2 * abs(TULLY_START_BOHR) / step_bohr))
    device = torch.device(device)
    batch_size = n_traj if batch_size is None else batch_size
    counts = dict.fromkeys(OUTCOMES, 0)
    unfinished = failed = 0
    for first in range(0, n_traj, batch_size):
        index = torch.arange(first, min(first + batch_size, n_traj), device=device)
        b = index.numel()
        positions = torch.zeros(b, 1, 3, dtype=torch.float64, device=device)
        positions[:, 0, 0] = TULLY_START_BOHR * BOHR_ANGSTROM
        velocities = torch.zeros_like(positions)
        velocities[:, 0, 0] = velocity_au * AU_VELOCITY_A_PER_FS
        masses = torch.full((1,), structure.mass_amu, dtype=torch.float64, device=device)
        state = initial_state(
            structure,
            positions,
            velocities,
            masses,
            active=torch.zeros(b, dtype=torch.int64, device=device),
            seeds=trajectory_seeds(seed, index),
            config=config,
        )
        state = run(state, structure, config, n_steps, stop=_leaves_box(box_bohr))
        transmitted = state.positions[:, 0, 0] > 0
        upper = state.active == 1
        ok = (state.status == Status.STOPPED) | (state.status == Status.TIME_LIMIT)
        counts["T0"] += int((ok & transmitted & ~upper).sum())
        counts["T1"] += int((ok & transmitted & upper).sum())
        counts["R0"] += int((ok & ~transmitted & ~upper).sum())
        counts["R1"] += int((ok & ~transmitted & upper).sum())
        unfinished += int((state.status == Status.TIME_LIMIT).sum())
        failed += int((~ok).sum())
    result: dict[str, float] = {}
    for name in OUTCOMES:
        p = counts[name] / n_traj
        result[name] = p
        result[f"{name}_err"] = math.sqrt(p * (1.0 - p) / n_traj)
    result["unfinished"] = unfinished / n_traj
    result["failed"] = failed / n_traj
    return result
