"""fusionff's fewest-switches surface hopping against mudslide on Tully's three models.

Both codes run the same experiment at identical settings: a particle of mass 2000 starts at
x = -10 bohr on the lower adiabatic state with momentum k; the time step is ``--step-bohr`` / v0
(0.1 bohr / v0: 20 au at k = 10); one electronic exponential per step (mudslide's midpoint
"exp" propagator, fusionff with n_substeps=1); one random number per step (mudslide
``hopping_method="instantaneous"``, the method its command line calls "fssh"); momentum
rescaled along the NAC, frustrated hops keep their velocity (no reversal), no decoherence; the
trajectory stops on leaving [-box, box] bohr and is counted by its side and active adiabatic
state. The box is 10 bohr (fusionff's default) except for the rows marked box 5: mudslide's
command line stops at 5 bohr by default, inside model 3's coupling region (see
:mod:`fusionff.dynamics.scattering`).

A third column set is fusionff with energy-based decoherence (EDC; Granucci-Persico, C = 0.1
hartree). mudslide has no energy-based decoherence (its decoherence method is A-FSSH, a
different scheme), so that column has no counterpart in mudslide itself. ``--decoherence``
instead checks it against mudslide with EDC added by a subclass (``_mudslide_edc_class``: after
each step's hop, the same damping and renormalisation on mudslide's density matrix) on three
points where EDC changes the result most, and writes tully_vs_mudslide_edc.json.

For each outcome the table's ``z`` is |p_fusionff - p_mudslide| / sqrt(se_f^2 + se_m^2) with
binomial standard errors; the largest of the four is shown (over the table's ~50 comparisons
of non-zero probabilities, chance alone gives a largest z of 2 to 3).

    python benchmarks/tully_vs_mudslide.py [--n-fusionff 4000] [--n-mudslide 1000]
        [--step-bohr 0.1] [--quick] [--decoherence] [--out FILE]

Writes benchmarks/results/tully_vs_mudslide.json (``--quick``: a few points, few
trajectories, for a smoke run).
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time
from pathlib import Path

import numpy as np
import torch

from fusionff.dynamics.scattering import TULLY_START_BOHR, tully_scattering

RESULTS = Path(__file__).parent / "results"
OUTCOMES = ("T0", "T1", "R0", "R1")
POINTS = (
    [("simple", k, 10.0) for k in (5, 10, 15, 20, 25, 30)]
    + [("dual", k, 10.0) for k in (15, 20, 30, 40, 50)]
    + [("extended", k, 10.0) for k in (5, 10, 15, 20, 25, 30)]
    + [("extended", k, 5.0) for k in (10, 20)]
)
QUICK_POINTS = [("simple", 20, 10.0), ("extended", 10, 10.0), ("extended", 10, 5.0)]
DECOHERENCE_POINTS = [("simple", 10, 10.0), ("dual", 20, 10.0), ("extended", 10, 10.0)]
DECOHERENCE_CONSTANT_HARTREE = 0.1


def _with_errors(counts: dict[str, float], n: int) -> dict[str, float]:
    result = {}
    for name in OUTCOMES:
        p = counts[name] / n
        result[name] = p
        result[f"{name}_err"] = math.sqrt(p * (1.0 - p) / n)
    return result


def _mudslide_edc_class():
    import mudslide

    class _MudslideEDC(mudslide.SurfaceHoppingMD):
        """mudslide's FSSH plus energy-based decoherence after each step's hop, as fusionff
        applies it: rho_ij <- rho_ij d_i d_j with d_j = exp(-dt / tau_jk) (d_k = 1), then the
        active row and column rescaled so that rho_kk = 1 - sum_{j != k} rho_jj."""

        def surface_hopping(self, last_electronics, this_electronics) -> None:
            super().surface_hopping(last_electronics, this_electronics)
            energies = np.real(np.diag(self.electronics.hamiltonian))
            k = self.state
            constant = 1.0 + DECOHERENCE_CONSTANT_HARTREE / self.kinetic_energy()
            gaps = np.abs(energies - energies[k])
            damping = np.exp(-self.dt * gaps / constant)
            damping[k] = 1.0
            self.rho *= np.outer(damping, damping)
            others = np.real(np.trace(self.rho)) - np.real(self.rho[k, k])
            target = max(1.0 - others, 0.0)
            old = np.real(self.rho[k, k])
            scale = math.sqrt(target / old) if old > 0 else 0.0
            self.rho[k, :] *= scale
            self.rho[:, k] *= scale
            self.rho[k, k] = target

    return _MudslideEDC


def mudslide_scattering(
    model: str,
    k: float,
    n_traj: int,
    step_bohr: float,
    box_bohr: float = -TULLY_START_BOHR,
    seed: int = 0,
    decoherence: bool = False,
) -> dict[str, float]:
    """Tully's experiment with mudslide's FSSH at the settings of the module docstring
    (``decoherence``: with EDC added by :func:`_mudslide_edc_class`).

    Returns probabilities "T0", "T1", "R0", "R1", their standard errors "T0_err", ... and the
    fraction "unfinished" of trajectories that reached the step limit (fusionff's limit: ten
    crossings of [-10, 10] bohr at the initial speed).
    """
    import mudslide
    from mudslide.models.scattering_models import scattering_models

    system = scattering_models[model]()
    velocity = k / float(system.mass[0])
    max_steps = int(math.ceil(10 * 2 * abs(TULLY_START_BOHR) / step_bohr))
    counts = dict.fromkeys(OUTCOMES, 0.0)
    unfinished = 0
    method = _mudslide_edc_class() if decoherence else mudslide.SurfaceHoppingMD
    for sequence in np.random.SeedSequence(seed).spawn(n_traj):
        trajectory = method(
            system,
            [TULLY_START_BOHR],
            [velocity],
            0,
            tracer="memory",
            dt=step_bohr / velocity,
            bounds=[[-box_bohr], [box_bohr]],
            hopping_method="instantaneous",
            electronic_integration="exp",
            seed_sequence=sequence,
            max_steps=max_steps,
            trace_every=max_steps + 1,
        )
        outcome = trajectory.simulate().outcome()  # (state, left/right)
        for state in (0, 1):
            counts[f"R{state}"] += outcome[state, 0]
            counts[f"T{state}"] += outcome[state, 1]
        unfinished += trajectory.nsteps >= max_steps
    return {**_with_errors(counts, n_traj), "unfinished": unfinished / n_traj}


def fusionff_scattering(
    model: str,
    k: float,
    n_traj: int,
    step_bohr: float,
    box_bohr: float = -TULLY_START_BOHR,
    seed: int = 0,
    decoherence: bool = False,
) -> dict[str, float]:
    """fusionff's ``tully_scattering`` at the settings of the module docstring."""
    return tully_scattering(
        model,
        k=k,
        n_traj=n_traj,
        seed=seed,
        step_bohr=step_bohr,
        n_substeps=1,
        box_bohr=box_bohr,
        decoherence=decoherence,
    )


