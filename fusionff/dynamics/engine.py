"""The batched surface-hopping engine: initial state, one step, a run.

The settings are a :class:`~fusionff.dynamics.sh_config.SurfaceHoppingConfig` (re-exported
here, where callers have always imported it from).

One step of every running trajectory (all in eV, Angstrom, fs, amu):
1. velocity Verlet on the active state (one evaluation of the electronic structure);
2. gap histories, then the hopping algorithm (:mod:`fusionff.dynamics.algorithms`) propagates
   the amplitudes and returns hop probabilities;
3. one uniform number from the trajectory's own stream (seed, step) picks the hop; the
   momentum is adjusted to conserve the total energy, or the hop is frustrated;
4. optional energy-based decoherence;
5. status: no finite energies at a finite geometry -> POTENTIAL_FAILED, other non-finite
   values -> BLEW_UP, total-energy drift -> ENERGY_DRIFT, energies out
   of order beyond ``max_state_inversion`` -> STATE_ORDER, outside ``domain`` ->
   OUT_OF_DOMAIN; with
   ``config.committee`` (:mod:`fusionff.dynamics.spread`), a committee spread above its
   limits sets ``flag_time`` (and with ``action: stop`` -> COMMITTEE_SPREAD); then the stop
   criterion -> STOPPED. Trajectories that are not running are left untouched (masked out),
   and each trajectory's arithmetic involves only its own row, so its result does not depend
   on the batch it runs in.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from fusionff.dynamics.algorithms import get_algorithm
from fusionff.dynamics.couplings import gap_rates, nac_couplings, state_gaps
from fusionff.dynamics.decoherence import energy_based_decoherence
from fusionff.dynamics.domain import outside_domain
from fusionff.dynamics.hopping import adjust_momentum, choose_targets, rescale_direction
from fusionff.dynamics.integrator import active_forces, drift, half_kick, kinetic_energy
from fusionff.dynamics.protocol import ElectronicStructure
from fusionff.dynamics.rng import uniform
from fusionff.dynamics.sh_config import SurfaceHoppingConfig
from fusionff.dynamics.spread import spread_exceeded
from fusionff.dynamics.state import Status, SurfaceHoppingState

__all__ = ["SurfaceHoppingConfig", "initial_state", "total_energy", "step", "run"]

StopCriterion = Callable[[SurfaceHoppingState], Tensor]
"""Maps a state to a (B,) bool tensor: True where the trajectory should stop."""


def total_energy(state: SurfaceHoppingState) -> Tensor:
    """(B,) eV: kinetic energy plus the energy of the active state."""
    rows = torch.arange(state.batch_size, device=state.device)
    return kinetic_energy(state.velocities, state.masses) + state.energies[rows, state.active]


def initial_state(
    structure: ElectronicStructure,
    positions: Tensor,
    velocities: Tensor,
    masses: Tensor,
    active: Tensor,
    seeds: Tensor,
    config: SurfaceHoppingConfig,
    coefficients: Tensor | None = None,
) -> SurfaceHoppingState:
    """Evaluate the structure at the start and assemble the batch.

    Args:
        positions, velocities: (B, N, 3) Angstrom, Angstrom/fs (float64).
        masses: (N,) or (B, N) amu.
        active: (B,) int64 initial active state.
        seeds: (B,) int64 random-stream seeds.
        coefficients: (B, S) complex; by default the active state with amplitude 1.

    ``config.committee`` is checked at the start too: a start above its limits is flagged at
    its time 0 (with ``action: stop`` it never moves).
    """
    algorithm = get_algorithm(config.algorithm)
    if algorithm.needs_nacs and not structure.provides_nacs:
        raise ValueError(
            f"algorithm {config.algorithm!r} needs NACs and the electronic structure provides "
            "none; use 'kappa-tsh' or 'lz'"
        )
    b, device = positions.shape[0], positions.device
    out = structure.evaluate(positions)
    if config.committee is not None and out.energy_spread is None:
        raise ValueError(
            "committee limits need a committee potential (several models) that reports its "
            f"spread; {type(structure).__name__} reports none"
        )
    s = out.energies.shape[1]
    if coefficients is None:
        coefficients = torch.nn.functional.one_hot(active, s).to(torch.complex128)
    if algorithm.needs_nacs:
        couplings = nac_couplings(velocities, out.nacs)
    else:
        couplings = positions.new_zeros(b, s, s)
    gaps = state_gaps(out.energies)
    rates = gap_rates(out.energies, out.forces, velocities)
    zeros = torch.zeros(b, dtype=torch.int64, device=device)
    state = SurfaceHoppingState(
        positions=positions,
        velocities=velocities,
        masses=masses.expand(b, -1).clone() if masses.dim() == 1 else masses,
        coefficients=coefficients.to(device),
        active=active.to(device),
        status=zeros.clone(),
        step=zeros.clone(),
        time=positions.new_zeros(b),
        seeds=seeds.to(device),
        energies=out.energies,
        forces=out.forces,
        nacs=out.nacs,
        previous_nacs=out.nacs,
        couplings=couplings,
        gaps=gaps[:, None].repeat(1, 3, 1, 1),
        gap_rates=rates[:, None].repeat(1, 2, 1, 1),
        reference_energy=positions.new_zeros(b),
        n_hops=zeros.clone(),
        n_frustrated=zeros.clone(),
        energy_spread=out.energy_spread,
        force_spread=out.force_spread,
        flag_time=None if out.energy_spread is None else positions.new_full((b,), float("nan")),
    )
    state = state.replace(reference_energy=total_energy(state))
    return _check_spread(state, config)


def _advance(
    before: SurfaceHoppingState, structure: ElectronicStructure, config: SurfaceHoppingConfig
) -> SurfaceHoppingState:
    """One step of every trajectory in ``before`` (all assumed running)."""
    algorithm = get_algorithm(config.algorithm)
    dt, m, active = config.dt, before.masses, before.active
    v_half = half_kick(before.velocities, active_forces(before.forces, active), m, dt)
    positions = drift(before.positions, v_half, dt)
    out = structure.evaluate(positions)
    velocities = half_kick(v_half, active_forces(out.forces, active), m, dt)
    gaps = state_gaps(out.energies)
    rates = gap_rates(out.energies, out.forces, velocities)
    after = before.replace(
        positions=positions,
        velocities=velocities,
        energies=out.energies,
        forces=out.forces,
        nacs=out.nacs,
        energy_spread=out.energy_spread,
        force_spread=out.force_spread,
        gaps=torch.cat([before.gaps[:, 1:], gaps[:, None]], dim=1),
        gap_rates=torch.cat([before.gap_rates[:, 1:], rates[:, None]], dim=1),
        step=before.step + 1,
        time=before.time + dt,
    )
    after, probabilities = algorithm.update(before, after, config)

    # hop
    target = choose_targets(probabilities, active, uniform(after.seeds, after.step))
    attempt = target != active
    rows = torch.arange(after.batch_size, device=after.device)
    direction = rescale_direction(
        config.rescale, after.velocities, m, after.forces, after.nacs, active, target
    )
    adjusted, allowed = adjust_momentum(
        after.velocities,
        m,
        direction,
        after.energies[rows, target] - after.energies[rows, active],
        after.forces[rows, target],
        config.reverse_frustrated,
    )
    hop = attempt & allowed
    active = torch.where(hop, target, active)
    velocities = torch.where(attempt[:, None, None], adjusted, after.velocities)
    # the gap rate after a momentum change, so that the next curvature is not a jump
    rates = gap_rates(after.energies, after.forces, velocities)
    couplings = after.couplings
    if algorithm.needs_nacs:
        # sigma = v . d at the step's end with the adjusted velocity: the next step starts
        # from it (after a Jasper-Truhlar reversal the old one has the wrong sign)
        couplings = torch.where(
            attempt[:, None, None], nac_couplings(velocities, after.nacs), couplings
        )
    after = after.replace(
        velocities=velocities,
        active=active,
        couplings=couplings,
        gap_rates=torch.cat([after.gap_rates[:, :1], rates[:, None]], dim=1),
        n_hops=after.n_hops + hop,
        n_frustrated=after.n_frustrated + (attempt & ~allowed),
    )
    if algorithm.amplitudes_follow_active:
        after = after.replace(
            coefficients=torch.nn.functional.one_hot(active, after.n_states).to(
                after.coefficients.dtype
            )
        )
    elif config.decoherence:
        kinetic = kinetic_energy(after.velocities, m)
        after = after.replace(
            coefficients=energy_based_decoherence(
                after.coefficients,
                after.energies,
                active,
                kinetic,
                dt,
                config.decoherence_constant,
            )
        )
    return after.replace(status=_status(after, config))


def _status(state: SurfaceHoppingState, config: SurfaceHoppingConfig) -> Tensor:
    """Status after a step: POTENTIAL_FAILED where the positions are finite but the energies
    or forces are not (the potential failed at that geometry; the velocities and coefficients
    integrated with them are non-finite too), BLEW_UP where anything else is non-finite,
    ENERGY_DRIFT on drift, STATE_ORDER where the energies are out of order by more than
    ``max_state_inversion``, OUT_OF_DOMAIN where the geometry left ``config.domain``."""
    b = state.batch_size

    def all_finite(*values: Tensor) -> Tensor:
        finite = torch.ones(b, dtype=torch.bool, device=state.device)
        for value in values:
            finite &= torch.isfinite(value.reshape(b, -1)).all(dim=1)
        return finite

    geometry = all_finite(state.positions)
    potential = all_finite(state.energies, state.forces)
    rest = all_finite(state.velocities, torch.view_as_real(state.coefficients))
    drift_ = (total_energy(state) - state.reference_energy).abs() > config.max_energy_drift
    status = torch.where(drift_, int(Status.ENERGY_DRIFT), state.status)
    if config.max_state_inversion is not None and state.energies.shape[1] > 1:
        steps = state.energies[:, 1:] - state.energies[:, :-1]  # (B, S - 1) eV
        inverted = (steps < -config.max_state_inversion).any(dim=1) & ~drift_
        status = torch.where(inverted, int(Status.STATE_ORDER), status)
    if config.domain is not None:
        outside = outside_domain(state.positions, config.domain) & ~drift_
        status = torch.where(outside, int(Status.OUT_OF_DOMAIN), status)
    status = torch.where(potential & rest, status, int(Status.BLEW_UP))
    return torch.where(geometry & ~potential, int(Status.POTENTIAL_FAILED), status)


def _check_spread(state: SurfaceHoppingState, config: SurfaceHoppingConfig) -> SurfaceHoppingState:
    """Flag running trajectories whose committee spread exceeds ``config.committee`` for the
    first time (``flag_time``); with ``action: stop`` they get COMMITTEE_SPREAD."""
    committee = config.committee
    if committee is None:
        return state
    exceeded = spread_exceeded(state.energy_spread, state.force_spread, state.active, committee)
    exceeded &= state.status == Status.RUNNING
    first = exceeded & torch.isnan(state.flag_time)
    status = state.status
    if committee.stops:
        status = torch.where(exceeded, int(Status.COMMITTEE_SPREAD), status)
    return state.replace(flag_time=torch.where(first, state.time, state.flag_time), status=status)


def step(
    state: SurfaceHoppingState,
    structure: ElectronicStructure,
    config: SurfaceHoppingConfig,
    stop: StopCriterion | None = None,
) -> SurfaceHoppingState:
    """Advance the running trajectories by one step; the others are returned unchanged.

    The limits on a committee's spread (``config.committee``) are checked before the stop
    criterion."""
    running = state.running
    n_running = int(running.sum())
    if n_running == 0:
        return state
    everyone = n_running == state.batch_size
    index = None if everyone else running.nonzero().squeeze(1)
    sub = state if everyone else state.select(index)
    sub = _check_spread(_advance(sub, structure, config), config)
    if stop is not None:
        halt = stop(sub) & (sub.status == Status.RUNNING)
        sub = sub.replace(status=torch.where(halt, int(Status.STOPPED), sub.status))
    return sub if everyone else state.assign(index, sub)


def run(
    state: SurfaceHoppingState,
    structure: ElectronicStructure,
    config: SurfaceHoppingConfig,
    n_steps: int,
    stop: StopCriterion | None = None,
    observer: Callable[[SurfaceHoppingState], None] | None = None,
    final: bool = True,
) -> SurfaceHoppingState:
    """Up to ``n_steps`` steps; trajectories still running at the end get TIME_LIMIT.

    ``observer(state)`` is called after every step (e.g. a trajectory writer). With
    ``final=False`` running trajectories stay RUNNING, so a run can continue in chunks.
    """
    for _ in range(n_steps):
        if not bool(state.running.any()):
            break
        state = step(state, structure, config, stop)
        if observer is not None:
            observer(state)
    if not final:
        return state
    return state.replace(status=torch.where(state.running, int(Status.TIME_LIMIT), state.status))
