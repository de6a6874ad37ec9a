"""Hopping algorithms by name: how couplings, amplitudes and hop probabilities are made.

An algorithm takes the state before a step and the state after the nuclear step (new
positions, velocities, energies, forces, NACs and gap histories already in place) and returns
the new state with its amplitudes and couplings, plus the probabilities (B, S) of hopping
from the active state to each state during the step.

* "fssh": fewest switches with sigma = v . d from the NACs of the electronic structure.
* "kappa-tsh": fewest switches with curvature-driven couplings from energies and forces only.
* "lz": Landau-Zener (Belyaev-Lebedev) at local minima of the gaps; the amplitudes only
  mirror the active state.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor

from fusionff.dynamics.couplings import align_nac_signs, curvature_couplings, nac_couplings
from fusionff.dynamics.electronic import propagate_coefficients
from fusionff.dynamics.hopping import landau_zener_probabilities
from fusionff.dynamics.state import SurfaceHoppingState

__all__ = [
    "StepSettings",
    "HoppingAlgorithm",
    "ALGORITHMS",
    "register_algorithm",
    "get_algorithm",
]


class StepSettings(Protocol):
    """What an algorithm reads from the run's settings (a
    :class:`~fusionff.dynamics.sh_config.SurfaceHoppingConfig` satisfies it)."""

    dt: float
    n_substeps: int
    align_nac_signs: bool
    kappa_gap_threshold: float


Update = Callable[
    [SurfaceHoppingState, SurfaceHoppingState, StepSettings],
    tuple[SurfaceHoppingState, Tensor],
]


@dataclass(frozen=True)
class HoppingAlgorithm:
    """A named hopping scheme.

    Attributes:
        update: (before, after nuclear step, config) -> (after, probabilities (B, S)).
        needs_nacs: the electronic structure must provide NACs.
        amplitudes_follow_active: the amplitudes are reset to the active state after a hop
            (schemes without a wavefunction, such as Landau-Zener).
    """

    update: Update
    needs_nacs: bool = False
    amplitudes_follow_active: bool = False


ALGORITHMS: dict[str, HoppingAlgorithm] = {}
"""Registry of hopping algorithms (name -> :class:`HoppingAlgorithm`)."""


def register_algorithm(name: str, **options: bool) -> Callable[[Update], Update]:
    """Decorator registering an update function under ``name`` (options as in the dataclass)."""

    def register(update: Update) -> Update:
        ALGORITHMS[name] = HoppingAlgorithm(update=update, **options)
        return update

    return register


def get_algorithm(name: str) -> HoppingAlgorithm:
    """The registered algorithm ``name``; a ValueError lists the known names otherwise."""
    if name not in ALGORITHMS:
        raise ValueError(f"unknown hopping algorithm {name!r}; choose from {sorted(ALGORITHMS)}")
    return ALGORITHMS[name]


def _fewest_switches(
    before: SurfaceHoppingState,
    after: SurfaceHoppingState,
    couplings: Tensor,
    config: StepSettings,
) -> tuple[SurfaceHoppingState, Tensor]:
    coefficients, probabilities = propagate_coefficients(
        before.coefficients,
        (before.energies, after.energies),
        (before.couplings, couplings),
        before.active,
        config.dt,
        config.n_substeps,
    )
    return after.replace(coefficients=coefficients, couplings=couplings), probabilities


def _aligned(
    before: SurfaceHoppingState, after: SurfaceHoppingState, config: StepSettings
) -> SurfaceHoppingState:
    """``after`` with NAC signs aligned (if configured) and the NAC history shifted."""
    if after.nacs is None:
        return after
    nacs = after.nacs
    if config.align_nac_signs:
        nacs = align_nac_signs(nacs, before.nacs, before.previous_nacs)
    return after.replace(nacs=nacs, previous_nacs=before.nacs)


@register_algorithm("fssh", needs_nacs=True)
def fssh_update(
    before: SurfaceHoppingState, after: SurfaceHoppingState, config: StepSettings
) -> tuple[SurfaceHoppingState, Tensor]:
    """Fewest switches with NAC couplings sigma_jk = v . d_jk."""
    after = _aligned(before, after, config)
    return _fewest_switches(before, after, nac_couplings(after.velocities, after.nacs), config)


@register_algorithm("kappa-tsh")
def kappa_update(
    before: SurfaceHoppingState, after: SurfaceHoppingState, config: StepSettings
) -> tuple[SurfaceHoppingState, Tensor]:
    """Fewest switches with curvature-driven couplings (below ``config.kappa_gap_threshold``).

    A hop needs no reset of the histories: the gaps and gap rates are kept for every pair of
    states, whatever the active one, and the one thing a hop changes in them, the velocity, is
    put into the latest gap rate by the engine after the momentum adjustment, so the next
    step's curvature is differenced from post-hop rates."""
    couplings = curvature_couplings(
        after.gaps[:, -1],
        after.gap_rates[:, 0],
        after.gap_rates[:, 1],
        config.dt,
        config.kappa_gap_threshold,
    )
    after = _aligned(before, after, config)
    return _fewest_switches(before, after, couplings, config)


@register_algorithm("lz", amplitudes_follow_active=True)
def landau_zener_update(
    before: SurfaceHoppingState, after: SurfaceHoppingState, config: StepSettings
) -> tuple[SurfaceHoppingState, Tensor]:
    """Belyaev-Lebedev Landau-Zener probabilities at local gap minima."""
    probabilities = landau_zener_probabilities(after.gaps, before.active, config.dt)
    after = _aligned(before, after, config)
    return after.replace(couplings=torch.zeros_like(after.couplings)), probabilities
