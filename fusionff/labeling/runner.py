"""Parallel, resumable labelling of structures with a reference backend into an HDF5 dataset.

Every input structure becomes one dataset entry whose ``meta["source_index"]`` is its position
in the input. Entries are appended (and flushed) as calculations finish, in completion order,
so a job that is killed loses at most the calculations in flight; running the same command
again reads the indices already present and labels only the others. A structure whose
calculation failed is recorded with ``status="failed"``, its message and False masks for the
failed states, and is not tried again on resume.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from fusionff.data.dataset import MultiStateDataset
from fusionff.data.structure import Structure
from fusionff.labeling.backend import (
    LabelResult,
    ReferenceBackend,
    check_geometry,
    compute_safely,
)

logger = logging.getLogger(__name__)

SOURCE_INDEX = "source_index"
"""The ``meta`` key holding an entry's position in the input sequence."""


class Geometry(Protocol):
    """Anything with atomic numbers (N,) and positions (N, 3) Angstrom: ``ase.Atoms``,
    ``fusionff.data.structure.Structure``."""

    numbers: np.ndarray
    positions: np.ndarray


@dataclass(frozen=True)
class LabelSummary:
    """What one call of :func:`label` did.

    Attributes:
        total: input structures.
        already_done: structures found in the output before this call (skipped).
        ok: structures labelled now, every state successful.
        failed: structures labelled now with at least one failed state.
        seconds: wall-clock time of the call, s.
        forces_rejected: structures labelled now with the forces of a computed state
            rejected (by :class:`fusionff.labeling.gradient_check.GradientCheckedBackend`).
    """

    total: int
    already_done: int
    ok: int
    failed: int
    seconds: float
    forces_rejected: int = 0


def labelled_structure(index: int, geometry: Geometry, result: LabelResult) -> Structure:
    """The dataset entry of input structure ``index``: labels where they succeeded (failed
    states hold 0 with a False mask; rejected forces a False force mask), couplings when the
    backend gave them for a fully successful structure, ``status`` "ok" or "failed", and the
    message."""
    success = np.asarray(result.success, dtype=bool)
    forces_ok = result.forces_ok
    return Structure(
        numbers=np.asarray(geometry.numbers, dtype=np.int64),
        positions=np.asarray(geometry.positions, dtype=np.float64),
        energies=np.where(success, result.energies, 0.0),
        forces=np.where(forces_ok[None, :, None], result.forces, 0.0),
        energy_mask=success.copy(),
        force_mask=forces_ok.copy(),
        status="ok" if result.ok else "failed",
        error=result.error,
        meta=(result.meta or {})
        | {SOURCE_INDEX: int(index), "seconds": round(float(result.seconds), 4)},
        nacs=None if result.nacs is None or not result.ok else np.asarray(result.nacs, float),
    )


_PROVENANCE_KEYS = ("program", "version", "keywords")
"""Provenance entries that must agree between an existing output and the backend."""


def _open_output(
    path: Path, backend: ReferenceBackend, n_states: int, overwrite: bool
) -> MultiStateDataset:
    """Create the output, or open it to continue (dropping rows of an interrupted append)
    after checking that it holds the same number of states from the same program."""
    provenance = backend.provenance()
    if overwrite or not path.exists():
        return MultiStateDataset.create(
            path,
            n_states,
            method=provenance.get("method", ""),
            provenance=provenance,
            overwrite=overwrite,
        )
    dataset = MultiStateDataset.open(path, mode="a", repair=True)
    problems = []
    if dataset.n_states != n_states:
        problems.append(f"n_states {dataset.n_states} (asked: {n_states})")
    problems += [
        f"{key} {dataset.provenance.get(key)!r} (backend: {provenance.get(key)!r})"
        for key in _PROVENANCE_KEYS
        if dataset.provenance.get(key) != provenance.get(key)
    ]
    if problems:
        dataset.close()
        raise ValueError(
            f"{path} cannot be continued, it has "
            + ", ".join(problems)
            + "; use another output or overwrite it"
        )
    return dataset


