"""Probe: is the hydrogen channel of the R2 showcase an STO-3G effect?

On the round-13 showcase (runs/stilbene_cis_r2) most S1 trajectories bend a hydrogen of one
central carbon towards the other (495 of 512 come within 1.8 A, 108 are stopped at R2's domain
limit of 1.45 A), and 58 of the 96 hops happen with that hydrogen within 1.7 A. This probe takes
frames of out-of-domain trajectories on their way there and compares SA-2-CASSCF(2,2) at
STO-3G (level R2) with 6-31G (vertical gap 6.35 against 7.98 eV at cis): S0 and S1 relative to
the first frame of each trajectory (t = 0, the Franck-Condon region), the S1-S0 gap, and the
S1 force on the migrating hydrogen projected on its direction to the other central carbon
(positive: towards the bridge).

    python data/stilbene/r2/hchannel_basis_probe.py frames runs/stilbene_cis_r2 \
        data/stilbene/r2/hchannel-probe.xyz
    fusionff label data/stilbene/r2/hchannel-probe.xyz /tmp/hchannel-sto3g.h5 --backend casscf \
        --active-atoms 0 13 --no-couplings --workers 1
    fusionff label data/stilbene/r2/hchannel-probe.xyz /tmp/hchannel-631g.h5 --backend casscf \
        --active-atoms 0 13 --no-couplings --basis 6-31G --workers 1
    python data/stilbene/r2/hchannel_basis_probe.py compare data/stilbene/r2/hchannel-probe.xyz \
        /tmp/hchannel-sto3g.h5 /tmp/hchannel-631g.h5 --out data/stilbene/r2/hchannel-probe.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import h5py
import numpy as np
from ase import Atoms
from ase.io import read, write

C1, C2, H1, H2 = 0, 13, 1, 14  # central carbons and their hydrogens (0-based)
TRAJECTORIES = (29, 56)  # out-of-domain on S1 without a hop; 29 moves H1, 56 moves H2
BEFORE_EXIT_FS = (150.0, 100.0, 60.0, 40.0, 25.0, 15.0, 8.0, 3.0)


def migrating(positions: np.ndarray) -> tuple[int, int]:
    """(hydrogen, the carbon it moves towards) at the last frame: the closer pair."""
    d1 = np.linalg.norm(positions[H1] - positions[C2])
    d2 = np.linalg.norm(positions[H2] - positions[C1])
    return (H1, C2) if d1 < d2 else (H2, C1)


def frames(run_dir: Path, output: Path) -> None:
    summary = json.loads((run_dir / "summary.json").read_text())
    out = []
    for index in TRAJECTORIES:
        entry = summary["trajectories"][index]
        with h5py.File(run_dir / entry["file"], "r") as f:
            group = f["particles/molecule"]
            positions = group["position/value"][:]
            time = group["position/time"][:]
            numbers = group["species"][:] if "species" in group else None
        if numbers is None:
            numbers = read(run_dir / "topology.pdb").numbers
        hydrogen, carbon = migrating(positions[-1])
        picks = [0.0] + [time[-1] - dt for dt in BEFORE_EXIT_FS]
        for t in picks:
            k = int(np.argmin(np.abs(time - t)))
            distance = np.linalg.norm(positions[k][hydrogen] - positions[k][carbon])
            atoms = Atoms(numbers=numbers, positions=positions[k])
            atoms.info.update(
                trajectory=index,
                time_fs=float(time[k]),
                hydrogen=hydrogen,
                carbon=carbon,
                h_to_carbon=round(float(distance), 3),
            )
            out.append(atoms)
    write(output, out)
    print(f"{output}: {len(out)} frames of trajectories {TRAJECTORIES}")


def _labels(path: Path) -> list[dict | None]:
    with h5py.File(path, "r") as f:
        status = f["status"][:]
        energies = f["energies"][:]
        forces = f["forces"][:]
        offsets = f["offsets"][:]
    rows = []
    for i, s in enumerate(status):
        ok = (s.decode() if isinstance(s, bytes) else str(s)) == "ok"
        rows.append(
            {"energies": energies[i], "forces": forces[offsets[i] : offsets[i + 1]]} if ok else None
        )
    return rows


def compare(queue: Path, files: list[Path], out: Path) -> None:
    structures = read(queue, ":")
    result = {"queue": str(queue), "levels": [str(f) for f in files], "frames": []}
    labels = [_labels(f) for f in files]
    first: dict[tuple[int, int], np.ndarray] = {}
    for i, atoms in enumerate(structures):
        info = atoms.info
        hydrogen, carbon = int(info["hydrogen"]), int(info["carbon"])
        direction = atoms.positions[carbon] - atoms.positions[hydrogen]
        direction /= np.linalg.norm(direction)
        row = {
            "trajectory": int(info["trajectory"]),
            "time_fs": float(info["time_fs"]),
            "h_to_carbon": float(info["h_to_carbon"]),
        }
        for level, rows in enumerate(labels):
            if i >= len(rows):  # not labelled (yet)
                row[f"level{level}"] = "missing"
                continue
            label = rows[i]
            if label is None:
                row[f"level{level}"] = None  # failed (the file's error column says why)
                continue
            e = np.asarray(label["energies"], dtype=float)
            key = (int(info["trajectory"]), level)
            if float(info["time_fs"]) == 0.0:
                first[key] = e
            reference = first.get(key)
            row[f"level{level}"] = {
                "gap_eV": float(e[1] - e[0]),
                "relative_to_t0_eV": None if reference is None else (e - reference).tolist(),
                "s1_force_on_h_towards_carbon_eV_per_A": float(
                    label["forces"][hydrogen, 1] @ direction
                ),
            }
        result["frames"].append(row)
    out.write_text(json.dumps(result, indent=1))
    header = "traj  t/fs  H-C/A | " + " | ".join(
        f"L{k}: gap  dS0  dS1  F_H" for k in range(len(files))
    )
    print(header)
    for row in result["frames"]:
        cells = []
        for k in range(len(files)):
            r = row[f"level{k}"]
            if r is None or r == "missing":
                cells.append(f"{'failed' if r is None else 'missing':>10}           ")
                continue
            rel = r["relative_to_t0_eV"] or [float("nan")] * 2
            cells.append(
                f"{r['gap_eV']:5.2f} {rel[0]:5.2f} {rel[1]:5.2f} "
                f"{r['s1_force_on_h_towards_carbon_eV_per_A']:5.2f}"
            )
        print(
            f"{row['trajectory']:4d} {row['time_fs']:6.1f} {row['h_to_carbon']:5.2f} | "
            + " | ".join(cells)
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("frames")
    p.add_argument("run_dir", type=Path)
    p.add_argument("output", type=Path)
    p = sub.add_parser("compare")
    p.add_argument("queue", type=Path)
    p.add_argument("labels", type=Path, nargs="+")
    p.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    if args.command == "frames":
        frames(args.run_dir, args.output)
    else:
        compare(args.queue, args.labels, args.out)


if __name__ == "__main__":
    main()
