"""Speed of the batched surface-hopping engine against one-trajectory-at-a-time baselines.

a. Tully's model 1 (k = 20 au, FSSH): the engine with B trajectories in one batch against
   mudslide (``pip install mudslide``; the column is skipped if it is missing), same settings:
   time step 0.04 bohr / v0 = 4 au, one electronic exponential per step (mudslide's midpoint
   "exp" propagator; the engine with n_substeps=1), one random number per step (mudslide
   ``hopping_method="instantaneous"``), momentum rescaled along the NAC, no decoherence, start at
   x = -10 bohr on the lower state, stop on leaving [-10, 10] bohr. Both rates count the steps
   the trajectories actually took; set-up is included on both sides.
b. A MultiStateMACE on trans-stilbene (26 atoms, 2 states, kappa-TSH, dt 0.5 fs, start on S1):
   the engine with MLElectronicStructure (B geometries in one graph) against a loop of
   SurfaceHopping (ASE) drivers, one per trajectory, each calling FusionCalculator. Only the
   steps are timed (both sides are set up first); trajectory i of the loop uses the engine's
   random stream of trajectory i, and the script checks that both end at the same positions.

The baselines are loops, so their rate does not depend on B: for B above ``--loop-max`` they
run the first ``--loop-max`` trajectories only. Timings are the best of ``--repeats``
interleaved measurements (ours, baseline, ours, ...). Writes
benchmarks/results/dynamics_<device>.json.

    python benchmarks/dynamics_speed.py [--device cpu|cuda] [--dtype float64|float32]
        [--tully-sizes 1,64,1024] [--ml-sizes 1,64] [--ml-steps 4,1] [--loop-max 64]
        [--repeats 3] [--threads N] [--out FILE]

On a CPU shared with other jobs use ``--threads 1``: an OpenMP region then waits for a time
slice, which slowed small tensor operations (and single-structure model evaluations) by
10-100x in our measurements with 2 threads on 2 busy cores.
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
from ase import units

from fusionff import FusionCalculator, MultiStateMACE, load_model
from fusionff.data.molecules import trans_stilbene
from fusionff.dynamics import (
    SurfaceHoppingConfig,
    TullyModel,
    initial_state,
    run,
    trajectory_seeds,
)
from fusionff.dynamics.ase_driver import SurfaceHopping
from fusionff.dynamics.ml import MLElectronicStructure
from fusionff.units import AU_TIME_FS, AU_VELOCITY_A_PER_FS, BOHR_ANGSTROM

RESULTS = Path(__file__).parent / "results"
TRAINED = Path(__file__).parent.parent / "potentials" / "stilbene-r1.fff"
K, STEP_BOHR, X0 = 20.0, 0.04, -10.0
TULLY_MAX_STEPS = int(math.ceil(10 * 2 * abs(X0) / STEP_BOHR))


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _sizes(text: str) -> list[int]:
    return [int(s) for s in text.split(",") if s]


# -- a. Tully's model 1 ------------------------------------------------------------------------


def _outcomes(transmitted: np.ndarray, upper: np.ndarray) -> dict[str, int]:
    return {
        "T0": int((transmitted & ~upper).sum()),
        "T1": int((transmitted & upper).sum()),
        "R0": int((~transmitted & ~upper).sum()),
        "R1": int((~transmitted & upper).sum()),
    }


def _left_region(state) -> torch.Tensor:
    x = state.positions[:, 0, 0] / BOHR_ANGSTROM
    return (x > -X0) | ((x < X0) & (state.velocities[:, 0, 0] < 0))


def tully_engine(b: int, device: torch.device) -> tuple[int, dict[str, int]]:
    """B trajectories in one batch: (trajectory steps taken, outcome counts)."""
    model = TullyModel("simple")
    v0 = K / 2000.0
    config = SurfaceHoppingConfig(
        dt=STEP_BOHR / v0 * AU_TIME_FS, n_substeps=1, algorithm="fssh", max_energy_drift=1.0
    )
    positions = torch.zeros(b, 1, 3, dtype=torch.float64, device=device)
    positions[:, 0, 0] = X0 * BOHR_ANGSTROM
    velocities = torch.zeros_like(positions)
    velocities[:, 0, 0] = v0 * AU_VELOCITY_A_PER_FS
    state = initial_state(
        model,
        positions,
        velocities,
        torch.full((1,), model.mass_amu, dtype=torch.float64, device=device),
        active=torch.zeros(b, dtype=torch.int64, device=device),
        seeds=trajectory_seeds(0, torch.arange(b, device=device)),
        config=config,
    )
    state = run(state, model, config, TULLY_MAX_STEPS, stop=_left_region)
    transmitted = (state.positions[:, 0, 0] > 0).cpu().numpy()
    return int(state.step.sum()), _outcomes(transmitted, (state.active == 1).cpu().numpy())


def tully_mudslide(b: int) -> tuple[int, dict[str, int]]:
    """B mudslide trajectories one after the other: (steps taken, outcome counts)."""
    import mudslide
    from mudslide.models import TullySimpleAvoidedCrossing

    model = TullySimpleAvoidedCrossing()
    v0 = K / 2000.0
    steps, transmitted, upper = 0, [], []
    for i in range(b):
        traj = mudslide.SurfaceHoppingMD(
            model,
            [X0],
            [v0],
            0,
            dt=STEP_BOHR / v0,
            bounds=[[X0], [-X0]],
            max_steps=TULLY_MAX_STEPS,
            electronic_integration="exp",
            hopping_method="instantaneous",
            seed_sequence=i,
            trace_every=TULLY_MAX_STEPS + 1,
        )
        traj.simulate()
        steps += traj.nsteps
        transmitted.append(traj.position[0] > 0)
        upper.append(traj.state == 1)
    return steps, _outcomes(np.array(transmitted), np.array(upper))


def _probabilities(counts: dict[str, int]) -> str:
    n = sum(counts.values())
    parts = []
    for key in ("T0", "T1"):
        p = counts[key] / n
        parts.append(f"{key} {p:.3f}+-{math.sqrt(p * (1 - p) / n):.3f}")
    return ", ".join(parts) + f" ({n} traj.)"


def bench_tully(args, device, sync) -> list[dict]:
    try:
        import mudslide

        mudslide_version = mudslide.__version__
    except ImportError:
        mudslide_version = None
        print("mudslide is not installed (pip install mudslide): its column is skipped")
    print(
        f"\na. Tully model 1, k = {K:g} au, FSSH, dt = {STEP_BOHR / (K / 2000):g} au, one "
        f"electronic exponential per step, instantaneous hops, NAC rescaling "
        f"(mudslide {mudslide_version or 'missing'}; *: a rate measured on the first "
        f"{args.loop_max} trajectories, a loop's rate does not depend on B)"
    )
    header = (
        f"{'B':>6s}{'ours traj-steps/s':>20s}{'mudslide traj-steps/s':>24s}{'ours/mudslide':>15s}"
    )
    print(header)
    rows = []
    for b in _sizes(args.tully_sizes):
        n_base = min(b, args.loop_max)
        best = {"ours": math.inf, "mudslide": math.inf}
        for _ in range(args.repeats):
            sync()
            t = time.perf_counter()
            steps, ours_counts = tully_engine(b, device)
            sync()
            best["ours"] = min(best["ours"], time.perf_counter() - t)
            if mudslide_version is not None:
                t = time.perf_counter()
                base_steps, base_counts = tully_mudslide(n_base)
                best["mudslide"] = min(best["mudslide"], time.perf_counter() - t)
        row = {
            "trajectories": b,
            "ours_steps": steps,
            "ours_seconds": best["ours"],
            "ours_traj_steps_per_s": steps / best["ours"],
            "ours_outcomes": ours_counts,
        }
        line = f"{b:6d}{row['ours_traj_steps_per_s']:20.0f}"
        if mudslide_version is not None:
            rate = base_steps / best["mudslide"]
            row |= {
                "mudslide_trajectories": n_base,
                "mudslide_steps": base_steps,
                "mudslide_seconds": best["mudslide"],
                "mudslide_traj_steps_per_s": rate,
                "mudslide_outcomes": base_counts,
                "ratio_ours_over_mudslide": row["ours_traj_steps_per_s"] / rate,
            }
            mark = "*" if n_base < b else " "
            line += f"{rate:23.0f}{mark}{row['ratio_ours_over_mudslide']:15.2f}"
        print(line)
        rows.append(row)
    last = rows[-1]
    print(f"sanity (exact quantum T0/T1 0.507/0.493): ours {_probabilities(last['ours_outcomes'])}")
    if "mudslide_outcomes" in last:
        print(f"{'mudslide':>50s} {_probabilities(last['mudslide_outcomes'])}")
    return rows


# -- b. ML potential ensemble ------------------------------------------------------------------


def _stilbene_model(args) -> tuple[MultiStateMACE, str]:
    if TRAINED.exists():
        return load_model(TRAINED), f"trained model {TRAINED.name}"
    torch.manual_seed(0)
    model = MultiStateMACE(
        elements=["H", "C"],
        n_states=2,
        r_max=5.0,
        channels=32,
        l_max=2,
        correlation=3,
        num_layers=2,
        fusion=True,
        dtype=args.dtype,
    )
    return model, (
        f"randomly initialised fusion MultiStateMACE (no {TRAINED.name}): C=32, l_max=2, "
        f"correlation 3, 2 layers, {args.dtype}"
    )


def _ml_start(b: int, temperature: float = 300.0) -> tuple[np.ndarray, np.ndarray]:
    """Displaced stilbene geometries (B, 26, 3) Angstrom and thermal velocities, Angstrom/fs."""
    atoms = trans_stilbene()
    rng = np.random.default_rng(0)
    positions = atoms.positions[None] + 0.02 * rng.normal(size=(b, len(atoms), 3))
    sigma = np.sqrt(units.kB * temperature / atoms.get_masses())[:, None] * units.fs
    return positions, sigma * rng.normal(size=(b, len(atoms), 3))


def bench_ml(args, device, sync) -> tuple[list[dict], str]:
    model, description = _stilbene_model(args)
    atoms = trans_stilbene()
    structure = MLElectronicStructure(model, atoms.numbers, device=str(device))
    options = {"algorithm": "kappa-tsh", "max_energy_drift": 100.0}
    config = SurfaceHoppingConfig(dt=0.5, **options)
    print(
        f"\nb. trans-stilbene, 26 atoms, 2 states, kappa-TSH, dt 0.5 fs: {description}; "
        f"model {structure.potential.dtype}, engine float64; loop of SurfaceHopping(ASE) + "
        f"FusionCalculator (*: measured on the first {args.loop_max} trajectories)"
    )
    print(
        f"{'B':>6s}{'steps':>6s}{'ours traj-steps/s':>20s}{'ASE loop traj-steps/s':>24s}"
        f"{'ours/loop':>11s}{'max |dx| A':>12s}"
    )
    rows = []
    for b, n_steps in zip(_sizes(args.ml_sizes), _sizes(args.ml_steps), strict=True):
        n_loop = min(b, args.loop_max)
        positions, velocities = _ml_start(b)
        state = initial_state(
            structure,
            torch.tensor(positions, device=device),
            torch.tensor(velocities, device=device),
            torch.tensor(atoms.get_masses(), device=device),
            active=torch.ones(b, dtype=torch.int64, device=device),
            seeds=trajectory_seeds(0, torch.arange(b, device=device)),
            config=config,
        )
        drivers = []
        for i in range(n_loop):
            copy = atoms.copy()
            copy.positions = positions[i]
            copy.set_velocities(velocities[i] / units.fs)
            copy.calc = FusionCalculator(model, state=1, device=str(device))
            drivers.append(
                SurfaceHopping(copy, 0.5 * units.fs, state=1, trajectory_index=i, **options)
            )
        best = {"ours": math.inf, "loop": math.inf}
        for _ in range(args.repeats):
            sync()
            t = time.perf_counter()
            state = run(state, structure, config, n_steps, final=False)
            sync()
            best["ours"] = min(best["ours"], time.perf_counter() - t)
            t = time.perf_counter()
            for dyn in drivers:
                dyn.run(n_steps)
            sync()
            best["loop"] = min(best["loop"], time.perf_counter() - t)
        ours = b * n_steps / best["ours"]
        loop = n_loop * n_steps / best["loop"]
        final = state.positions[:n_loop].cpu().numpy()
        dx = max(float(np.abs(d.atoms.positions - final[i]).max()) for i, d in enumerate(drivers))
        row = {
            "trajectories": b,
            "steps_per_measurement": n_steps,
            "ours_seconds": best["ours"],
            "ours_traj_steps_per_s": ours,
            "loop_trajectories": n_loop,
            "loop_seconds": best["loop"],
            "loop_traj_steps_per_s": loop,
            "ratio_ours_over_loop": ours / loop,
            "max_position_difference_A": dx,
        }
        mark = "*" if n_loop < b else " "
        print(f"{b:6d}{n_steps:6d}{ours:20.2f}{loop:23.2f}{mark}{ours / loop:11.2f}{dx:12.1e}")
        rows.append(row)
    return rows, description


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--dtype", default="float64", help="of the random ML model")
    ap.add_argument("--tully-sizes", default="1,64,1024")
    ap.add_argument("--ml-sizes", default="1,64", help="1024 needs ~16 GB on CPU; use a GPU")
    ap.add_argument("--ml-steps", default="4,1", help="steps per measurement, one per ML size")
    ap.add_argument("--loop-max", type=int, default=64, help="most trajectories a loop runs")
    ap.add_argument("--repeats", type=int, default=3, help="interleaved measurements; best kept")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    ap.add_argument("--skip-tully", action="store_true")
    ap.add_argument("--skip-ml", action="store_true")
    ap.add_argument("--out", default=None, help="default benchmarks/results/dynamics_<device>.json")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda was asked for, but CUDA is not available here")
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    machine = {
        "device": str(device),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "cpu": _cpu_name(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }
    print(
        f"device {machine['device']}{' (' + machine['gpu'] + ')' if machine['gpu'] else ''}, "
        f"CPU {machine['cpu']}, {machine['torch_threads']} torch threads, torch "
        f"{machine['torch']}; engine float64"
    )
    result = {"machine": machine, "settings": vars(args)}
    if not args.skip_tully:
        result["tully_model1_k20_fssh"] = bench_tully(args, device, sync)
    if not args.skip_ml:
        rows, description = bench_ml(args, device, sync)
        result["ml_stilbene"] = {"model": description, "rows": rows}
    out = Path(args.out) if args.out else RESULTS / f"dynamics_{device.type}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
