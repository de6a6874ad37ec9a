"""Where independent tasks run: worker processes on this machine, or a Dask cluster.

Labelling (one structure per task) and ``fusionff run --dask`` (one batch of trajectories per
task) hand their tasks to a :class:`TaskPool` and write every result themselves, in the calling
process, so their files stay consistent whatever happens to the workers. A task is a
module-level function of picklable arguments that returns its result and writes none of the
caller's files; run twice, it returns the same result. Dask relies on that: the tasks of a
worker that dies are run again on another worker.

- :class:`ProcessPool`: a ``ProcessPoolExecutor`` on this machine (``fusionff label
  --workers N``);
- :class:`DaskPool`: a ``dask.distributed`` client, connected to a running scheduler
  (``tcp://host:port``, e.g. one that ``dask-jobqueue`` started for a SLURM cluster) or to a
  ``LocalCluster`` of N single-threaded worker processes that it starts (``local[:N]``).
  Dask is imported only here, and only when such a pool is opened.

:class:`StopOnSigterm` turns SIGTERM (``kill PID``, a batch system's time limit) into
``SystemExit`` so that the callers stop a pool, and the programs its workers run, before
they exit.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import Any, Protocol

__all__ = [
    "TaskPool",
    "ProcessPool",
    "DaskPool",
    "parse_dask_address",
    "StopOnSigterm",
]

logger = logging.getLogger(__name__)


class TaskPool(Protocol):
    """Runs tasks (pure functions of picklable arguments) somewhere and returns futures.

    Attributes:
        description: where the tasks run, for logs.
    """

    description: str

    def slots(self) -> int:
        """Tasks that can run at once now (at least 1)."""

    def submit(self, fn: Callable[..., Any], /, *args: Any) -> Future:
        """Run ``fn(*args)`` on a worker."""

    def share(self, value: Any) -> Any:
        """A stand-in for ``value`` to pass to :meth:`submit` in its place, sent to the
        workers once instead of with every task."""

    def stop(self) -> None:
        """Cancel the pending tasks and end the workers this pool started (and the programs
        they run); for use on errors and signals."""

    def close(self) -> None:
        """Shut down in order once every task is done."""


class _PoolContext:
    """``with pool:`` closes the pool on success and stops it on an exception."""

    def __enter__(self):
        return self

    def __exit__(self, kind, value, traceback) -> None:
        if kind is None:
            self.close()
        else:
            self.stop()


class ProcessPool(_PoolContext):
    """``workers`` processes on this machine, forked from a server process that imported the
    ``preload`` modules once (not from this process, which may hold threads and open HDF5
    files); where the platform has no fork server (Windows), they are spawned. Their parent
    re-imports the calling script there, so a script needs the ``__main__`` guard."""

    def __init__(self, workers: int, preload: Sequence[str] = ()) -> None:
        if workers < 1:
            raise ValueError(f"workers: must be at least 1, got {workers}")
        if "forkserver" in multiprocessing.get_all_start_methods():
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(list(preload))
        else:
            context = multiprocessing.get_context("spawn")
        self.workers = workers
        self.description = f"{workers} local worker process(es)"
        self._executor = ProcessPoolExecutor(max_workers=workers, mp_context=context)

    def slots(self) -> int:
        return self.workers

    def submit(self, fn: Callable[..., Any], /, *args: Any) -> Future:
        return self._executor.submit(fn, *args)

    def share(self, value: Any) -> Any:
        return value

    def stop(self) -> None:
        """Cancel, then terminate the workers and their children (e.g. a running MOPAC),
        killing what is still alive after 3 s. The workers are found through the executor's
        private ``_processes`` mapping, read defensively: if a Python version lacks it, only
        the cancelling and shutdown remain."""
        processes = list((getattr(self._executor, "_processes", None) or {}).values())
        children = [pid for process in processes for pid in descendants(process.pid)]
        self._executor.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            with contextlib.suppress(Exception):
                process.terminate()
        _end_processes(children, [process.join for process in processes], processes)

    def close(self) -> None:
        self._executor.shutdown(wait=True)


LOCAL = "local"


def parse_dask_address(address: str) -> tuple[str, int | None]:
    """``("local", N)`` for ``local`` / ``local:N`` (N None: the usable cores), else
    ``(address, None)`` for a scheduler address such as ``tcp://host:8786``.

    Raises:
        ValueError: neither form, or N not a positive integer.
    """
    text = address.strip()
    if text == LOCAL or text.startswith(LOCAL + ":"):
        count = text[len(LOCAL) + 1 :]
        if not count:
            return LOCAL, None
        if not count.isdigit() or int(count) < 1:
            raise ValueError(f"--dask {address!r}: local:N needs a positive number of workers")
        return LOCAL, int(count)
    if "://" not in text:
        raise ValueError(
            f"--dask {address!r}: expected a scheduler address such as tcp://host:8786, "
            "or local[:N] for N worker processes on this machine"
        )
    return text, None


class DaskPool(_PoolContext):
    """Tasks on a ``dask.distributed`` cluster.

    Args:
        address: ``tcp://host:port`` (or any scheme Dask knows) of a running scheduler, or
            ``local[:N]``: a ``LocalCluster`` of N worker processes with one thread each
            (default N: the cores this process may use), started here and ended with the
            pool.
        timeout: s, how long to wait for the scheduler to answer.

    Raises:
        RuntimeError: Dask is not installed, or no scheduler answered at ``address``.
    """

    def __init__(self, address: str, *, timeout: float = 10.0) -> None:
        where, n_workers = parse_dask_address(address)
        try:
            from distributed import Client, LocalCluster
        except ImportError as exc:
            raise RuntimeError(
                f"--dask needs dask.distributed ({exc}); install it with "
                "python3 -m pip install 'fusionff[distributed]'"
            ) from None
        quiet = logging.getLogger("distributed")
        if quiet.level == logging.NOTSET:  # its INFO lines (workers starting, closing) are noise
            quiet.setLevel(logging.WARNING)
        self.cluster = None
        if where == LOCAL:
            n_workers = n_workers or len(os.sched_getaffinity(0))
            self.cluster = LocalCluster(
                n_workers=n_workers,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
                silence_logs=logging.WARNING,
            )
            where = self.cluster.scheduler_address
            self.description = f"Dask LocalCluster of {n_workers} worker process(es) ({where})"
        else:
            self.description = f"Dask scheduler {where}"
        try:
            self.client = Client(where, timeout=timeout, set_as_default=False)
        except (OSError, TimeoutError) as exc:
            self._close_cluster()
            raise RuntimeError(
                f"--dask {address}: no Dask scheduler answered within {timeout:g} s ({exc}); "
                "start one (e.g. `dask scheduler`) or use --dask local[:N]"
            ) from None
        self._executor = self.client.get_executor(pure=False)
        self._slots, self._slots_asked = 1, float("-inf")

    def slots(self) -> int:
        """Threads of the workers connected (at least 1, so that work is queued for workers
        that are still starting, e.g. SLURM jobs waiting in the queue); asked of the
        scheduler at most once a second."""
        now = time.monotonic()
        if now - self._slots_asked > 1.0:
            self._slots = max(1, sum(self.client.nthreads().values()))
            self._slots_asked = now
        return self._slots

    def submit(self, fn: Callable[..., Any], /, *args: Any) -> Future:
        return self._executor.submit(fn, *args)

    def share(self, value: Any) -> Any:
        """A Dask future of ``value`` (tasks receive the value itself). It is the result of a
        task, not scattered data, so that the scheduler can compute it again if the worker
        holding it dies."""
        return self.client.submit(_same, value, pure=False)

    def stop(self) -> None:
        """Cancel the tasks; with a LocalCluster started here, also end its worker processes
        and whatever they run. Tasks already running on a remote cluster finish there and
        their results are dropped."""
        with contextlib.suppress(Exception):
            self._executor.shutdown(wait=False)
        pids = []
        if self.cluster is not None:
            workers = list(getattr(self.cluster, "workers", {}).values())
            pids = [pid for w in workers for pid in descendants(getattr(w, "pid", None))]
        with contextlib.suppress(Exception):
            self.client.close(timeout=5)
        self._close_cluster()
        _end_processes(pids, [], [])

    def close(self) -> None:
        self._executor.shutdown(wait=True)
        self.client.close()
        self._close_cluster()

    def _close_cluster(self) -> None:
        """End the LocalCluster started here. Its workers may take seconds to exit (PyTorch's
        teardown on a busy machine), after which their nannies kill them and warn: expected
        here, so not shown."""
        if self.cluster is not None:
            nanny = logging.getLogger("distributed.nanny")
            level = nanny.level
            nanny.setLevel(logging.ERROR)
            try:
                with contextlib.suppress(Exception):
                    self.cluster.close(timeout=10)
            finally:
                nanny.setLevel(level)
            self.cluster = None


def _same(value: Any) -> Any:
    return value


class StopOnSigterm:
    """While active (and only in the main thread, where handlers can be set), SIGTERM raises
    ``SystemExit(128 + signum)``; inside :meth:`deferred` it is held until the block ends, so
    that an entry is never half-written. The previous handler is restored on exit."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous = None
        self._installed = False
        self._deferring = False

    def __enter__(self) -> StopOnSigterm:
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


def _end_processes(pids: list[int], joins: list[Callable], processes: list, grace=3.0) -> None:
    """SIGTERM ``pids``; wait up to ``grace`` s for ``processes`` (multiprocessing ones, already
    terminated) through ``joins``; then SIGKILL whatever of both is still alive."""
    for pid in pids:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for join, process in zip(joins, processes, strict=True):
        with contextlib.suppress(Exception):
            join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                process.kill()
                process.join(1.0)
    while pids and time.monotonic() < deadline and any(_alive(pid) for pid in pids):
        time.sleep(0.05)
    for pid in pids:
        with contextlib.suppress(OSError):
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


def descendants(pid: int | None) -> list[int]:
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
