"""Probe: SA-2-CASSCF(6,6)/STO-3G on the R2 seed path at 63 and 62 degrees (cost, natural
occupations, and whether the 63 -> 62 step of (2,2) remains). A one-off measurement; results
in cas66_probe.json. Active orbitals: the three highest occupied and three lowest virtual RHF
orbitals whose pi weight on the 14 carbons exceeds 0.5.

    python data/stilbene/r2/cas66_probe.py WORKDIR
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
from ase.data import chemical_symbols

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from r2_seed import path_geometry  # noqa: E402

from fusionff.data.molecules import trans_stilbene  # noqa: E402
from fusionff.labeling.molcas import (  # noqa: E402
    BOHR_TO_ANGSTROM,
    HARTREE_TO_EV,
    parse_log,
    pi_weight,
)

NUMBERS = trans_stilbene().numbers
CARBONS = tuple(int(i) for i in np.flatnonzero(NUMBERS == 6))
HEAD = "&GATEWAY\n Coord = g.xyz\n Basis = STO-3G\n Group = NoSym\n&SEWARD\n"
RAS = (
    "&RASSCF\n Spin = 1\n Nactel = 6 0 0\n Inactive = 45\n Ras2 = 6\n CIRoot = 2 2 1\n"
    " Thrs = 1.0e-10 1.0e-6 1.0e-6\n FileOrb = start.orb\n"
)
GRADIENTS = "&ALASKA\n Root = 1\n&ALASKA\n Root = 2\n"


def molcas(folder: Path, text: str) -> tuple[str, float]:
    """Run an OpenMolcas input in ``folder``; the log and the wall time, s."""
    (folder / "work").mkdir(parents=True, exist_ok=True)
    (folder / "job.input").write_text(text)
    env = dict(os.environ, MOLCAS_WORKDIR=str(folder / "work"), MOLCAS_PROJECT="job")
    env.update(MOLCAS_MEM="1000", OMP_NUM_THREADS="1")
    start = time.time()
    done = subprocess.run(
        ["/usr/bin/python3", "/usr/bin/pymolcas", "job.input"],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    (folder / "job.log").write_text(done.stdout)
    return done.stdout, time.time() - start


def alter_to_active(weights: list[float]) -> str:
    """An ``Alter`` line moving the chosen pi orbitals into positions 46-51 (1-based)."""
    occupied = [k for k in range(47, -1, -1) if weights[k] > 0.5][:3]
    virtual = [k for k in range(48, len(weights)) if weights[k] > 0.5][:3]
    current, swaps = list(range(len(weights))), []
    for slot, k in zip(range(45, 51), sorted(occupied) + virtual, strict=True):
        i = current.index(k)
        if i != slot:
            swaps.append(f"1 {i + 1} {slot + 1}")
            current[i], current[slot] = current[slot], current[i]
    return f" Alter = {len(swaps)}; " + "; ".join(swaps) + "\n" if swaps else ""


def calc(root: Path, name: str, dihedral: float, start: Path | None, results: dict):
    """Energies (eV), forces (eV/A), positions and orbital file of one path point."""
    folder, positions = root / name, path_geometry(dihedral)
    folder.mkdir(parents=True, exist_ok=True)
    rows = zip(NUMBERS, positions, strict=True)
    xyz = "".join(f"{chemical_symbols[a]} {x:.10f} {y:.10f} {z:.10f}\n" for a, (x, y, z) in rows)
    (folder / "g.xyz").write_text(f"{len(NUMBERS)}\n\n{xyz}")
    alter, seconds = "", 0.0
    if start is None:
        _, seconds = molcas(folder, HEAD + "&SCF\n")
        with h5py.File(folder / "job.scf.h5") as f:
            n = int(np.asarray(f.attrs["NBAS"]).sum())
            vectors = np.asarray(f["MO_VECTORS"]).reshape(n, n)
            ids = np.asarray(f["BASIS_FUNCTION_IDS"])
        weights = [pi_weight(vectors[k], ids, positions, CARBONS) for k in range(n)]
        alter = alter_to_active(weights)
        start = folder / "job.ScfOrb"
    shutil.copyfile(start, folder / "start.orb")
    log, more = molcas(folder, HEAD + RAS + alter + GRADIENTS)
    energies, gradients, _ = parse_log(log, len(NUMBERS), 2, False)
    with h5py.File(folder / "job.rasscf.h5") as f:
        occupations = np.asarray(f["MO_OCCUPATIONS"])[45:51]
    results[name] = {
        "dihedral": dihedral,
        "E_eV": (energies * HARTREE_TO_EV).tolist(),
        "seconds": round(seconds + more, 1),
        "occupations": np.round(occupations, 4).tolist(),
    }
    print(name, json.dumps(results[name]), flush=True)
    forces = -gradients * HARTREE_TO_EV / BOHR_TO_ANGSTROM
    return energies * HARTREE_TO_EV, forces, positions, folder / "job.RasOrb"


def main() -> int:
    root, results = Path(sys.argv[1]), {}
    e63, f63, p63, orbitals = calc(root, "p63_fresh", 63.0, None, results)
    e62, f62, p62, _ = calc(root, "p62_followed", 62.0, orbitals, results)
    predicted = [-float(np.sum(0.5 * (f62[s] + f63[s]) * (p62 - p63))) for s in range(2)]
    results["step_63_62_unpredicted_meV"] = [
        1000 * float(e62[s] - e63[s] - predicted[s]) for s in range(2)
    ]
    calc(root, "p62_fresh", 62.0, None, results)
    out = Path(__file__).with_suffix(".json")
    out.write_text(json.dumps(results, indent=1))
    print(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
