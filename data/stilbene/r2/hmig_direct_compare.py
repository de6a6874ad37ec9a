"""Direct R2 against the potential on the hydrogen-migration starts (``hmig-direct-starts.xyz``).

For each trajectory of ``runs/stilbene_r2_hmig_direct`` (md/stilbene_r2_hmig_direct.yaml) and
the potential's trajectory it started from (same positions and velocities at t = 0): the
migrating hydrogen's distance to the other central carbon (Angstrom) over time, its minimum,
and whether the run left R2's domain (below 1.45 A). Writes ``hmig-direct-compare.json``.

    python data/stilbene/r2/hmig_direct_compare.py
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
from ase.io import read

HERE = Path(__file__).resolve().parent
DIRECT = Path("runs/stilbene_r2_hmig_direct")
OTHER_CARBON = {1: 13, 14: 0}


def distances(path: Path, hydrogen: int, t0: float = 0.0, t1: float = np.inf):
    with h5py.File(path, "r") as f:
        x = f["particles/molecule/position/value"][:]
        t = f["particles/molecule/position/time"][:]
        e = f["observables/energies/value"][:]
        s = f["observables/active_state/value"][:]
        etot = f["observables/total_energy/value"][:]
    keep = (t >= t0 - 1e-9) & (t <= t1 + 1e-9)
    d = np.linalg.norm(x[keep, hydrogen] - x[keep, OTHER_CARBON[hydrogen]], axis=1)
    return t[keep] - t0, d, e[keep], s[keep], etot[keep]


def status(run: Path, index: int) -> str:
    """The trajectory's final status in the run's summary.json ("running" without one)."""
    summary = run / "summary.json"
    if not summary.exists():
        return "running"
    return json.loads(summary.read_text())["trajectories"][index]["status"]


def main() -> None:
    starts = read(HERE / "hmig-direct-starts.xyz", ":")
    rows = []
    for i, start in enumerate(starts):
        info = start.info
        h = int(info["hydrogen"])
        td, dd, ed, sd, etd = distances(DIRECT / f"traj_{i:05d}.h5md", h)
        span = float(td[-1]) if len(td) else 0.0
        gaps = ed[:, 1] - ed[:, 0]
        finite = np.isfinite(gaps)
        ml = Path(info["run"]) / f"traj_{int(info['trajectory']):05d}.h5md"
        tm, dm, em, _, _ = distances(ml, h, float(info["time_fs"]), float(info["time_fs"]) + span)
        row = {
            "start": f"{info['run']} trajectory {info['trajectory']} at {info['time_fs']:.1f} fs",
            "hydrogen": h,
            "direct_fs": span,
            "direct_min_A": float(dd.min()),
            "direct_min_at_fs": float(td[dd.argmin()]),
            "direct_out_of_domain": bool(dd.min() < 1.45),
            "direct_final_A": float(dd[-1]),
            "direct_last_gap_eV": float(gaps[finite][-1]),
            "direct_gap_eV_at_min": float(gaps[dd.argmin()]),
            "direct_total_energy_drift_eV": float(np.ptp(etd[np.isfinite(etd)])),
            "direct_active_states": sorted({int(v) for v in sd}),
            # a run made before status potential-failed existed says blew-up where R2 failed
            "direct_status": "potential-failed" if not finite[-1] else status(DIRECT, i),
            "potential_min_A_same_span": float(dm.min()),
            "potential_min_at_fs": float(tm[dm.argmin()]),
            "potential_exit_fs": float(info["potential_exit_fs"]) - float(info["time_fs"]),
            "distance_every_2fs": {
                "t_fs": [float(v) for v in td[::4]],
                "direct_A": [round(float(v), 3) for v in dd[::4]],
                "potential_A": [  # None after the potential's trajectory stopped
                    round(float(v), 3) if t <= tm[-1] + 1e-9 else None
                    for t, v in zip(td[::4], np.interp(td[::4], tm, dm), strict=True)
                ],
            },
        }
        rows.append(row)
        print(
            f"{row['start']}: direct {span:.1f} fs, min {row['direct_min_A']:.2f} A at "
            f"{row['direct_min_at_fs']:.1f} fs, final {row['direct_final_A']:.2f} A, "
            f"{row['direct_status']} (last gap {row['direct_last_gap_eV']:.2f} eV); potential "
            f"min {row['potential_min_A_same_span']:.2f} A at {row['potential_min_at_fs']:.1f} "
            f"fs, leaves the domain at {row['potential_exit_fs']:.1f} fs"
        )
    (HERE / "hmig-direct-compare.json").write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
