"""Choosing the torch device from a user's setting (``auto``, ``cpu``, ``cuda[:k]``), and the
number of CPU threads."""

from __future__ import annotations

import os

import torch


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; asking for CUDA without it is an error
    (never a silent fallback)."""
    if isinstance(device, torch.device):
        device = str(device)
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device {device!r} was asked for, but CUDA is not available here")
    if device != "cpu" and not device.startswith("cuda"):
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda[:k]', got {device!r}")
    return torch.device(device)


_ALLOCATOR_TUNED = False


def tune_cpu_allocator() -> bool:
    """Keep freed memory in the process instead of returning it to the system (glibc only).

    PyTorch's CPU tensors come from ``malloc``; glibc serves large blocks with fresh ``mmap``
    pages and unmaps them on free, so every large activation of a batched model evaluation is
    paid again in page faults (measured here: 64 stilbene structures in one graph, 41 -> 30 ms
    per structure; 256: 64 -> 31 ms). Raising the mmap and trim thresholds makes the allocator
    reuse that memory. Process-wide and idempotent; returns False where glibc's ``mallopt`` is
    not available (other C libraries), which changes nothing but speed.
    """
    global _ALLOCATOR_TUNED
    if _ALLOCATOR_TUNED:
        return True
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_top_pad, m_mmap_threshold = -1, -2, -3
        ok = (
            libc.mallopt(m_mmap_threshold, 1 << 30) == 1
            and libc.mallopt(m_trim_threshold, (1 << 31) - 1) == 1
            and libc.mallopt(m_top_pad, 1 << 28) == 1
        )
    except (OSError, AttributeError):
        return False
    _ALLOCATOR_TUNED = ok
    return ok


DEFAULT_THREADS = 1
"""PyTorch CPU threads of a run unless told otherwise (see :func:`set_threads`)."""


def default_threads() -> int:
    """``OMP_NUM_THREADS`` when it is set to a positive integer, else :data:`DEFAULT_THREADS`.

    One thread is the default because batched evaluations of small molecules gain little from
    more, while a second OpenMP thread on a core that something else is using stalls every
    parallel region: on a 2-core machine with one core busy, the stilbene main job took
    22 min 40 s with PyTorch's default of 2 threads and 2 min 13 s with one (reported), and a
    10 fs cut of it 451 s with 2 threads and 52 s with one (measured 2026-12-02).
    """
    value = os.environ.get("OMP_NUM_THREADS", "")
    return int(value) if value.isdigit() and int(value) > 0 else DEFAULT_THREADS


def set_threads(threads: int | None) -> int:
    """Set PyTorch's intra-op threads (``None``: :func:`default_threads`); returns the count.

    Inter-op threads (PyTorch's pool for ``torch.jit.fork``, which fusionff does not use) are
    set to the same number while that is still allowed, i.e. before any parallel work has
    started in this process; afterwards PyTorch refuses, and they stay as they are.
    """
    n = default_threads() if threads is None else int(threads)
    if n < 1:
        raise ValueError(f"threads: must be at least 1, got {threads}")
    torch.set_num_threads(n)
    if torch.get_num_interop_threads() != n:
        try:
            torch.set_num_interop_threads(n)
        except RuntimeError:  # parallel work has started: the pool can no longer be resized
            pass
    return n
