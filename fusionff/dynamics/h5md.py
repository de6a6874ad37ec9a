"""One surface-hopping trajectory as an H5MD 1.1 file (readable by MDAnalysis).

Layout (units in ``unit`` attributes)::

    h5md/                        version = [1, 1]; author/name; creator/name, version
    particles/molecule/
        box                      dimension = 3, boundary = [none, none, none] (no edges)
        species (N,)             atomic numbers;  mass (N,) amu
        position/{step, time, value (F, N, 3) Angstrom}
        velocity/{step, time, value (F, N, 3) Angstrom fs-1}
    observables/                 one row per frame, same frames as position
        active_state/value (F,) int;  energies/value (F, S) eV;  populations/value (F, S)
        kinetic_energy/value (F,) eV;  total_energy/value (F,) eV
        energy_std/value (F, S) eV;  force_std/value (F, S) eV Angstrom-1
                                 committee runs only: the committee's spread of each state's
                                 energy and its force spread (per state, the largest over
                                 atoms of the members' RMS force deviation;
                                 :mod:`fusionff.dynamics.spread`)
        dt/value (F,) ps;  the frame interval time[1] - time[0] on every row (NaN while
            there is one frame): MDAnalysis's H5MD reader takes ``Timestep.dt`` from an
            observable named ``dt``, unconverted, so it is in ps (MDAnalysis's time unit)
    parameters/hops/             one row per hop attempt: step, time (fs), from_state,
                                 to_state, frustrated (to_state = -1 where a frustrated
                                 attempt's target is not known: more than two states)
    parameters/                  attributes: trajectory index, seed, initial state; once
                                 finished: status, final state, final time; once flagged for
                                 its committee spread: flag (the reason, text) and
                                 flag_time (fs; that step is a frame)

Times are in fs (``unit`` = "fs"; MDAnalysis converts ``ts.time`` to ps). ``step`` and
``time`` of every time series are hard links to those of ``position`` (allowed by H5MD 1.1),
so all series share one set of frames. Frames and hops are buffered in memory
and appended when :meth:`TrajectoryFile.flush` opens the file; every change is a transaction
(:func:`fusionff.atomic_files.h5_transaction`: made on a copy that then replaces the file),
so a run killed at any moment leaves a complete file that :meth:`TrajectoryFile.resume`
truncates to the frames its checkpoint counted.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from fusionff import __version__
from fusionff.atomic_files import h5_transaction

FILE_WORKERS = 8
"""Threads that flush a batch's trajectory files together (:func:`in_parallel`)."""

__all__ = ["TrajectoryFile", "FRAME_SERIES", "SPREAD_SERIES", "HOP_COLUMNS", "FRAME_INTERVAL"]

GROUP = "particles/molecule"
FRAME_SERIES = {
    # name: (path, unit or None, dtype, per-frame shape given (N, S))
    "position": (f"{GROUP}/position", "Angstrom", np.float64, lambda n, s: (n, 3)),
    "velocity": (f"{GROUP}/velocity", "Angstrom fs-1", np.float64, lambda n, s: (n, 3)),
    "active_state": ("observables/active_state", None, np.int64, lambda n, s: ()),
    "energies": ("observables/energies", "eV", np.float64, lambda n, s: (s,)),
    "populations": ("observables/populations", None, np.float64, lambda n, s: (s,)),
    "kinetic_energy": ("observables/kinetic_energy", "eV", np.float64, lambda n, s: ()),
    "total_energy": ("observables/total_energy", "eV", np.float64, lambda n, s: ()),
}
SPREAD_SERIES = {
    "energy_std": ("observables/energy_std", "eV", np.float64, lambda n, s: (s,)),
    "force_std": ("observables/force_std", "eV Angstrom-1", np.float64, lambda n, s: (s,)),
}
"""Series of committee runs only (same frames as position), created with their first frame."""
FRAME_INTERVAL = "observables/dt"
"""The frame interval in ps, one row per frame (see the module docstring)."""
HOP_COLUMNS = {
    "step": (np.int64, None),
    "time": (np.float64, "fs"),
    "from_state": (np.int64, None),
    "to_state": (np.int64, None),
    "frustrated": (np.int8, None),
}


def in_parallel(calls: Sequence[Callable[[], Any]], workers: int = FILE_WORKERS) -> None:
    """Run the calls (each on its own file) on up to ``workers`` threads; the first error is
    raised once all have ended. Each file's transaction copies, syncs and renames it: the
    copying and the waits for the disk release the GIL, so flushing a batch's hundreds of
    files this way overlaps them (HDF5 itself runs one call at a time under h5py's lock)."""
    if len(calls) <= 1 or workers <= 1:
        for call in calls:
            call()
        return
    with ThreadPoolExecutor(max_workers=min(workers, len(calls))) as pool:
        futures = [pool.submit(call) for call in calls]
    for future in futures:
        future.result()


