"""``fusionff.executor``: --dask addresses, the error for an unreachable scheduler, and that the
default path never imports Dask."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from fusionff.executor import DaskPool, ProcessPool, parse_dask_address


@pytest.mark.parametrize(
    ("address", "parsed"),
    [
        ("local", ("local", None)),
        ("local:3", ("local", 3)),
        ("tcp://10.0.0.5:8786", ("tcp://10.0.0.5:8786", None)),
        (" tls://host:8786 ", ("tls://host:8786", None)),
    ],
)
def test_addresses_are_a_local_cluster_or_a_scheduler(address, parsed):
    """``local[:N]`` is a LocalCluster of N workers (None: the usable cores); anything with a
    scheme is a scheduler address, passed on as it is."""
    assert parse_dask_address(address) == parsed


@pytest.mark.parametrize("address", ["local:0", "local:two", "10.0.0.5:8786", ""])
def test_other_addresses_are_refused_naming_them(address):
    """A worker count that is not a positive integer, or an address without a scheme, is a
    ValueError that quotes the address."""
    with pytest.raises(ValueError, match=repr(address)):
        parse_dask_address(address)


def test_an_unreachable_scheduler_is_an_error_naming_the_address():
    """Nothing listens on port 1: after the timeout, a RuntimeError names the address and
    says how to start a scheduler or use a LocalCluster."""
    pytest.importorskip("distributed")
    start = time.perf_counter()
    with pytest.raises(RuntimeError, match=r"tcp://127\.0\.0\.1:1: no Dask scheduler answered"):
        DaskPool("tcp://127.0.0.1:1", timeout=0.5)
    assert time.perf_counter() - start < 20


def test_the_default_paths_do_not_import_dask():
    """The command line, the labelling runner and the executor module load without Dask (it is
    imported only when a DaskPool opens)."""
    code = (
        "import sys, fusionff.cli, fusionff.labeling.runner, fusionff.executor; "
        "print(sorted(m for m in ('dask', 'distributed') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_process_pool_runs_tasks_in_other_processes():
    """The local pool's tasks run in its worker processes and return their results."""
    import os

    with ProcessPool(2) as pool:
        assert pool.slots() == 2
        pids = {pool.submit(os.getpid).result() for _ in range(4)}
    assert os.getpid() not in pids
