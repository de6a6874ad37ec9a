"""Label a stored R3 structure again with screens on RICD or on exact integrals, and compare.

    OMP_NUM_THREADS=1 HDF5_USE_FILE_LOCKING=FALSE python data/stilbene/r3/ricd_screening_check.py \
        data/stilbene/stilbene-r3-al1.h5 ROW ricd|exact > row-ricd.json

Starts from a copy of the R3 orbital store without the structure's own orbitals (anything
within 0.05 A RMSD), so both starts are screened as in the queue; prints one JSON line: wall
time, CPU seconds of the OpenMolcas processes, the label's meta and its largest differences
from the stored label (energies eV, forces eV/A, couplings 1/A). Results of 2026-12-04 in
ricd-screening.json (README, "Cheaper labels: screens on RICD integrals").
"""

from __future__ import annotations

import json
import resource
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from fusionff.data.dataset import MultiStateDataset
from fusionff.labeling.molcas import MolcasCasscfBackend, OrbitalStore

STORE = "data/stilbene/stilbene-r3.orbitals"


def store_without(positions: np.ndarray, folder: Path) -> Path:
    """A copy of the R3 orbital store without entries within 0.05 A RMSD of ``positions``."""
    if not folder.exists():
        folder.mkdir()
        full = OrbitalStore(STORE)
        len(full)  # loads the index
        for key, (_, stored) in full._known.items():
            if np.sqrt(np.mean(np.sum((stored - positions) ** 2, axis=1))) < 0.05:
                continue
            for suffix in (".RasOrb", ".npz"):
                shutil.copy(full.folder / f"{key}{suffix}", folder / f"{key}{suffix}")
    return folder


def main(source: str, row: int, mode: str) -> dict:
    with MultiStateDataset.open(source) as dataset:
        stored = dataset[row]
    numbers, positions = np.asarray(stored.numbers), np.asarray(stored.positions)
    store = store_without(positions, Path(f"/tmp/ricd-check-store-{row}-{mode}"))
    backend = MolcasCasscfBackend(
        (0, 13), basis="6-31G", orbital_store=str(store), both_starts=True, screen_integrals=mode
    )
    begin = time.perf_counter()
    result = backend.compute(numbers, positions, 2)
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = {
        "row": row,
        "mode": mode,
        "ok": bool(result.ok),
        "error": "" if result.ok else result.error,
        "wall_s": time.perf_counter() - begin,
        "child_cpu_s": usage.ru_utime + usage.ru_stime,
        "meta": result.meta,
    }
    if result.ok:
        out["dE_eV"] = float(np.abs(result.energies - np.asarray(stored.energies)).max())
        out["dF_eV_A"] = float(np.abs(result.forces - np.asarray(stored.forces)).max())
        out["dNAC"] = float(np.abs(result.nacs - np.asarray(stored.nacs)).max())
    return out


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    print(json.dumps(main(sys.argv[1], int(sys.argv[2]), sys.argv[3])))
