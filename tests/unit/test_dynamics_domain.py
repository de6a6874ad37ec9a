"""The reference's domain (``dynamics.domain``): trajectories that leave it are stopped."""

from __future__ import annotations

import pytest
import torch

from fusionff.dynamics import StateOutputs, Status, SurfaceHoppingConfig, initial_state, run, step
from fusionff.dynamics.domain import (
    DomainLimits,
    nearest_neighbour_distances,
    outside_domain,
    pair_distances,
)
from fusionff.dynamics.run_config import RunConfig, RunConfigError
from tests.unit.test_dynamics_engine import MASSES, OutOfOrderReadouts, _at_rest

HEIGHT = 1.2 * 3**0.5 / 2
MINIMUM = [[0.0, 0.0, 0.0], [1.2, 0.0, 0.0], [0.6, HEIGHT, 0.0]]
STRETCHED = [[0.0, 0.0, 0.0], [1.5, 0.0, 0.0], [0.6, HEIGHT, 0.0]]


def test_pair_distances_and_the_domain_test_by_hand():
    """Distances of the listed pairs, and 'outside' exactly where one is below the limit."""
    positions = torch.tensor([MINIMUM, STRETCHED], dtype=torch.float64)
    limits = DomainLimits(pairs=[[0, 1], [2, 1]], min_distance=1.3)
    d = pair_distances(positions, limits)
    torch.testing.assert_close(d[:, 0], torch.tensor([1.2, 1.5], dtype=torch.float64))
    torch.testing.assert_close(d[1, 1], torch.tensor(0.9**2 + HEIGHT**2).sqrt().double())
    assert outside_domain(positions, limits).tolist() == [True, False]


def test_a_trajectory_leaving_the_domain_stops_there_while_the_rest_run_on():
    """Started at rest with bond 0-1 stretched to 1.5 A, a trajectory oscillates through 1.2 A
    to about 0.9 A; with the domain 'bond 0-1 >= 1.0 A' it is stopped OUT_OF_DOMAIN at the
    first step where that bond is shorter (found by stepping the same run without a domain),
    and the one at rest at the minimum runs to the time limit."""
    structure = OutOfOrderReadouts()
    plain = SurfaceHoppingConfig(dt=0.5, algorithm="kappa-tsh")
    bounded = SurfaceHoppingConfig(
        dt=0.5, algorithm="kappa-tsh", domain=DomainLimits(pairs=[[1, 0]], min_distance=1.0)
    )
    positions = torch.tensor([STRETCHED, MINIMUM], dtype=torch.float64)
    state = _at_rest(structure, positions, plain)
    first_outside = None
    for n in range(1, 400):
        state = step(state, structure, plain)
        if float((state.positions[0, 0] - state.positions[0, 1]).norm()) < 1.0:
            first_outside = n
            break
    assert first_outside is not None and first_outside > 1, "the bond never got below 1.0 A"
    final = run(_at_rest(structure, positions, bounded), structure, bounded, 400)
    assert final.status.tolist() == [Status.OUT_OF_DOMAIN, Status.TIME_LIMIT]
    assert final.step.tolist() == [first_outside, 400]


@pytest.mark.parametrize(
    "domain, message",
    [
        ({"pairs": [[0, 0]], "min_distance": 1.0}, r"dynamics\.domain.*\[0, 0\] is not two"),
        ({"pairs": [], "min_distance": 1.0}, r"dynamics\.domain.*at least one"),
        ({"pairs": [[0, 1]], "min_distance": -1.0}, r"dynamics\.domain.*min_distance"),
        ({"pairs": [[0, 1]]}, r"dynamics\.domain\.min_distance: missing"),
        (
            {"pairs": [[0, 1]], "min_distance": 1.0, "dissociation_distance": 0.0},
            r"dynamics\.domain.*dissociation_distance must be positive",
        ),
    ],
)
def test_a_bad_domain_is_refused_naming_the_key(domain, message):
    """Pairs that are not two different atoms, no pairs, a non-positive distance or a missing
    key are errors naming dynamics.domain."""
    raw = {"potential": "tully-1", "n_traj": 1, "n_steps": 1, "dynamics": {"domain": domain}}
    with pytest.raises(RunConfigError, match=message):
        RunConfig.from_dict(raw)


