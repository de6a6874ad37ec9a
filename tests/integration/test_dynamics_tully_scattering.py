"""Tully's scattering experiments run end to end through the batched engine.

Statistical tolerances: with n trajectories a probability p has standard error
sqrt(p(1-p)/n) (0.011 at n = 2000, p = 0.5). FSSH itself is not exact. Measured with 10,000
trajectories (two seeds; standard error 0.004-0.005 each), lower-state transmission T0:
    model 1, k = 10: 0.839, 0.842 (exact 0.845)    model 2, k = 30: 0.331, 0.326 (exact 0.334)
    model 1, k = 20: 0.498, 0.492 (exact 0.507)    model 2, k = 40: 0.712, 0.723 (exact 0.708)
    model 1, k = 30: 0.273, 0.275 (exact 0.285)
(model 1 at k = 30 gives 0.279 with half the time step; model 2 at k = 40, 0.719). The
deviations of up to 0.012 from exact are FSSH's own, in line with Tully (1990). Comparisons
with exact values therefore allow 4 standard errors plus 0.015.
"""

import math

import pytest
import torch

from fusionff.dynamics import tully_scattering

N_TRAJ = 2000
FSSH_BIAS = 0.015

# exact quantum transmission probabilities, lower / upper adiabatic state (PHYSICS.md section 4)
EXACT = {
    ("simple", 10): (0.845, 0.155),
    ("simple", 20): (0.507, 0.493),
    ("simple", 30): (0.285, 0.715),
    ("dual", 30): (0.334, 0.666),
    ("dual", 40): (0.708, 0.292),
}


def _close(p, err, expected, bias=FSSH_BIAS):
    return abs(p - expected) < 4 * max(err, 0.005) + bias


@pytest.mark.parametrize("model,k", list(EXACT))
def test_fssh_transmission_matches_exact_quantum_results(model, k):
    """FSSH transmission on the lower and upper adiabatic states of Tully's models 1 (k = 10,
    20, 30) and 2 (k = 30, 40) agrees with the exact quantum values within statistics plus
    FSSH's known small error; nothing is reflected, fails or is left unfinished."""
    p = tully_scattering(model=model, k=k, n_traj=N_TRAJ, algorithm="fssh", seed=1)
    t0, t1 = EXACT[(model, k)]
    assert _close(p["T0"], p["T0_err"], t0), p
    assert _close(p["T1"], p["T1_err"], t1), p
    assert p["R0"] + p["R1"] < 0.01
    assert p["failed"] == 0 and p["unfinished"] == 0
    assert math.isclose(p["T0"] + p["T1"] + p["R0"] + p["R1"], 1.0)


@pytest.mark.slow  # about 6 s
def test_kappa_tsh_close_to_fssh_on_model_1():
    """kappa-TSH (energies and forces only) on model 1 at k = 10 stays close to FSSH with NACs.

    At higher momenta it does not: the Baeck-An coupling 1/2 sqrt(D''/D) is exact for linear
    diabats (see test_all_algorithms_reproduce_landau_zener) but model 1's diabats saturate
    within 0.5 bohr, so its gap is concave beyond |x| = 0.35 bohr and the curvature coupling
    integrates to 0.43 rad instead of pi/2: kappa-TSH gives T1 = 0.17 at k = 20 and 30 (exact
    0.49, 0.72). That is the approximation's error, not the engine's.
    """
    kappa = tully_scattering("simple", k=10, n_traj=1000, algorithm="kappa-tsh", seed=2)
    fssh = tully_scattering("simple", k=10, n_traj=1000, algorithm="fssh", seed=3)
    err = math.hypot(kappa["T1_err"], fssh["T1_err"])
    assert abs(kappa["T1"] - fssh["T1"]) < 4 * err + 0.02, (kappa, fssh)


def _linear_crossing(x: torch.Tensor):
    """Landau-Zener model (atomic units): h11 = a x, h22 = -a x, h12 = c."""
    a, c = 0.0025, 0.002
    ones = torch.ones_like(x)
    return a * x, -a * x, c * ones, a * ones, -a * ones, 0 * ones


@pytest.mark.parametrize("algorithm", ["fssh", "kappa-tsh", "lz"])
def test_all_algorithms_reproduce_landau_zener(algorithm):
    """On a linear crossing every algorithm gives the Landau-Zener probability of ending on the
    upper adiabatic state, P = exp(-2 pi c^2 / (v |d(h11 - h22)/dx|)), v at the crossing (the
    curvature coupling and the Belyaev-Lebedev formula are exact for this model)."""
    k, mass, a, c = 25.0, 2000.0, 0.0025, 0.002
    kinetic = k**2 / (2 * mass) - (math.hypot(10 * a, c) - c)  # lower state climbs to x = 0
    velocity = math.sqrt(2 * kinetic / mass)
    expected = math.exp(-2 * math.pi * c**2 / (velocity * 2 * a))
    p = tully_scattering(_linear_crossing, k=k, n_traj=1000, algorithm=algorithm, seed=4)
    assert p["failed"] == 0 and p["unfinished"] == 0 and p["R0"] + p["R1"] == 0
    assert abs(p["T1"] - expected) < 4 * p["T1_err"] + 0.02, (p, expected)


def test_result_does_not_depend_on_batch_size():
    """The same seed gives the same probabilities whether trajectories run all together or in
    batches of 7."""
    together = tully_scattering("dual", k=30, n_traj=21, seed=9, step_bohr=0.1)
    batched = tully_scattering("dual", k=30, n_traj=21, seed=9, step_bohr=0.1, batch_size=7)
    assert together == batched
    assert 0 < together["T1"] < 1


def test_extended_coupling_model_runs_and_reflects():
    """Model 3 at k = 10: probabilities sum to one and a sizeable part reflects (FSSH is known
    to misplace the reflected flux here, so only its presence is checked)."""
    p = tully_scattering("extended", k=10, n_traj=300, seed=5)
    total = p["T0"] + p["T1"] + p["R0"] + p["R1"]
    assert math.isclose(total, 1.0) and p["failed"] == 0
    assert p["R0"] + p["R1"] > 0.1


def test_model_3_upper_reflection_is_lost_in_the_outer_coupling_region():
    """Model 3 at k = 10 counted at |x| = 5 bohr shows about 0.2 reflected on the upper state
    (mudslide's command-line default box gives the same); counted at 10 bohr, where the
    coupling has died out, almost none: the coupling peaks at x = ln(A/B)/C = -5.7 bohr, and
    trajectories reflected on the upper state hop down as they cross it on their way out. The
    same trajectories (same seed) transmit identically: only the reflected ones move."""
    inner = tully_scattering("extended", k=10, n_traj=1000, seed=6, step_bohr=0.1, box_bohr=5)
    outer = tully_scattering("extended", k=10, n_traj=1000, seed=6, step_bohr=0.1)
    assert inner["T0"] == outer["T0"] and inner["T1"] == outer["T1"] == 0
    assert inner["R1"] > 0.15 and outer["R1"] < 0.03, (inner, outer)
    assert math.isclose(inner["R0"] + inner["R1"], outer["R0"] + outer["R1"])
    with pytest.raises(ValueError, match="box_bohr"):
        tully_scattering("extended", k=10, n_traj=1, box_bohr=12)
