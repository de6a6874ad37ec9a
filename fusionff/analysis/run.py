"""Reading an ensemble run directory: the summary and every trajectory's H5MD observables.

The layout written by the ensemble runner (all of this module's knowledge of it)::

    <run_dir>/topology.pdb | topology.xyz      the molecule, atom order as in the trajectories
    <run_dir>/summary.json                     {"config", "trajectories", ...}
    <run_dir>/traj_00000.h5md, ...             H5MD 1.1, one file per trajectory

(as written by :mod:`fusionff.dynamics.runner`). Each summary entry has ``index``, ``seed``,
``initial_state``, ``final_state``, ``status``, ``hops`` [{time_fs, step, from, to}],
``n_frustrated``, ``final_time_fs``, optionally ``frustrated_hops`` (same fields), ``flag`` and
``flag_time_fs`` (why and when, fs, the run flagged it; runs from before 2026-12-05 have only
``flag``) and ``file`` (default ``traj_<index:05d>.h5md``). The summary alone
(:func:`read_records`) is enough for hop statistics and first passages, so a run's
``summary.json`` kept without its trajectory files can still be pooled.
The number of states is the summary's ``n_states`` when given, else the width of the
trajectories' energies; the time step ``dt_fs``, else ``config.dynamics.dt``.

Each trajectory file holds ``particles/<group>/position/{step, time, value}`` (Angstrom, fs;
readable by MDAnalysis) and per-frame observables ``observables/<name>/{step, time, value}``
for ``active_state`` (n,), ``energies`` (n, S) eV, ``populations`` (n, S), ``kinetic_energy``
(n,) and ``total_energy`` (n,) eV, read here with h5py, and the attributes ``flag`` and
``flag_time`` of ``parameters`` (why and when, fs, a committee run flagged the trajectory;
absent when it did not). Trajectories whose status is in :data:`FAILED_STATUSES` are excluded
from statistics unless asked for; they are always counted.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

STATUSES = (
    "ok",
    "stopped",
    "time-limit",
    "energy-drift",
    "blew-up",
    "committee-spread",
    "state-order",
    "out-of-domain",
    "potential-failed",
)
"""Statuses a trajectory may end with (the runner's vocabulary: "ok" ran to the time limit
without stop criteria, "stopped" met them, "time-limit" did not meet them in time,
"committee-spread" was stopped where its committee disagreed beyond the run's limits,
"state-order" where its adiabatic energies came out of order, ``dynamics.max_state_inversion``,
"out-of-domain" where its geometry left the reference's domain, ``dynamics.domain``,
"potential-failed" where the potential gave no finite energies, e.g. a failed reference
calculation)."""
FAILED_STATUSES = frozenset(STATUSES) - {"ok", "stopped", "time-limit"}
"""Statuses whose trajectories are excluded from statistics by default."""
TOPOLOGY_NAMES = ("topology.pdb", "topology.xyz")
LENGTH_UNITS = {"Angstrom": 1.0, "angstrom": 1.0, "A": 1.0, "nm": 10.0, "pm": 0.01}
"""H5MD length units and their factor to Angstrom."""
TIME_UNITS = {"fs": 1.0, "ps": 1000.0}
"""H5MD time units and their factor to fs."""
OBSERVABLES = ("active_state", "energies", "populations", "kinetic_energy", "total_energy")


@dataclass(frozen=True)
class Hop:
    """One accepted hop: at ``time_fs`` (step ``step``) from state ``source`` to ``target``."""

    time_fs: float
    step: int
    source: int
    target: int


@dataclass(kw_only=True)
class TrajectoryRecord:
    """One trajectory as its run's summary entry records it, without frames: hops (times in
    fs), status, final time fs, and the flag."""

    index: int
    seed: int | None
    initial_state: int
    final_state: int
    status: str
    hops: list[Hop]
    n_frustrated: int
    frustrated_hops: list[Hop] | None
    """The frustrated attempts when the summary lists them (the runner does), else None."""
    final_time_fs: float
    flag: str | None = None
    """Why the run flagged the trajectory (its committee spread), or None."""
    flag_time_fs: float | None = None
    """When it did, fs, or None."""

    @property
    def failed(self) -> bool:
        return self.status in FAILED_STATUSES


@dataclass(kw_only=True)
class Trajectory(TrajectoryRecord):
    """One trajectory: its summary entry and its per-frame observables.

    ``time`` (n,) fs and ``step`` (n,) are the observable frames; ``active_state`` (n,) int,
    ``energies`` (n, S) eV, ``populations`` (n, S) electronic |c|^2, ``kinetic_energy`` and
    ``total_energy`` (n,) eV.
    """

    path: Path
    time: np.ndarray
    step: np.ndarray
    active_state: np.ndarray
    energies: np.ndarray
    populations: np.ndarray
    kinetic_energy: np.ndarray
    total_energy: np.ndarray


@dataclass
class Run:
    """An ensemble run: ``trajectories`` are those analysed, ``excluded`` those left out."""

    directory: Path
    topology: Path
    config: dict
    n_states: int
    dt_fs: float | None
    trajectories: list[Trajectory]
    excluded: list[Trajectory] = field(default_factory=list)

    @property
    def status_counts(self) -> dict[str, int]:
        """Number of trajectories by status, analysed and excluded together."""
        counts = Counter(t.status for t in self.trajectories + self.excluded)
        return {s: counts.get(s, 0) for s in STATUSES}

    @property
    def scattering(self) -> bool:
        """A scattering run (Tully's models: a particle crossing an interaction region; the
        config's potential has ``tully`` set (the runner also writes ``kind: tully``), or the
        run stops at ``stop.region_bohr``): its final states are transmission and reflection,
        not the end of a decay."""
        potential = self.config.get("potential")
        stop = self.config.get("stop") or {}
        tully = isinstance(potential, dict) and potential.get("tully") is not None
        return tully or stop.get("region_bohr") is not None


def find_topology(run_dir: Path) -> Path:
    """The topology file of a run directory (``topology.pdb`` preferred over ``.xyz``)."""
    for name in TOPOLOGY_NAMES:
        if (run_dir / name).is_file():
            return run_dir / name
    raise FileNotFoundError(f"{run_dir}: no topology file ({' or '.join(TOPOLOGY_NAMES)})")


def trajectory_path(run_dir: Path, index: int) -> Path:
    return run_dir / f"traj_{index:05d}.h5md"


def _require(entry: dict, key: str, where: str):
    if key not in entry:
        raise ValueError(f"{where}: missing key {key!r}")
    return entry[key]


def _unit(dataset: h5py.Dataset, known: dict[str, float], path: Path) -> float:
    unit = dataset.attrs.get("unit")
    unit = unit.decode() if isinstance(unit, bytes) else unit
    if unit not in known:
        raise ValueError(f"{path}: {dataset.name} unit {unit!r} not one of {sorted(known)}")
    return known[unit]


def _time_fs(dataset: h5py.Dataset, path: Path) -> np.ndarray:
    return dataset[()].astype(np.float64) * _unit(dataset, TIME_UNITS, path)


def _read_observables(path: Path, n_states: int) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    with h5py.File(path, "r") as f:
        if "observables" not in f:
            raise ValueError(f"{path}: no 'observables' group")
        obs = f["observables"]
        for name in OBSERVABLES:
            if name not in obs or "value" not in obs[name]:
                raise ValueError(f"{path}: missing observables/{name}/value")
            out[name] = obs[name]["value"][()]
        ref = obs["active_state"]
        for key in ("time", "step"):
            if key not in ref:
                raise ValueError(f"{path}: missing observables/active_state/{key}")
        out["time"] = _time_fs(ref["time"], path)
        out["step"] = ref["step"][()]
        attrs = f["parameters"].attrs if "parameters" in f else {}
        flag, flag_time = attrs.get("flag"), attrs.get("flag_time")
        out["flag"] = flag.decode() if isinstance(flag, bytes) else flag
        out["flag_time_fs"] = None if flag_time is None else float(flag_time)
    n = len(out["time"])
    for name in OBSERVABLES:
        expected = (n, n_states) if name in ("energies", "populations") else (n,)
        if out[name].shape != expected:
            raise ValueError(
                f"{path}: observables/{name} has shape {out[name].shape}, expected {expected}"
            )
    if n == 0:
        raise ValueError(f"{path}: no frames")
    out["active_state"] = out["active_state"].astype(np.int64)
    return out


def _hops(rows: list[dict], where: str) -> list[Hop]:
    try:
        return [
            Hop(float(h["time_fs"]), int(h["step"]), int(h["from"]), int(h["to"])) for h in rows
        ]
    except KeyError as err:
        raise ValueError(f"{where}: a hop without {err}") from None


def _entry_path(run_dir: Path, entry: dict, index: int) -> Path:
    return run_dir / entry["file"] if "file" in entry else trajectory_path(run_dir, index)


def read_record(run_dir: Path, entry: dict) -> TrajectoryRecord:
    """One trajectory from its summary ``entry`` alone. A flagged entry without
    ``flag_time_fs`` (a run from before 2026-12-05) takes the flag time from its H5MD file,
    and is refused, naming the file, when that is absent."""
    where = f"{run_dir / 'summary.json'}: trajectory {entry.get('index', '?')}"
    index = int(_require(entry, "index", where))
    status = str(_require(entry, "status", where))
    if status not in STATUSES:
        raise ValueError(f"{where}: unknown status {status!r} (known: {', '.join(STATUSES)})")
    frustrated = entry.get("frustrated_hops")
    flag, flag_time = entry.get("flag"), entry.get("flag_time_fs")
    if flag is not None and flag_time is None:
        path = _entry_path(run_dir, entry, index)
        if not path.is_file():
            raise ValueError(
                f"{where}: flagged ({flag}) without flag_time_fs in the summary, and its "
                f"trajectory file {path}, which has the time, is absent"
            )
        with h5py.File(path, "r") as f:
            flag_time = f["parameters"].attrs.get("flag_time") if "parameters" in f else None
        if flag_time is None:
            raise ValueError(f"{where}: flagged ({flag}), but {path} has no parameters/flag_time")
    return TrajectoryRecord(
        index=index,
        seed=entry.get("seed"),
        initial_state=int(_require(entry, "initial_state", where)),
        final_state=int(_require(entry, "final_state", where)),
        status=status,
        hops=_hops(_require(entry, "hops", where), where),
        n_frustrated=int(_require(entry, "n_frustrated", where)),
        frustrated_hops=None if frustrated is None else _hops(frustrated, where),
        final_time_fs=float(_require(entry, "final_time_fs", where)),
        flag=None if flag is None else str(flag),
        flag_time_fs=None if flag_time is None else float(flag_time),
    )


def read_trajectory(run_dir: Path, entry: dict, n_states: int) -> Trajectory:
    """One trajectory from its summary ``entry`` and its H5MD file (whose flag counts)."""
    where = f"{run_dir / 'summary.json'}: trajectory {entry.get('index', '?')}"
    index = int(_require(entry, "index", where))
    path = _entry_path(run_dir, entry, index)
    if not path.is_file():
        raise FileNotFoundError(f"{where}: trajectory file {path} not found")
    obs = _read_observables(path, n_states)
    record = read_record(run_dir, entry | {"flag": None})  # the flag comes from the file
    fields = {name: getattr(record, name) for name in record.__dataclass_fields__}
    return Trajectory(**(fields | {"path": path} | obs))


def _summary_entries(run_dir: Path) -> tuple[Path, dict, list[dict]]:
    summary_path = run_dir / "summary.json"
    if not summary_path.is_file():
        raise FileNotFoundError(
            f"{run_dir}: no summary.json (not a run directory, or the run has not finished)"
        )
    summary = json.loads(summary_path.read_text())
    entries = _require(summary, "trajectories", str(summary_path))
    if not entries:
        raise ValueError(f"{summary_path}: no trajectories")
    return summary_path, summary, entries


def read_records(run_dir: str | Path) -> list[TrajectoryRecord]:
    """Every trajectory of a run directory from its ``summary.json`` alone (failed ones
    included; no trajectory file is read unless a flag time is missing): what first passages
    and hop counts need, from runs whose frames were not kept."""
    run_dir = Path(run_dir)
    _, _, entries = _summary_entries(run_dir)
    return [read_record(run_dir, entry) for entry in entries]


def _n_states_of_file(path: Path) -> int:
    with h5py.File(path, "r") as f:
        if "observables/energies/value" not in f:
            raise ValueError(f"{path}: missing observables/energies/value")
        return int(f["observables/energies/value"].shape[1])


def read_run(run_dir: str | Path, include_failed: bool = False) -> Run:
    """Read a run directory. Trajectories with a status in :data:`FAILED_STATUSES` go to
    ``Run.excluded`` unless ``include_failed``."""
    run_dir = Path(run_dir)
    _, summary, entries = _summary_entries(run_dir)
    config = summary.get("config") or {}
    n_states = summary.get("n_states")
    if n_states is None:
        first = entries[0]
        path = run_dir / first.get("file", trajectory_path(run_dir, int(first["index"])).name)
        n_states = _n_states_of_file(path)
    dt_fs = summary.get("dt_fs", (config.get("dynamics") or {}).get("dt"))
    analysed, excluded = [], []
    for entry in entries:
        traj = read_trajectory(run_dir, entry, int(n_states))
        (excluded if traj.failed and not include_failed else analysed).append(traj)
    return Run(
        directory=run_dir,
        topology=find_topology(run_dir),
        config=config,
        n_states=int(n_states),
        dt_fs=None if dt_fs is None else float(dt_fs),
        trajectories=analysed,
        excluded=excluded,
    )


def read_positions(
    path: str | Path, atoms: list[int], frames: Sequence[int] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Positions of ``atoms`` in every frame of an H5MD trajectory, read in one slice, or in
    the ``frames`` (indices into the file's position frames) only, one small read each.

    Returns time (n,) fs and positions (n, len(atoms), 3) Angstrom, n the number of frames
    read. (MDAnalysis reads the same data frame by frame, copying every observable on each
    frame; that is too slow for ensembles of long trajectories.)
    """
    with h5py.File(path, "r") as f:
        if "particles" not in f or not len(f["particles"]):
            raise ValueError(f"{path}: no 'particles' group")
        groups = f["particles"]
        group = groups["molecule"] if "molecule" in groups else groups[next(iter(groups))]
        if "position" not in group:
            raise ValueError(f"{path}: no position group under {group.name}")
        position = group["position"]
        value = position["value"]
        scale = _unit(value, LENGTH_UNITS, Path(path))
        n_atoms = value.shape[1]
        if min(atoms) < 0 or max(atoms) >= n_atoms:
            raise ValueError(f"{path}: atoms {atoms} outside the file's {n_atoms} atoms")
        order = np.argsort(atoms)
        unique, inverse = np.unique(np.asarray(atoms)[order], return_inverse=True)
        time = _time_fs(position["time"], Path(path))
        if frames is None:
            block = value[:, unique.tolist(), :] * scale
        else:
            frames = [int(i) for i in frames]
            rows = [value[i, unique.tolist(), :] for i in frames]
            block = np.array(rows, dtype=value.dtype).reshape(len(frames), len(unique), 3) * scale
            time = time[frames]
    positions = np.empty((block.shape[0], len(atoms), 3))
    positions[:, order] = block[:, inverse]
    return time, positions
