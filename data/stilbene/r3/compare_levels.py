"""R3 against R2 on the same structures, and the R2 potential as a zero-shot R3 model.

    OMP_NUM_THREADS=1 python data/stilbene/r3/compare_levels.py \\
        data/stilbene/r3/transfer.xyz data/stilbene/stilbene-r3-transfer.h5 \\
        --model potentials/stilbene-r2-adiabatic.fff --out data/stilbene/r3/compare-levels.json

Every labelled row of the R3 file came from an R2 structure (``transfer.xyz``'s ``r2_source``,
"file:structureK", K the row in that file). For each state it reports how far the two levels
are apart where it matters to a potential fitted to one and used for the other:

- energies relative to each level's own mean over the compared structures (the absolute
  energies of the two basis sets differ by a constant of about 160 eV that no model needs to
  learn): the mean absolute difference of these relative energies, per state;
- forces: the mean absolute difference per component (eV/Angstrom), per state;
- the S1-S0 gap: mean difference (R3 - R2) and mean absolute difference, overall and where the
  R2 gap is below 1 eV;
- the couplings: the mean |cosine| between the two levels' S0-S1 coupling vectors (the sign of
  a coupling is a convention) and the median ratio of their norms.

With ``--model``, the same for the R2 potential's predictions against the R3 labels (its
energies also taken relative to their mean): what a fine-tuned R3 model has to beat. Units:
eV, eV/Angstrom, 1/Angstrom.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from ase.io import read

from fusionff.data.dataset import MultiStateDataset


def read_rows(path: str) -> dict[int, object]:
    with MultiStateDataset.open(path) as ds:
        return {i: ds[i] for i in range(len(ds))}


def level_differences(
    e_a: np.ndarray, e_b: np.ndarray, f_a: np.ndarray, f_b: np.ndarray, gap_ref: np.ndarray
) -> dict:
    """a against b: energies (M, S) eV, forces (M, S, N, 3) eV/A, gap_ref (M,) for the masks."""
    rel_a = e_a - e_a.mean(axis=0)
    rel_b = e_b - e_b.mean(axis=0)
    gap_a, gap_b = e_a[:, 1] - e_a[:, 0], e_b[:, 1] - e_b[:, 0]
    near = gap_ref < 1.0
    out = {
        "n": int(len(e_a)),
        "relative_energy_mad_eV": [float(np.abs(rel_a - rel_b)[:, s].mean()) for s in range(2)],
        "force_mad_eV_per_A": [float(np.abs(f_a - f_b)[:, s].mean()) for s in range(2)],
        "gap_mean_difference_eV": float((gap_a - gap_b).mean()),
        "gap_mad_eV": float(np.abs(gap_a - gap_b).mean()),
        "n_gap_below_1eV": int(near.sum()),
    }
    if near.any():
        out["gap_mad_below_1eV_eV"] = float(np.abs(gap_a - gap_b)[near].mean())
        out["gap_mean_difference_below_1eV_eV"] = float((gap_a - gap_b)[near].mean())
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("queue", type=Path, help="transfer.xyz (the R3 queue's input)")
    parser.add_argument("r3", type=Path, help="the R3 labels of that queue")
    parser.add_argument("--model", type=Path, help="an R2 potential (.fff) to score on R3")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)

    frames = read(args.queue, ":")
    r3_rows = read_rows(str(args.r3))
    sources: dict[str, dict[int, object]] = {}
    pairs = []
    n_failed = 0
    for row in r3_rows.values():
        if row.status != "ok" or row.energies is None or row.forces is None:
            n_failed += 1
            continue
        frame = frames[int(row.meta["source_index"])]
        path, _, k = str(frame.info["r2_source"]).rpartition(":")
        if path not in sources:
            sources[path] = read_rows(path)
        r2 = sources[path][int(k.removeprefix("structure"))]
        if np.abs(r2.positions - row.positions).max() > 1e-4:
            raise ValueError(f"{args.r3}: {frame.info['r2_source']} is not the labelled geometry")
        pairs.append((row, r2))
    if not pairs:
        raise SystemExit(f"{args.r3}: no labelled structure yet")
    e3 = np.array([a.energies for a, _ in pairs])
    e2 = np.array([b.energies for _, b in pairs])
    f3 = np.array([a.forces.transpose(1, 0, 2) for a, _ in pairs])  # (M, S, N, 3)
    f2 = np.array([b.forces.transpose(1, 0, 2) for _, b in pairs])
    gap2 = e2[:, 1] - e2[:, 0]
    result = {
        "r3_file": str(args.r3),
        "n_rows": len(r3_rows),
        "n_failed": n_failed,
        "absolute_offset_eV": [float((e3 - e2)[:, s].mean()) for s in range(2)],
        "r3_vs_r2_labels": level_differences(e3, e2, f3, f2, gap2),
    }
    cosines, ratios = [], []
    for a, b in pairs:
        if a.nacs is None or b.nacs is None:
            continue
        u, v = a.nacs[:, 0, 1].ravel(), b.nacs[:, 0, 1].ravel()
        cosines.append(abs(u @ v) / (np.linalg.norm(u) * np.linalg.norm(v)))
        ratios.append(np.linalg.norm(u) / np.linalg.norm(v))
    if cosines:
        result["coupling_abs_cosine_mean"] = float(np.mean(cosines))
        result["coupling_norm_ratio_median"] = float(np.median(ratios))
    if args.model is not None:
        from fusionff.potential import Potential

        potential = Potential(str(args.model), device="cpu")
        preds = potential.evaluate_structures(
            [a.numbers for a, _ in pairs], [a.positions for a, _ in pairs]
        )
        em = np.array([p["energies"] for p in preds])
        fm = np.array([p["forces"] for p in preds])  # (M, S, N, 3)
        result["model"] = str(args.model)
        result["model_vs_r3_labels"] = level_differences(em, e3, fm, f3, gap2)
        result["model_vs_r2_labels"] = level_differences(em, e2, fm, f2, gap2)
    text = json.dumps(result, indent=1)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