def done_indices(dataset: MultiStateDataset, structures: Sequence[Geometry]) -> set[int]:
    """Input indices already in ``dataset``, checked against the input.

    Raises:
        ValueError: an entry without ``source_index``, an index outside the input, an index
            present twice, or an entry whose atoms or positions (1e-4 Angstrom) differ from
            that input structure.
    """
    done: set[int] = set()
    for entry, stored in enumerate(dataset):
        index = stored.meta.get(SOURCE_INDEX)
        where = f"{dataset.path} entry {entry}"
        if index is None:
            raise ValueError(f"{where} has no meta[{SOURCE_INDEX!r}]: not written by label()")
        if not 0 <= index < len(structures):
            raise ValueError(
                f"{where}: {SOURCE_INDEX} {index} is outside the {len(structures)}"
                " input structures; is this the same input?"
            )
        if index in done:
            raise ValueError(f"{where}: input structure {index} is stored twice")
        source = structures[index]
        if not np.array_equal(stored.numbers, np.asarray(source.numbers)) or not np.allclose(
            stored.positions, source.positions, rtol=0.0, atol=1e-4
        ):
            raise ValueError(
                f"{where} differs from input structure {index}; is this the same input?"
            )
        done.add(int(index))
    return done


def label(
    structures: Iterable[Geometry],
    backend: ReferenceBackend,
    n_states: int,
    output_path: str | Path,
    *,
    workers: int = 1,
    overwrite: bool = False,
) -> LabelSummary:
    """Label ``structures`` with ``backend`` into the dataset at ``output_path``, resuming.

    Args:
        structures: geometries with ``numbers`` (N,) and ``positions`` (N, 3) Angstrom, e.g.
            ``ase.io.read(path, index=":")``; the same sequence must be given on resume.
        backend: the reference program (picklable when ``workers > 1``).
        n_states: number of states S to label, from the ground state.
        output_path: HDF5 dataset; created (with the backend's provenance) if absent,
            otherwise continued.
        workers: processes computing in parallel; 1 computes in this process. Workers
            re-import the calling script, so a script that calls ``label`` with
            ``workers > 1`` needs the usual ``if __name__ == "__main__":`` guard.
        overwrite: start a new dataset even if ``output_path`` exists.

    Returns:
        Counts and time of this call. Failed structures are in the dataset, not raised.
    """
    start = time.perf_counter()
    structures = list(structures)
    for i, geometry in enumerate(structures):
        try:
            check_geometry(geometry.numbers, geometry.positions)
        except ValueError as exc:
            raise ValueError(f"input structure {i}: {exc}") from exc
        if np.any(getattr(geometry, "pbc", False)):
            raise ValueError(
                f"input structure {i} is periodic; reference backends label isolated molecules"
            )
    if n_states < 1 or workers < 1:
        raise ValueError(f"n_states and workers must be positive, got {n_states}, {workers}")
    path = Path(output_path)
    counts = {"ok": 0, "failed": 0, "forces_rejected": 0}
    with _open_output(path, backend, n_states, overwrite) as dataset:
        done = done_indices(dataset, structures)
        pending = [i for i in range(len(structures)) if i not in done]
        logger.info(
            "%d structures, %d already in %s, %d to label with %d worker(s)",
            len(structures),
            len(done),
            path,
            len(pending),
            workers,
        )

        def record(index: int, result: LabelResult) -> None:
            dataset.append(labelled_structure(index, structures[index], result))
            counts["ok" if result.ok else "failed"] += 1
            rejected = bool(np.any(result.forces_ok != np.asarray(result.success, dtype=bool)))
            counts["forces_rejected"] += rejected
            if not result.ok:
                logger.warning("structure %d failed: %s", index, result.error)
            elif rejected:
                logger.warning("structure %d: %s", index, result.error)
            else:
                logger.info(
                    "structure %d labelled in %.1f s (%d of %d pending done)",
                    index,
                    result.seconds,
                    counts["ok"] + counts["failed"],
                    len(pending),
                )

        if workers == 1:
            with _StopOnSigterm() as stop:  # SIGTERM unwinds, so a backend ends its programs
                for index in pending:
                    geometry = structures[index]
                    result = compute_safely(backend, geometry.numbers, geometry.positions, n_states)
                    with stop.deferred():
                        record(index, result)
        else:
            _label_in_pool(structures, pending, backend, n_states, workers, record)
    summary = LabelSummary(
        len(structures),
        len(done),
        counts["ok"],
        counts["failed"],
        time.perf_counter() - start,
        counts["forces_rejected"],
    )
    logger.info(
        "labelled %d ok (forces of %d rejected), %d failed in %.1f s",
        summary.ok,
        summary.forces_rejected,
        summary.failed,
        summary.seconds,
    )
    return summary


