"""fusionff's FSSH against mudslide (an independent implementation) on Tully's models.

Both run at identical settings (see benchmarks/tully_vs_mudslide.py, whose mudslide driver
this test uses): time step 0.1 bohr / v0, one electronic exponential per step, one random
number per step, rescaling along the NAC, frustrated hops without reversal, no decoherence,
start at x = -10 bohr, counted on leaving [-box, box] bohr. Each of the four probabilities must
agree within 4 standard errors of the difference (binomial errors of both samples) plus 0.005
for outcomes neither code produces; the seeds are fixed, so the test is deterministic.

With energy-based decoherence (EDC), mudslide runs with EDC added by the benchmark's subclass
(mudslide has none of its own): model 2 at k = 20 is where it matters most (T1 0.32 with EDC,
0.03 without, both codes).

Model 3 at k = 10 is the case a user reported as a disagreement: with mudslide's command-line
default box of 5 bohr, R1 is about 0.2; with the 10 bohr box it is about 0.01, in both codes.
"""

import importlib.util
import math
from pathlib import Path

import pytest

pytest.importorskip("mudslide")

_SCRIPT = Path(__file__).parents[2] / "benchmarks" / "tully_vs_mudslide.py"
_spec = importlib.util.spec_from_file_location("tully_vs_mudslide", _SCRIPT)
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)

STEP_BOHR = 0.1
N_FUSIONFF = 4000


@pytest.mark.slow
@pytest.mark.parametrize(
    "model,k,box,n_mudslide,decoherence",
    [
        ("extended", 10, 10.0, 500, False),
        ("extended", 10, 5.0, 300, False),
        ("simple", 20, 10.0, 300, False),
        ("dual", 30, 10.0, 300, False),
        ("dual", 20, 10.0, 300, True),
    ],
)
def test_fssh_agrees_with_mudslide(model, k, box, n_mudslide, decoherence):
    """Transmission and reflection on each state agree with mudslide's within statistics."""
    ours = bench.fusionff_scattering(model, k, N_FUSIONFF, STEP_BOHR, box, 11, decoherence)
    theirs = bench.mudslide_scattering(model, k, n_mudslide, STEP_BOHR, box, 12, decoherence)
    for name in bench.OUTCOMES:
        err = math.hypot(ours[f"{name}_err"], theirs[f"{name}_err"])
        assert abs(ours[name] - theirs[name]) < 4 * err + 0.005, (name, ours, theirs)
    assert ours["unfinished"] == 0 and theirs["unfinished"] == 0
    if decoherence:  # without EDC, T1 is 0.03 here
        assert ours["T1"] > 0.2 and theirs["T1"] > 0.2, (ours, theirs)
    if model == "extended":
        # where the count is taken decides R1 (the coupling peaks at x = -5.7 bohr)
        for p in (ours, theirs):
            assert (p["R1"] > 0.1) if box == 5.0 else (p["R1"] < 0.03), (box, p)
