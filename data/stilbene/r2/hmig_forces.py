"""Does S1 pull the migrating hydrogen towards the other central carbon? R2 against potentials.

For every labelled structure of ``../stilbene-r2-hmig.h5`` (the hydrogen-migration approach),
the S1 force on the hydrogen nearest the other central carbon, projected on the unit vector
from that hydrogen to that carbon (eV/Angstrom; positive pulls it over, negative pushes it
back), at R2 and on each model, averaged in bands of that distance. Run from the repository
root:

    python data/stilbene/r2/hmig_forces.py MODEL.fff [...] > data/stilbene/r2/hmig-forces.txt
"""

import sys

import numpy as np
from ase import Atoms

from fusionff.calculator import FusionCalculator
from fusionff.data import stilbene as sb
from fusionff.data.dataset import MultiStateDataset

models = sys.argv[1:]
calcs = [FusionCalculator(m) for m in models]
rows = []
with MultiStateDataset.open("data/stilbene/stilbene-r2-hmig.h5") as ds:
    for s in ds:
        if s.status != "ok":
            continue
        x = s.positions
        cand = [
            (np.linalg.norm(x[sb.H1] - x[sb.C2]), sb.H1, sb.C2),
            (np.linalg.norm(x[sb.H2] - x[sb.C1]), sb.H2, sb.C1),
        ]
        d, h, c = min(cand)
        u = (x[c] - x[h]) / d
        ref = [float(s.forces[h, k] @ u) for k in range(2)]
        out = {"d": float(d), "ref": ref}
        for m, calc in zip(models, calcs, strict=True):
            a = Atoms(numbers=s.numbers, positions=x)
            a.calc = calc
            f = calc.get_property("state_forces", a)
            out[m] = [float(f[k][h] @ u) for k in range(2)]
        rows.append(out)


def _name(model: str) -> str:
    return model.split("/")[-2] if "training" in model else model.split("/")[-1]


for band in [(1.45, 1.62), (1.62, 1.75), (1.75, 1.85)]:
    sel = [r for r in rows if band[0] <= r["d"] < band[1]]
    line = f"{band}: n={len(sel)} R2 S1 pull {np.mean([r['ref'][1] for r in sel]):+.2f}"
    for m in models:
        pull = np.mean([r[m][1] for r in sel])
        mae = np.mean([abs(r[m][1] - r["ref"][1]) for r in sel])
        line += f" | {_name(m)} {pull:+.2f} (MAE {mae:.2f})"
    print(line)
