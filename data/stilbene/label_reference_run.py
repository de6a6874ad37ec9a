"""Active learning from dynamics on the reference: label frames of a run on R1 itself.

A run with ``potential: {mopac: ...}`` (e.g. ``md/stilbene_cis_reference.yaml``) goes where
R1's S1 dynamics go, including regions the potential's own dynamics never visit (see
data/stilbene/README.md, "Dynamics on R1 itself"). Its H5MD files store energies only, so
this script takes frames every ``--stride-fs`` of every trajectory (not frame 0, which is
the potential's Wigner sample) and labels S0 and S1 at R1 with MOPAC, forces checked
against the energies (``--check-gradients``, as ``fusionff label --check-gradients``), into
a dataset next to stilbene-r1.h5. The provenance's ``sampling`` says which run, trajectory
and time each structure comes from, with stage letter "a" (active), so
``potentials/model_card.py`` reports its errors apart from the recipe's stages. Resumable.

    python data/stilbene/label_reference_run.py runs/stilbene_cis_reference
        [--out data/stilbene/stilbene-r1-al2.h5] [--stride-fs 5] [--workers 2]
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import yaml

HERE = Path(__file__).resolve().parent


def select(run: Path, stride_fs: float) -> tuple[np.ndarray, list[dict]]:
    """Atomic numbers and the frames (file, time fs, positions) every ``stride_fs``."""
    numbers, frames = None, []
    for path in sorted(run.glob("traj_*.h5md")):
        with h5py.File(path, "r") as f:
            time_fs = f["particles/molecule/position/time"][:]
            positions = f["particles/molecule/position/value"][:]
            numbers = f["particles/molecule/species"][:]
        targets = np.arange(stride_fs, time_fs[-1] + 1e-6, stride_fs)
        for t in targets:
            k = int(np.argmin(np.abs(time_fs - t)))
            frames.append(
                {"file": path.name, "time_fs": float(time_fs[k]), "positions": positions[k]}
            )
    return numbers, frames


def main(argv=None) -> int:
    sys.path.insert(0, str(HERE))
    from recipe import _Geometry, store_sampling

    from fusionff.labeling.gradient_check import GradientCheckedBackend
    from fusionff.labeling.mopac import MopacBackend
    from fusionff.labeling.runner import label

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", type=Path, help="output directory of a run on MOPAC")
    ap.add_argument("--out", type=Path, default=HERE / "stilbene-r1-al2.h5")
    ap.add_argument("--stride-fs", type=float, default=5.0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--check-gradients", type=float, default=0.05, help="eV/A; 0: off")
    ap.add_argument("--round", type=int, default=2, help="recorded in the provenance")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    config = yaml.safe_load((args.run / "config.yaml").read_text())
    if config["potential"]["kind"] != "mopac":
        print(
            f"{args.run} is not a run on MOPAC (potential {config['potential']})", file=sys.stderr
        )
        return 1
    numbers, frames = select(args.run, args.stride_fs)
    store_sampling(  # first, so that a partial file says what it holds
        args.out,
        {
            "recipe": "data/stilbene/label_reference_run.py",
            "round": args.round,
            "run": str(args.run),
            "run_config": config,
            "stride_fs": args.stride_fs,
            "gradient_check": args.check_gradients or None,
            "frames": [{"file": f["file"], "time_fs": f["time_fs"]} for f in frames],
            "source_index_stage": "a" * len(frames),
        },
    )
    backend = MopacBackend()
    if args.check_gradients:
        backend = GradientCheckedBackend(backend, tolerance=args.check_gradients)
    geometries = [_Geometry(numbers, f["positions"]) for f in frames]
    start = time.perf_counter()
    summary = label(geometries, backend, 2, args.out, workers=args.workers)
    print(
        f"{len(frames)} frames of {args.run} -> {args.out} in "
        f"{time.perf_counter() - start:.0f} s: {summary}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
