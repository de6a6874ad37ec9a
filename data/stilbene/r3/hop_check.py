"""Are the states as close at R3 where the ML trajectories hop as the models say?

    OMP_NUM_THREADS=1 HDF5_USE_FILE_LOCKING=FALSE python data/stilbene/r3/hop_check.py \\
        data/stilbene/r3/hops4.xyz data/stilbene/stilbene-r3-hops4.h5 \\
        --model potentials/stilbene-r3-c12.fff potentials/stilbene-r3.fff \\
        --out data/stilbene/r3/hop-check-snapshot-8.json

The queue holds the frame of every accepted hop of ML surface-hopping runs
(``python -m fusionff.analysis.selection RUN QUEUE --hops``), each within ``write_every``
steps of its hop; the labels are R3 at those geometries. For every labelled row it prints the
trajectory and hop time, the C(ipso)-C=C-C(ipso) dihedral and the central carbons' angle sums
(degrees; 360 planar), the S1-S0 gap the run saw (the committee's, from the queue file), the
gap of the given model(s) now (their mean: the same committee gives the run's gap back, a
check), the R3 gap and the model's error on it (model - R3), and the norm of R3's S0-S1
coupling vector (1/Angstrom) where it was labelled. Then the mean and mean absolute gap error,
and how many R3 gaps lie below 0.5 and 1 eV. A model whose gap is too small where it hops
hops too early (kappa-TSH hops only below ``kappa_gap_threshold``, with a probability that
grows as the gap's curvature does). Units: eV, degrees, 1/Angstrom.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from ase.io import read

from fusionff.analysis.dihedral import (
    angle_sum,
    central_neighbours,
    detect_stilbene_dihedral,
    dihedral_degrees,
    guess_bonds,
)
from fusionff.data.dataset import MultiStateDataset


def model_gaps(models: list[str], numbers: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """(K,) S1 - S0 of the mean of ``models`` at positions (K, N, 3) Angstrom, eV."""
    from fusionff.potential import Potential

    potential = Potential(models if len(models) > 1 else models[0], device="cpu")
    energies = potential.evaluate(numbers, positions)["energies"].double().numpy()
    return energies[:, 1] - energies[:, 0]


def central_atoms(path: str):
    """The dihedral (ipso, C, C, ipso) and the central carbons' neighbours of the molecule in
    ``path`` (a planar reference: bonds guessed from a distorted frame can fail)."""
    from ase.data import chemical_symbols

    atoms = read(path)
    elements = [chemical_symbols[z] for z in atoms.numbers]
    bonds = guess_bonds(elements, atoms.positions)
    dihedral = detect_stilbene_dihedral(elements, atoms.positions, bonds)
    return dihedral, central_neighbours(elements, atoms.positions, dihedral, bonds)


def geometry(positions: np.ndarray, dihedral, neighbours) -> tuple[float, float, float]:
    """|dihedral| C(ipso)-C=C-C(ipso) and the two central carbons' angle sums, degrees."""
    angle = abs(float(dihedral_degrees(positions[list(dihedral)])[0]))
    sums = [
        float(angle_sum(positions, centre, around))
        for centre, around in zip(dihedral[1:3], neighbours, strict=True)
    ]
    return angle, sums[0], sums[1]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("queue", help="the hop frames (extended XYZ from selection --hops)")
    parser.add_argument("labels", help="their R3 labels (HDF5, rows in queue order)")
    parser.add_argument("--model", nargs="+", required=True, help="model file(s); several: mean")
    parser.add_argument("--out", type=Path, help="also write the rows and summary as JSON")
    parser.add_argument(
        "--reference",
        default="data/stilbene/r2/cis-6-31g.xyz",
        help="the molecule whose bonds name the dihedral's atoms (same atom order)",
    )
    args = parser.parse_args(argv)
    frames = read(args.queue, ":")
    with MultiStateDataset.open(args.labels) as ds:
        entries = [ds[i] for i in range(len(ds))]
    rows = []
    atoms = central_atoms(args.reference)
    labelled = [e for e in entries if e.status == "ok"]
    if not labelled:
        raise SystemExit(f"{args.labels}: no labelled rows yet")
    positions = np.array([e.positions for e in labelled])
    gaps_now = model_gaps(args.model, labelled[0].numbers, positions)
    for e, gap_now in zip(labelled, gaps_now, strict=True):
        source = int(e.meta["source_index"])
        info = frames[source].info
        dihedral, sum_a, sum_b = geometry(e.positions, *atoms)
        r3_gap = float(e.energies[1] - e.energies[0])
        nac = None if e.nacs is None else float(np.linalg.norm(e.nacs[:, 0, 1]))
        rows.append(
            {
                "row": source,
                "run": info.get("run"),
                "trajectory": int(info["trajectory"]),
                "time_fs": float(info["time_fs"]),
                "dihedral_deg": dihedral,
                "angle_sums_deg": [sum_a, sum_b],
                "run_gap_ev": float(info["model_gap_ev"]),
                "model_gap_ev": float(gap_now),
                "r3_gap_ev": r3_gap,
                "gap_error_ev": float(gap_now) - r3_gap,
                "r3_coupling_norm_per_A": nac,
            }
        )
    errors = np.array([r["gap_error_ev"] for r in rows])
    r3 = np.array([r["r3_gap_ev"] for r in rows])
    summary = {
        "n_labelled": len(rows),
        "n_failed": sum(e.status != "ok" for e in entries),
        "gap_error_mean_ev": float(errors.mean()),
        "gap_error_mae_ev": float(np.abs(errors).mean()),
        "r3_gap_range_ev": [float(r3.min()), float(r3.max())],
        "r3_gap_median_ev": float(np.median(r3)),
        "r3_gap_below_0.5_ev": int((r3 < 0.5).sum()),
        "r3_gap_below_1_ev": int((r3 < 1.0).sum()),
        "models": args.model,
    }
    print(
        f"{'traj':>5} {'t/fs':>7} {'|dih|':>6} {'sums':>12} {'run gap':>8} {'model':>7} "
        f"{'R3 gap':>7} {'error':>7} {'|d01|':>6}"
    )
    for r in rows:
        nac = "-" if r["r3_coupling_norm_per_A"] is None else f"{r['r3_coupling_norm_per_A']:.2f}"
        sums = "/".join(f"{s:.0f}" for s in r["angle_sums_deg"])
        print(
            f"{r['trajectory']:>5} {r['time_fs']:>7.1f} {r['dihedral_deg']:>6.1f} {sums:>12} "
            f"{r['run_gap_ev']:>8.3f} {r['model_gap_ev']:>7.3f} {r['r3_gap_ev']:>7.3f} "
            f"{r['gap_error_ev']:>+7.3f} {nac:>6}"
        )
    print(json.dumps(summary, indent=1))
    if args.out:
        args.out.write_text(json.dumps({"summary": summary, "rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
