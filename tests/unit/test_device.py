"""Device selection and the CPU allocator tuning."""

from __future__ import annotations

import platform

import pytest
import torch

from fusionff.device import resolve_device, tune_cpu_allocator
from fusionff.dynamics.state import take_state


def test_resolve_device_names():
    """auto picks CUDA only when present; cpu is cpu; nonsense is an error naming it."""
    assert resolve_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    with pytest.raises(ValueError, match="'tpu'"):
        resolve_device("tpu")


@pytest.mark.skipif(platform.system() != "Linux", reason="glibc's mallopt is Linux-only")
def test_allocator_tuning_is_idempotent_and_keeps_results():
    """mallopt succeeds under glibc, can be called twice, and tensors still compute."""
    assert tune_cpu_allocator() is True
    assert tune_cpu_allocator() is True
    x = torch.randn(1000, 1000, dtype=torch.float64)
    assert torch.allclose(x @ torch.eye(1000, dtype=torch.float64), x)


def test_take_state_equals_advanced_indexing():
    """take_state(values, s)[b] == values[b, s[b]] for per-state arrays of any trailing shape."""
    g = torch.Generator().manual_seed(0)
    forces = torch.randn(7, 3, 5, 3, generator=g)
    nacs = torch.randn(7, 3, 3, 5, 3, generator=g)
    s = torch.tensor([0, 2, 1, 1, 0, 2, 2])
    t = torch.tensor([1, 0, 2, 0, 2, 1, 0])
    rows = torch.arange(7)
    assert torch.equal(take_state(forces, s), forces[rows, s])
    assert torch.equal(take_state(take_state(nacs, s), t), nacs[rows, s, t])
