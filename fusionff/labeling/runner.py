"""Parallel, resumable labelling of structures with a reference backend into an HDF5 dataset.

Every input structure becomes one dataset entry whose ``meta["source_index"]`` is its position
in the input. Entries are appended (and flushed) as calculations finish, in completion order,
so a job that is killed loses at most the calculations in flight; running the same command
again reads the indices already present and labels only the others. A structure whose
calculation failed is recorded with ``status="failed"``, its message and False masks for the
failed states, and is not tried again on resume.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from fusionff.data.dataset import MultiStateDataset
from fusionff.data.structure import Structure
from fusionff.executor import ProcessPool, StopOnSigterm, TaskPool
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
    pool: TaskPool | None = None,
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
        pool: where the calculations run instead (e.g. a :class:`fusionff.executor.DaskPool`;
            ``workers`` is then ignored), one structure per task; this process writes every
            entry. It is stopped (pending tasks cancelled) on an error or signal, and left
            open otherwise.

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
            "%d structures, %d already in %s, %d to label with %s",
            len(structures),
            len(done),
            path,
            len(pending),
            f"{workers} worker(s)" if pool is None else pool.description,
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

        if pool is not None:
            _label_in_pool(structures, pending, backend, n_states, pool, record)
        elif workers == 1:
            with StopOnSigterm() as stop:  # SIGTERM unwinds, so a backend ends its programs
                try:
                    for index in pending:
                        geometry = structures[index]
                        result = compute_safely(
                            backend, geometry.numbers, geometry.positions, n_states
                        )
                        with stop.deferred():
                            record(index, result)
                except (KeyboardInterrupt, SystemExit) as exc:
                    _log_stop(stop, exc, counts["ok"] + counts["failed"], len(pending))
                    raise
        else:
            local = ProcessPool(workers, preload=["fusionff.labeling.backend"])
            _label_in_pool(structures, pending, backend, n_states, local, record)
            local.close()
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


def _label_in_pool(structures, pending, backend, n_states, pool: TaskPool, record) -> None:
    """Compute ``pending`` in ``pool``, at most two per slot in flight, calling
    ``record(index, result)`` in this process as each finishes.

    If this runs in the main thread, SIGTERM (``kill PID``, a batch system's time limit) raises
    ``SystemExit(128 + SIGTERM)`` here instead of ending the process at once, so that on it,
    as on Ctrl-C or any error, the pending calculations are cancelled and the pool is stopped
    (its worker processes, and the programs they run, terminated) before the exception
    propagates; the entries already recorded stay in the output. A signal that arrives while
    an entry is being written takes effect once that entry is complete.
    """
    queue = iter(pending)
    running: dict[Future, int] = {}
    recorded = 0

    def fill() -> None:
        while len(running) < 2 * pool.slots():
            index = next(queue, None)
            if index is None:
                return
            geometry = structures[index]
            future = pool.submit(
                compute_safely,
                backend,
                np.asarray(geometry.numbers),
                np.asarray(geometry.positions),
                n_states,
            )
            running[future] = index

    with StopOnSigterm() as stop:
        try:
            fill()
            while running:
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    index, result = running.pop(future), future.result()
                    with stop.deferred():
                        record(index, result)
                        recorded += 1
                fill()
        except BaseException as exc:
            stop.hold()  # a second SIGTERM must not interrupt the cleanup
            pool.stop()
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                _log_stop(stop, exc, recorded, len(pending))
            raise


def _log_stop(stop: StopOnSigterm, exc: BaseException, recorded: int, n_pending: int) -> None:
    """Say that labelling was stopped, by what, and what is kept (serial and pool paths)."""
    logger.warning(
        "labelling stopped (%s) after %d new structure(s), %d left unlabelled; "
        "the finished ones are kept in the output: run the same command again "
        "to label the rest",
        "SIGTERM" if stop.signum is not None else type(exc).__name__,
        recorded,
        n_pending - recorded,
    )