def _worker_context() -> multiprocessing.context.BaseContext:
    """Workers are forked from a fresh server process that imported the backend module once
    (not from this process, which may hold threads and an open HDF5 file); where the platform
    has no fork server (Windows), they are spawned."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["fusionff.labeling.backend"])
    return context


def _label_in_pool(structures, pending, backend, n_states, workers, record) -> None:
    """Compute ``pending`` in ``workers`` processes, at most two per worker in flight,
    calling ``record(index, result)`` in this process as each finishes.

    If this runs in the main thread, SIGTERM (``kill PID``, a batch system's time limit) raises
    ``SystemExit(128 + SIGTERM)`` here instead of ending the process at once, so that on it,
    as on Ctrl-C or any error, the pending calculations are cancelled and the worker processes
    (and the programs they run) are terminated before the exception propagates; the entries
    already recorded stay in the output. A signal that arrives while an entry is being
    written takes effect once that entry is complete.
    """
    queue = iter(pending)
    context = _worker_context()
    executor = ProcessPoolExecutor(max_workers=workers, mp_context=context)
    running: dict[Future, int] = {}
    recorded = 0

    def submit_next() -> None:
        index = next(queue, None)
        if index is not None:
            geometry = structures[index]
            future = executor.submit(
                compute_safely,
                backend,
                np.asarray(geometry.numbers),
                np.asarray(geometry.positions),
                n_states,
            )
            running[future] = index

    with _StopOnSigterm() as stop:
        try:
            for _ in range(2 * workers):
                submit_next()
            while running:
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    index, result = running.pop(future), future.result()
                    with stop.deferred():
                        record(index, result)
                        recorded += 1
                    submit_next()
        except BaseException as exc:
            stop.hold()  # a second SIGTERM must not interrupt the cleanup
            _stop_pool(executor)
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                logger.warning(
                    "labelling stopped (%s) after %d new structure(s), %d left unlabelled; "
                    "the finished ones are kept in the output: run the same command again "
                    "to label the rest",
                    "SIGTERM" if stop.signum is not None else type(exc).__name__,
                    recorded,
                    len(pending) - recorded,
                )
            raise
    executor.shutdown(wait=True)


class _StopOnSigterm:
    """While active (and only in the main thread, where handlers can be set), SIGTERM raises
    ``SystemExit(128 + signum)``; inside :meth:`deferred` it is held until the block ends, so
    that an entry is never half-written. The previous handler is restored on exit."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous = None
        self._installed = False
        self._deferring = False

    def __enter__(self) -> _StopOnSigterm:
        if threading.current_thread() is threading.main_thread() and hasattr(signal, "SIGTERM"):
            try:
                self._previous = signal.signal(signal.SIGTERM, self._handle)
                self._installed = True
            except (ValueError, OSError):  # e.g. an embedded interpreter
                pass
        return self

    def __exit__(self, *exc: object) -> None:
        if self._installed:
            signal.signal(
                signal.SIGTERM, self._previous if self._previous is not None else signal.SIG_DFL
            )
            self._installed = False

    def _handle(self, signum: int, frame: object) -> None:
        self.signum = signum
        if not self._deferring:
            raise SystemExit(128 + signum)

    def hold(self) -> None:
        """From now on only note SIGTERM, do not raise."""
        self._deferring = True

    @contextlib.contextmanager
    def deferred(self) -> Iterator[None]:
        """Hold SIGTERM during the block; raise ``SystemExit`` after it if one came."""
        self._deferring = True
        try:
            yield
        finally:
            self._deferring = False
        if self.signum is not None:
            raise SystemExit(128 + self.signum)


def _stop_pool(executor: ProcessPoolExecutor, grace: float = 3.0) -> None:
    """Cancel the pending calculations and terminate the worker processes and their children
    (e.g. a running MOPAC), killing what is still alive after ``grace`` seconds.

    The workers are found through the executor's private ``_processes`` mapping, read
    defensively: if a Python version lacks it, only the cancelling and shutdown remain.
    """
    processes = list((getattr(executor, "_processes", None) or {}).values())
    children = [pid for process in processes for pid in _descendants(process.pid)]
    executor.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        with contextlib.suppress(Exception):
            process.terminate()
    for pid in children:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for process in processes:
        with contextlib.suppress(Exception):
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                process.kill()
                process.join(1.0)
    for pid in children:
        with contextlib.suppress(OSError):
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


def _descendants(pid: int | None) -> list[int]:
    """Process ids of the children, grandchildren, ... of ``pid`` (Linux ``/proc``; empty
    elsewhere or when unreadable)."""
    found: list[int] = []
    todo = [pid] if pid else []
    while todo:
        parent = todo.pop()
        for children in Path(f"/proc/{parent}/task").glob("*/children"):
            with contextlib.suppress(OSError, ValueError):
                for child in map(int, children.read_text().split()):
                    if child not in found:
                        found.append(child)
                        todo.append(child)
    return found


def _alive(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie (Linux; elsewhere: exists)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    with contextlib.suppress(OSError, IndexError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat[stat.rindex(")") + 2] != "Z"
    return True
