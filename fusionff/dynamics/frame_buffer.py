"""A trajectory's frames and hops held in memory, for a batch that runs on a Dask worker.

:class:`FrameBuffer` stands in for :class:`~fusionff.dynamics.h5md.TrajectoryFile` while the
batch runs (the recorder and the runner call the same methods) and writes nothing; the
worker returns :meth:`FrameBuffer.packed` and the client writes it with :func:`write_packed`
into the real file, whose contents then equal those of the same batch run in the client.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from fusionff.dynamics.h5md import TrajectoryFile

__all__ = ["FrameBuffer", "write_packed"]


class FrameBuffer:
    """The methods and attributes of :class:`TrajectoryFile` that a running batch uses
    (the recorder's and the runner's), in memory.

    Args:
        path: the file the frames are for (only its name is used, in the records).
        prefix: for a batch that continues from its end in a shorter run, what its file holds
            up to there: ``n_frames``, ``hops`` (rows), ``last_step``, ``flag``
            (:meth:`fusionff.dynamics.runner._Ensemble.continuation`); the buffer then holds
            only what comes after, and :func:`write_packed` appends it to the file.
    """

    def __init__(self, path: Path, prefix: dict[str, Any] | None = None) -> None:
        self.path = Path(path)
        self.parameters: dict[str, Any] = {}
        self.final: dict[str, Any] = {}
        self._frames: list[dict[str, Any]] = []
        self.hops: list[tuple] = []
        """Every hop row (step, time, from_state, to_state, frustrated), as in the file."""
        self.last_step = -1
        self.flag: str | None = None
        self.flag_time_fs: float | None = None
        self._flag_set = False  # flagged in this buffer (a prefix's flag is in the file)
        self._prefix = prefix
        self._before = (0, 0)  # frames and hop rows in the file before this buffer's
        if prefix is not None:
            self.hops = [tuple(row) for row in prefix["hops"]]
            self.last_step, self.flag = prefix["last_step"], prefix["flag"]
            self.flag_time_fs = prefix.get("flag_time_fs")
            self._before = (prefix["n_frames"], len(self.hops))

    @property
    def n_frames(self) -> int:
        return self._before[0] + len(self._frames)

    def resume(self, n_frames: int, n_hops: int) -> None:
        """Continue after the file's first ``n_frames`` frames and ``n_hops`` hop rows: the
        prefix this buffer was made with must hold exactly those."""
        if self._prefix is None or (n_frames, n_hops) != self._before:
            raise ValueError(
                f"{self.path}: continuing after {n_frames} frames and {n_hops} hops, but the "
                f"buffer was made for {self._before[0]} frames and {self._before[1]} hops"
            )

    def create(self, parameters: dict[str, Any]) -> None:
        self.parameters = dict(parameters)
        self._frames, self.hops, self.final, self.last_step = [], [], {}, -1
        self.flag, self.flag_time_fs, self._flag_set = None, None, False

    def add_frame(self, step: int, time: float, **series: np.ndarray) -> None:
        self._frames.append({"step": step, "time": time, **series})
        self.last_step = step

    def set_flag(self, reason: str, time_fs: float) -> None:
        self.flag, self.flag_time_fs, self._flag_set = reason, float(time_fs), True

    def add_hop(self, step: int, time: float, source: int, target: int, frustrated: bool) -> None:
        self.hops.append((int(step), float(time), int(source), int(target), int(frustrated)))

    def flush(self, final: dict[str, Any] | None = None) -> None:
        self.final |= final or {}

    def packed(self) -> dict[str, Any]:
        """Plain data: ``parameters``, ``final`` attributes, ``step`` (F,), ``time`` (F,) fs,
        ``series`` {name: (F, ...) array} of every series the frames hold (units in
        :mod:`fusionff.dynamics.h5md`), ``hops`` rows and ``flag`` (reason, time fs) or None."""
        frames = self._frames
        names = [name for name in frames[0] if name not in ("step", "time")] if frames else []
        return {
            "parameters": self.parameters,
            "final": self.final,
            "step": [r["step"] for r in frames],
            "time": [r["time"] for r in frames],
            "series": {name: np.stack([np.asarray(r[name]) for r in frames]) for name in names},
            "hops": list(self.hops[self._before[1] :]),
            "flag": (self.flag, self.flag_time_fs) if self._flag_set else None,
            "after": None if self._prefix is None else self._before,
        }


def write_packed(packed: dict[str, Any], file: TrajectoryFile) -> None:
    """Write a :meth:`FrameBuffer.packed` trajectory into ``file``: created afresh, or, for
    one that continues a shorter run (``after`` = (frames, hop rows) it follows), appended
    after that many."""
    if packed.get("after") is None:
        file.create(packed["parameters"])
    else:
        file.resume(*packed["after"])
    series = packed["series"]
    for j, (step, time) in enumerate(zip(packed["step"], packed["time"], strict=True)):
        file.add_frame(step, time, **{name: values[j] for name, values in series.items()})
    for row in packed["hops"]:
        file.add_hop(*row)
    if packed["flag"] is not None:
        file.set_flag(*packed["flag"])
    file.flush(packed["final"])
