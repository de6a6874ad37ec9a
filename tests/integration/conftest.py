"""Fixtures of the integration tests that need a Dask cluster."""

from __future__ import annotations

import logging

import pytest


@pytest.fixture(scope="session")
def dask_address():
    """The scheduler address of a ``LocalCluster`` of two single-threaded worker processes,
    shared by the tests of a session (starting one costs a few seconds); skipped without
    dask.distributed."""
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        silence_logs=logging.ERROR,
    )
    try:
        yield cluster.scheduler_address
    finally:
        cluster.close()