def _dataset(group: h5py.Group, name: str, shape: tuple, dtype, unit: str | None) -> None:
    row_bytes = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
    rows = max(16, min(1024, 65536 // max(row_bytes, 1)))
    ds = group.create_dataset(
        name, shape=(0, *shape), maxshape=(None, *shape), dtype=dtype, chunks=(rows, *shape)
    )
    if unit is not None:
        ds.attrs["unit"] = unit


def _append(ds: h5py.Dataset, rows: np.ndarray) -> None:
    start = ds.shape[0]
    ds.resize(start + len(rows), axis=0)
    ds[start:] = rows


def _write_frame_interval(f: h5py.File) -> None:
    """(Re)write :data:`FRAME_INTERVAL`: time[1] - time[0] of the frames, in ps, on every row
    (NaN with fewer than two frames); created, with step/time linked to position's, if absent
    (files written before it existed)."""
    position = f[FRAME_SERIES["position"][0]]
    if FRAME_INTERVAL not in f:
        group = f.create_group(FRAME_INTERVAL)
        _dataset(group, "value", (), np.float64, "ps")
        group["step"], group["time"] = position["step"], position["time"]
    times = position["time"][:2]
    interval_ps = (times[1] - times[0]) / 1000.0 if len(times) == 2 else np.nan
    value = f[FRAME_INTERVAL]["value"]
    value.resize(position["time"].shape[0], axis=0)
    value[:] = interval_ps


class TrajectoryFile:
    """Writer of one trajectory file.

    Args:
        path: the ``.h5md`` file.
        numbers: (N,) atomic numbers (0 for a model particle).
        masses: (N,) amu.
        n_states: number of electronic states S.
    """

    def __init__(self, path: Path, numbers: np.ndarray, masses: np.ndarray, n_states: int):
        self.path = Path(path)
        self.numbers = np.asarray(numbers, dtype=np.int64)
        self.masses = np.asarray(masses, dtype=np.float64)
        self.n_states = int(n_states)
        self._frames: list[dict[str, Any]] = []
        self._hops: list[tuple] = []
        self.n_frames_on_disk = 0
        self.hops: list[tuple] = []
        """Every hop row (step, time, from_state, to_state, frustrated) so far."""
        self.last_step = -1
        """Step of the last frame (on disk or buffered); -1 before the first."""
        self.flag: str | None = None
        """Why the trajectory was flagged (its committee spread), or None."""
        self.flag_time_fs: float | None = None
        """When it was flagged, fs (the time of a frame), or None."""
        self._flag_pending = False  # a flag set since the last flush, not yet in the file

    @property
    def n_frames(self) -> int:
        """Frames written or buffered."""
        return self.n_frames_on_disk + len(self._frames)

    def create(self, parameters: dict[str, Any]) -> None:
        """Write a new file (replacing any) with the header and empty series."""
        n, s = len(self.numbers), self.n_states
        with h5_transaction(self.path, new=True) as f:
            h5md = f.create_group("h5md")
            h5md.attrs["version"] = np.array([1, 1], dtype=np.int32)
            h5md.create_group("author").attrs["name"] = "fusionff user"
            creator = h5md.create_group("creator")
            creator.attrs["name"] = "fusionff"
            creator.attrs["version"] = __version__
            particles = f.create_group(GROUP)
            box = particles.create_group("box")
            box.attrs["dimension"] = np.int32(3)
            box.attrs["boundary"] = np.array([b"none"] * 3, dtype="S4")
            particles.create_dataset("species", data=self.numbers)
            particles.create_dataset("mass", data=self.masses).attrs["unit"] = "u"
            first = None
            for path, unit, dtype, shape in FRAME_SERIES.values():
                group = f.create_group(path)
                _dataset(group, "value", shape(n, s), dtype, unit)
                if first is None:
                    _dataset(group, "step", (), np.int64, None)
                    _dataset(group, "time", (), np.float64, "fs")
                    first = group
                else:
                    group["step"], group["time"] = first["step"], first["time"]
            hops = f.create_group("parameters/hops")
            for name, (dtype, unit) in HOP_COLUMNS.items():
                _dataset(hops, name, (), dtype, unit)
            for key, value in parameters.items():
                f["parameters"].attrs[key] = value
        self._frames, self._hops, self.hops = [], [], []
        self.n_frames_on_disk, self.last_step = 0, -1
        self.flag, self.flag_time_fs, self._flag_pending = None, None, False

    def resume(self, n_frames: int, n_hops: int) -> None:
        """Cut the file back to its first ``n_frames`` frames and ``n_hops`` hop rows (those a
        checkpoint counted) and read the hop rows back."""
        with h5_transaction(self.path) as f:
            position = f[FRAME_SERIES["position"][0]]
            if position["value"].shape[0] < n_frames:
                raise ValueError(
                    f"{self.path}: {position['value'].shape[0]} frames, the checkpoint "
                    f"counted {n_frames}"
                )
            for path, *_ in (*FRAME_SERIES.values(), *SPREAD_SERIES.values()):
                if path in f:
                    f[path]["value"].resize(n_frames, axis=0)
            position["step"].resize(n_frames, axis=0)
            position["time"].resize(n_frames, axis=0)
            _write_frame_interval(f)
            hops = f["parameters/hops"]
            for name in HOP_COLUMNS:
                hops[name].resize(n_hops, axis=0)
            columns = [hops[name][:].tolist() for name in HOP_COLUMNS]
            self.hops = list(zip(*columns, strict=True))
            self.last_step = int(position["step"][-1]) if n_frames else -1
            attrs = f["parameters"].attrs
            for key in ("status", "final_state", "final_time"):
                attrs.pop(key, None)
            # a flag is kept when its frame is (a flag's step is always a frame)
            flag_time = attrs.get("flag_time")
            last_time = position["time"][-1] if n_frames else -np.inf
            if flag_time is not None and flag_time > last_time:
                attrs.pop("flag", None)
                attrs.pop("flag_time", None)
            self.flag = None if "flag" not in attrs else str(attrs["flag"])
            self.flag_time_fs = None if self.flag is None else float(attrs["flag_time"])
            self._flag_pending = False
        self._frames, self._hops = [], []
        self.n_frames_on_disk = n_frames

    def add_frame(self, step: int, time: float, **series: np.ndarray) -> None:
        """Buffer one frame; ``series`` holds every name of :data:`FRAME_SERIES` (and, in a
        committee run, of :data:`SPREAD_SERIES`, in every frame)."""
        self._frames.append({"step": step, "time": time, **series})
        self.last_step = step

    def set_flag(self, reason: str, time_fs: float) -> None:
        """Flag the trajectory (written with the next flush): ``reason`` text, at ``time_fs``
        fs (the time of a frame)."""
        self.flag, self.flag_time_fs, self._flag_pending = reason, float(time_fs), True

    def add_hop(self, step: int, time: float, source: int, target: int, frustrated: bool) -> None:
        """Buffer one hop attempt (a hop, or a frustrated one)."""
        row = (int(step), float(time), int(source), int(target), int(frustrated))
        self._hops.append(row)
        self.hops.append(row)

    def flush(self, final: dict[str, Any] | None = None) -> None:
        """Append the buffered frames and hops; ``final`` attributes mark a finished run.
        Nothing to write (a stopped trajectory at a later checkpoint): the file is left alone."""
        if not (self._frames or self._hops or self._flag_pending or final):
            return
        with h5_transaction(self.path) as f:
            if self._frames:
                position = f[FRAME_SERIES["position"][0]]
                _append(position["step"], np.array([r["step"] for r in self._frames]))
                _append(position["time"], np.array([r["time"] for r in self._frames]))
                series = dict(FRAME_SERIES)
                if "energy_std" in self._frames[0]:
                    series.update(SPREAD_SERIES)
                for name, (path, unit, dtype, shape) in series.items():
                    if path not in f:  # a spread series, with its first frames
                        group = f.create_group(path)
                        frame_shape = shape(len(self.numbers), self.n_states)
                        _dataset(group, "value", frame_shape, dtype, unit)
                        group["step"], group["time"] = position["step"], position["time"]
                    rows = np.stack([np.asarray(r[name], dtype=dtype) for r in self._frames])
                    _append(f[path]["value"], rows)
                _write_frame_interval(f)
            if self._hops:
                columns = list(zip(*self._hops, strict=True))
                for (name, (dtype, _)), column in zip(HOP_COLUMNS.items(), columns, strict=True):
                    _append(f["parameters/hops"][name], np.array(column, dtype=dtype))
            if self._flag_pending:
                f["parameters"].attrs["flag"] = self.flag
                f["parameters"].attrs["flag_time"] = self.flag_time_fs
                self._flag_pending = False
            for key, value in (final or {}).items():
                f["parameters"].attrs[key] = value
        self.n_frames_on_disk += len(self._frames)
        self._frames, self._hops = [], []