def test_a_pair_beyond_the_atoms_is_named():
    """A pair naming atom 5 of a 3-atom system is an error that names the pair."""
    positions = torch.zeros(1, 3, 3, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"\[0, 5\] names an atom beyond the 3 atoms"):
        outside_domain(positions, DomainLimits(pairs=[[0, 5]], min_distance=1.0))


def test_the_runners_failed_statuses_are_the_ones_analysis_excludes():
    """Out-of-domain and every other defect status count as failed in the runner's progress
    lines and are the statuses the analysis keeps out of statistics, name for name."""
    from fusionff.analysis.run import FAILED_STATUSES
    from fusionff.dynamics.runner import STATUS_NAMES
    from fusionff.dynamics.state import FAILED

    assert Status.OUT_OF_DOMAIN in FAILED
    assert {STATUS_NAMES[s] for s in FAILED} == FAILED_STATUSES


def test_nearest_neighbour_distances_and_the_dissociation_limit_by_hand():
    """Each atom's distance to its nearest other atom; with dissociation_distance 2.0 A a
    triangle is inside and the same triangle with atom 2 moved 3 A away is outside, whatever
    the pairs say; without the key only the pairs count."""
    far = [MINIMUM[0], MINIMUM[1], [0.6, HEIGHT + 3.0, 0.0]]
    positions = torch.tensor([MINIMUM, far], dtype=torch.float64)
    nearest = nearest_neighbour_distances(positions)
    torch.testing.assert_close(nearest[0], torch.full((3,), 1.2, dtype=torch.float64))
    torch.testing.assert_close(
        nearest[1, 2], torch.tensor(0.6**2 + (HEIGHT + 3.0) ** 2).sqrt().double()
    )
    apart = DomainLimits(pairs=[[0, 1]], min_distance=0.5, dissociation_distance=2.0)
    assert outside_domain(positions, apart).tolist() == [False, True]
    plain = DomainLimits(pairs=[[0, 1]], min_distance=0.5)
    assert outside_domain(positions, plain).tolist() == [False, False]


class FreeAtoms:
    """No forces: E0 = 0, E1 = 1 eV everywhere (atoms move on straight lines)."""

    n_states = 2
    provides_nacs = False

    def evaluate(self, positions):
        b, n = positions.shape[:2]
        energies = torch.tensor([0.0, 1.0], dtype=positions.dtype).expand(b, 2).clone()
        return StateOutputs(energies, torch.zeros(b, 2, n, 3, dtype=positions.dtype), None)


def test_a_trajectory_whose_atom_flies_off_stops_there_while_the_rest_run_on():
    """Atom 2 leaves a triangle of 1.2 A sides at 0.01 A/fs along the triangle's height (no
    forces), so after t fs its nearest atoms are sqrt(0.6^2 + (HEIGHT + 0.01 t)^2) A away; with
    dissociation_distance 2.0 A the trajectory stops OUT_OF_DOMAIN at the first step (dt 0.5
    fs) where that exceeds 2.0 A, and its twin at rest runs to the time limit."""
    config = SurfaceHoppingConfig(
        dt=0.5,
        algorithm="kappa-tsh",
        domain=DomainLimits(pairs=[[0, 1]], min_distance=0.5, dissociation_distance=2.0),
    )
    positions = torch.tensor([MINIMUM, MINIMUM], dtype=torch.float64)
    velocities = torch.zeros_like(positions)
    velocities[0, 2, 1] = 0.01
    zeros = torch.zeros(2, dtype=torch.int64)
    state = initial_state(FreeAtoms(), positions, velocities, MASSES, zeros, zeros, config)
    final = run(state, FreeAtoms(), config, 400)
    expected = int(((2.0**2 - 0.6**2) ** 0.5 - HEIGHT) / 0.005) + 1  # 174
    assert final.status.tolist() == [Status.OUT_OF_DOMAIN, Status.TIME_LIMIT]
    assert final.step.tolist() == [expected, 400]