def largest_z(a: dict[str, float], b: dict[str, float]) -> float:
    """Largest |a - b| / combined standard error over the four outcomes (0/0 counts as 0)."""
    z = 0.0
    for name in OUTCOMES:
        err = math.hypot(a[f"{name}_err"], b[f"{name}_err"])
        diff = abs(a[name] - b[name])
        if diff > 0:
            z = max(z, diff / err if err > 0 else math.inf)
    return z


def _row(values: dict[str, float]) -> str:
    return " ".join(f"{values[name]:5.3f}" for name in OUTCOMES)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-fusionff", type=int, default=4000)
    parser.add_argument("--n-mudslide", type=int, default=1000)
    parser.add_argument("--step-bohr", type=float, default=0.1)
    parser.add_argument("--quick", action="store_true", help="3 points, 100 trajectories")
    parser.add_argument(
        "--decoherence", action="store_true", help="EDC in both codes (mudslide by a subclass)"
    )
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    edc = args.decoherence
    points = QUICK_POINTS if args.quick else DECOHERENCE_POINTS if edc else POINTS
    n_f, n_m = (100, 100) if args.quick else (args.n_fusionff, args.n_mudslide)
    name = "tully_vs_mudslide_edc.json" if edc else "tully_vs_mudslide.json"
    out = args.out or RESULTS / name

    label = "+EDC" if edc else ""
    header = (
        f"{'model':8s} {'k':>3s} {'box':>3s} | {'fusionff' + label + ' T0 T1 R0 R1':24s} | "
        f"{'mudslide' + label + ' T0 T1 R0 R1':24s} | {'z':>4s}"
    )
    if not edc:
        header += f" | {'fusionff+EDC T0 T1 R0 R1':24s}"
    print(header)
    print("-" * len(header))
    rows, seconds = [], {"fusionff": 0.0, "mudslide": 0.0}
    for index, (model, k, box) in enumerate(points):
        seed = 10 * index  # independent random streams for every row and code
        start = time.perf_counter()
        ours = fusionff_scattering(model, k, n_f, args.step_bohr, box, seed + 1, edc)
        seconds["fusionff"] += time.perf_counter() - start
        start = time.perf_counter()
        theirs = mudslide_scattering(model, k, n_m, args.step_bohr, box, seed + 3, edc)
        seconds["mudslide"] += time.perf_counter() - start
        row = {"model": model, "k": k, "box_bohr": box, "fusionff": ours, "mudslide": theirs}
        row["largest_z"] = largest_z(ours, theirs)
        line = f"{model:8s} {k:3d} {box:3.0f} | {_row(ours):24s} | {_row(theirs):24s} | "
        line += f"{row['largest_z']:4.1f}"
        if not edc:
            start = time.perf_counter()
            row["fusionff_decoherence"] = fusionff_scattering(
                model, k, n_f, args.step_bohr, box, seed + 2, decoherence=True
            )
            seconds["fusionff"] += time.perf_counter() - start
            line += f" | {_row(row['fusionff_decoherence']):24s}"
        print(line, flush=True)
        rows.append(row)
    import mudslide

    record = {
        "settings": {
            "step_bohr": args.step_bohr,
            "fusionff_n_substeps": 1,
            "mudslide_hopping_method": "instantaneous",
            "mudslide_electronic_integration": "exp",
            "rescale": "NAC",
            "reverse_frustrated": False,
            "decoherence": "energy-based, C = 0.1 hartree" if edc else "none",
            "start_bohr": TULLY_START_BOHR,
            "n_traj_fusionff": n_f,
            "n_traj_mudslide": n_m,
        },
        "mudslide_version": mudslide.__version__,
        "torch_version": torch.__version__,
        "machine": platform.processor() or platform.machine(),
        "seconds": seconds,
        "points": rows,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=1) + "\n")
    print(f"largest z over the table: {max(r['largest_z'] for r in rows):.1f}")
    print(f"time: fusionff {seconds['fusionff']:.0f} s, mudslide {seconds['mudslide']:.0f} s")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
