"""How hard each model pushes a bridging hydrogen back, against R3, row by row.

    HDF5_USE_FILE_LOCKING=FALSE python data/stilbene/r3/bridge_forces.py \
        data/stilbene/stilbene-r3-bridge17.h5 potentials/stilbene-r3.fff \
        potentials/stilbene-r3-partner.fff [--state 0] [--json OUT]

For frames on the way into a bridging-hydrogen stop (``bridge_frames.py``): per labelled row,
the central hydrogen (H1 or H2 of :mod:`fusionff.data.stilbene`) nearer the other central
carbon, that distance (Angstrom), and the force on it along the line to that carbon (eV/A;
negative: pushed back, away from the bridge) in the label and in each model, with the norm of
each model's force error on that hydrogen. A model that pushes back less than the label lets
trajectories into the bridge that the reference would turn around. Rows of a queue file are in
the order they finished, so each row is identified by its own geometry. Failed labels are
listed with their error.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from fusionff.data.dataset import MultiStateDataset
from fusionff.data.stilbene import C1, C2, H1, H2


def bridging_hydrogen(positions: np.ndarray) -> tuple[int, int, float]:
    """(hydrogen, the other central carbon, their distance in Angstrom) for whichever of H1-C2
    and H2-C1 is shorter."""
    x = np.asarray(positions, dtype=np.float64)
    d1 = float(np.linalg.norm(x[H1] - x[C2]))
    d2 = float(np.linalg.norm(x[H2] - x[C1]))
    return (H1, C2, d1) if d1 <= d2 else (H2, C1, d2)


def along_bridge(force: np.ndarray, positions: np.ndarray, hydrogen: int, carbon: int) -> float:
    """The component (eV/A) of ``force`` (on ``hydrogen``, shape (3,)) along the unit vector
    from the hydrogen to ``carbon``: positive pulls it into the bridge, negative pushes it back."""
    x = np.asarray(positions, dtype=np.float64)
    u = x[carbon] - x[hydrogen]
    return float(np.asarray(force, dtype=np.float64) @ (u / np.linalg.norm(u)))


def main(argv: list[str] | None = None) -> int:
    from fusionff.potential import Potential, model_tag

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("models", type=Path, nargs="+")
    parser.add_argument("--state", type=int, default=0, help="electronic state (default S0)")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    names = [model_tag(m) for m in args.models]
    potentials = {n: Potential(m, device="cpu") for n, m in zip(names, args.models, strict=True)}
    rows = []
    with MultiStateDataset.open(args.data) as ds:
        for i in range(len(ds)):
            s = ds[i]
            x = np.asarray(s.positions, dtype=np.float64)
            h, c, d = bridging_hydrogen(x)
            row = {"row": i, "hydrogen": h, "carbon": c, "distance_A": round(d, 4)}
            line = f"row {i}: H{h}->C{c} {d:.2f} A"
            if s.status != "ok":
                rows.append(row | {"status": s.status, "error": s.error})
                print(f"{line}: {s.status} ({s.error[:100]})")
                continue
            label = np.asarray(s.forces)[h, args.state]
            row["label_along_eV_per_A"] = round(along_bridge(label, x, h, c), 4)
            line += f" | R3 {row['label_along_eV_per_A']:+.2f}"
            for name, p in potentials.items():
                f = p.evaluate(s.numbers, x[None])["forces"][0].double().numpy()[args.state, h]
                row[name] = {
                    "along_eV_per_A": round(along_bridge(f, x, h, c), 4),
                    "force_error_eV_per_A": round(float(np.linalg.norm(f - label)), 4),
                }
                line += f" | {name} {row[name]['along_eV_per_A']:+.2f}"
                line += f" (|dF| {row[name]['force_error_eV_per_A']:.2f})"
            rows.append(row)
            print(line)
    if args.json:
        out = {"data": str(args.data), "state": args.state, "units": "Angstrom, eV/Angstrom"}
        args.json.write_text(json.dumps(out | {"rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
