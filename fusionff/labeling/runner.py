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
import multiprocessing
import time
from collections.abc import Iterable, Sequence
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
    """

    total: int
    already_done: int
    ok: int
    failed: int
    seconds: float


def labelled_structure(index: int, geometry: Geometry, result: LabelResult) -> Structure:
    """The dataset entry of input structure ``index``: labels where they succeeded (failed
    states hold 0 with a False mask), ``status`` "ok" or "failed" with the message."""
    success = np.asarray(result.success, dtype=bool)
    return Structure(
        numbers=np.asarray(geometry.numbers, dtype=np.int64),
        positions=np.asarray(geometry.positions, dtype=np.float64),
        energies=np.where(success, result.energies, 0.0),
        forces=np.where(success[None, :, None], result.forces, 0.0),
        energy_mask=success.copy(),
        force_mask=success.copy(),
        status="ok" if result.ok else "failed",
        error=result.error,
        meta={SOURCE_INDEX: int(index), "seconds": round(float(result.seconds), 4)},
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
    counts = {"ok": 0, "failed": 0}
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
            if not result.ok:
                logger.warning("structure %d failed: %s", index, result.error)

        if workers == 1:
            for index in pending:
                geometry = structures[index]
                record(
                    index, compute_safely(backend, geometry.numbers, geometry.positions, n_states)
                )
        else:
            _label_in_pool(structures, pending, backend, n_states, workers, record)
    summary = LabelSummary(
        len(structures), len(done), counts["ok"], counts["failed"], time.perf_counter() - start
    )
    logger.info("labelled %d ok, %d failed in %.1f s", summary.ok, summary.failed, summary.seconds)
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
    calling ``record(index, result)`` in this process as each finishes."""
    queue = iter(pending)
    context = _worker_context()
    executor = ProcessPoolExecutor(max_workers=workers, mp_context=context)
    running: dict[Future, int] = {}

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

    try:
        for _ in range(2 * workers):
            submit_next()
        while running:
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                record(running.pop(future), future.result())
                submit_next()
    except BaseException:
        executor.shutdown(wait=False, cancel_futures=True)
        raise
    executor.shutdown(wait=True)
