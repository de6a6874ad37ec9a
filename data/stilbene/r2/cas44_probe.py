"""Probe: SA-2-CASSCF(4,4)/STO-3G with the migrating C-H bond in the active space, where R2's
CAS(2,2) fails on the hydrogen channel (section "R2's own dynamics on the hydrogen channel").

Active orbitals from RHF: the C=C pi and pi* (largest :func:`pi_weight` on the central carbons
among HOMO-2..HOMO and LUMO..LUMO+2, as R2 picks them) and the occupied and virtual orbitals
with the largest share on the migrating hydrogen's 1s (sigma and sigma* of its C-H bond);
RASSCF optimises them. For each geometry: energies of S0 and S1 (eV), their gradients (the
cost of a label without couplings), the natural occupations and the time. Geometries: the cis
Franck-Condon point (against R2's gap there), and hydrogen-channel frames where CAS(2,2)
passes (1.55 A) and fails (1.53 A) in the direct R2 run, an active-learning frame whose label
failed the guard (1.43 A), and two frames of the built approach at 1.50 A, one failed, one
passed. A one-off measurement; results in cas44_probe.json.

    python data/stilbene/r2/cas44_probe.py WORKDIR
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import h5py
import numpy as np
from ase.data import chemical_symbols
from ase.io import read

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from cas66_probe import molcas  # noqa: E402

from fusionff.data.dataset import MultiStateDataset  # noqa: E402
from fusionff.labeling.molcas import (  # noqa: E402
    HARTREE_TO_EV,
    MolcasError,
    parse_log,
    pi_weight,
)

C1, C2 = 0, 13
OWN = {1: C1, 14: C2}  # each central hydrogen and its own carbon (0-based)
HEAD = "&GATEWAY\n Coord = g.xyz\n Basis = STO-3G\n Group = NoSym\n&SEWARD\n"
N_OCC = 48  # doubly occupied RHF orbitals of C14H12
RAS = (
    "&RASSCF\n Spin = 1\n Nactel = 4 0 0\n Inactive = 46\n Ras2 = 4\n CIRoot = 2 2 1\n"
    " Thrs = 1.0e-10 1.0e-6 1.0e-6\n MaxIter = 200\n FileOrb = start.orb\n"
)
GRADIENTS = "&ALASKA\n Root = 1\n&ALASKA\n Root = 2\n"


def geometries() -> dict[str, tuple[np.ndarray, float | None]]:
    """name -> (positions in Angstrom, R2's CAS(2,2) gap there in eV or None where it failed)."""
    checks = json.loads((HERE / "model_check.json").read_text())
    cis_gap = checks["stilbene-r2-adiabatic"]["reference"]["gap_at_cis_eV"]
    out = {"cis_FC": (read(HERE / "cis-r2.xyz").positions, cis_gap)}
    with h5py.File("runs/stilbene_r2_hmig_direct/traj_00002.h5md", "r") as f:
        x = f["particles/molecule/position/value"][:]
        e = f["observables/energies/value"][:]
    out["direct_1.55A_cas22_ok"] = (x[-2], float(e[-2, 1] - e[-2, 0]))
    out["direct_1.53A_cas22_failed"] = (x[-1], None)
    out["al12_frame1_cas22_failed"] = (read(HERE / "al12.xyz", 1).positions, None)
    hmig = read(HERE / "hmig.xyz", ":")
    with MultiStateDataset.open(HERE.parent / "stilbene-r2-hmig.h5") as labels:
        for row in (26, 30):  # built at 1.50 A: CAS(2,2) failed, and passed
            label = labels[row]
            gap = float(label.energies[1] - label.energies[0]) if label.status == "ok" else None
            out[f"hmig_row{row}_1.50A_cas22_{'ok' if gap else 'failed'}"] = (
                hmig[row].positions,
                gap,
            )
    return out


def migrating(positions: np.ndarray) -> int:
    """The central hydrogen nearer to the other central carbon."""
    d = {h: np.linalg.norm(positions[h] - positions[C2 if c == C1 else C1]) for h, c in OWN.items()}
    return min(d, key=d.get)


def alter(order: list[int]) -> str:
    """An ``Alter`` line moving orbitals ``order`` (0-based) into slots 46..49 (0-based)."""
    current, swaps = list(range(max(order) + 60)), []
    for slot, k in zip(range(46, 50), order, strict=True):
        i = current.index(k)
        if i != slot:
            swaps.append(f"1 {i + 1} {slot + 1}")
            current[i], current[slot] = current[slot], current[i]
    return f" Alter = {len(swaps)}; " + "; ".join(swaps) + "\n" if swaps else ""


def probe(root: Path, name: str, positions: np.ndarray, numbers: np.ndarray) -> dict:
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    rows = zip(numbers, positions, strict=True)
    xyz = "".join(f"{chemical_symbols[a]} {x:.10f} {y:.10f} {z:.10f}\n" for a, (x, y, z) in rows)
    (folder / "g.xyz").write_text(f"{len(numbers)}\n\n{xyz}")
    _, scf_seconds = molcas(folder, HEAD + "&SCF\n")
    with h5py.File(folder / "job.scf.h5") as f:
        n = int(np.asarray(f.attrs["NBAS"]).sum())
        vectors = np.asarray(f["MO_VECTORS"]).reshape(n, n)
        ids = np.asarray(f["BASIS_FUNCTION_IDS"])
    h = migrating(positions)
    pi = [pi_weight(vectors[k], ids, positions, (C1, C2)) for k in range(n)]
    on_h = np.flatnonzero(ids[:, 0] == h + 1)
    h_share = [float(np.sum(vectors[k, on_h] ** 2) / (vectors[k] @ vectors[k])) for k in range(n)]
    occ_pi = max(range(N_OCC - 3, N_OCC), key=lambda k: pi[k])
    vir_pi = max(range(N_OCC, N_OCC + 3), key=lambda k: pi[k])
    occ_s = max((k for k in range(N_OCC) if k != occ_pi), key=lambda k: h_share[k])
    vir_s = max((k for k in range(N_OCC, n) if k != vir_pi), key=lambda k: h_share[k])
    shutil.copyfile(folder / "job.ScfOrb", folder / "start.orb")
    log, seconds = molcas(
        folder, HEAD + RAS + alter(sorted([occ_pi, occ_s]) + [vir_pi, vir_s]) + GRADIENTS
    )
    out = {
        "hydrogen": h,
        "H_to_other_carbon_A": float(
            np.linalg.norm(positions[h] - positions[C2 if OWN[h] == C1 else C1])
        ),
        "rhf_orbitals_chosen": {"pi": occ_pi, "pi*": vir_pi, "sigma_CH": occ_s, "sigma*_CH": vir_s},
        "sigma_CH_H_share": [round(h_share[occ_s], 3), round(h_share[vir_s], 3)],
        "seconds": round(scf_seconds + seconds, 1),
    }
    try:
        energies, _, _ = parse_log(log, len(numbers), 2, False)
    except MolcasError as exc:
        out["error"] = str(exc)[:300]
        return out
    with h5py.File(folder / "job.rasscf.h5") as f:
        occupations = np.asarray(f["MO_OCCUPATIONS"])[46:50]
        natural = np.asarray(f["MO_VECTORS"]).reshape(n, n)[46:50]
    out.update(
        E_eV=(energies * HARTREE_TO_EV).tolist(),
        gap_eV=float((energies[1] - energies[0]) * HARTREE_TO_EV),
        natural_occupations=np.round(occupations, 4).tolist(),
        active_pi_weight=[round(pi_weight(c, ids, positions, (C1, C2)), 3) for c in natural],
        active_H_share=[round(float(np.sum(c[on_h] ** 2) / (c @ c)), 3) for c in natural],
    )
    return out


def main() -> int:
    root, results = Path(sys.argv[1]), {}
    numbers = read(HERE / "cis-r2.xyz").numbers
    for name, (positions, cas22_gap) in geometries().items():
        results[name] = {"cas22_gap_eV": cas22_gap, **probe(root, name, positions, numbers)}
        print(name, json.dumps(results[name]), flush=True)
    (HERE / "cas44_probe.json").write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
