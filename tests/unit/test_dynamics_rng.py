"""Counter-based per-trajectory random numbers."""

import torch

from fusionff.dynamics.rng import trajectory_seeds, uniform

_MASK = (1 << 64) - 1


def _mix_reference(z: int) -> int:
    """SplitMix64 finaliser on Python integers (unsigned 64-bit)."""
    z &= _MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
    return z ^ (z >> 31)


def test_uniform_matches_python_reference():
    """The int64 tensor implementation equals unsigned 64-bit arithmetic in Python."""
    seeds = [0, 1, 2**62 + 12345, -7, -(2**63)]
    counters = [0, 5, 10**9, 3, 77]
    got = uniform(torch.tensor(seeds), torch.tensor(counters)).tolist()
    for value, s, c in zip(got, seeds, counters, strict=True):
        z = _mix_reference(_mix_reference(s) + (c + 1) * 0x9E3779B97F4A7C15)
        assert value == (z >> 11) * 2.0**-53


def test_uniform_statistics():
    """Numbers lie in [0, 1) with mean 1/2 and variance 1/12 (100k samples, 5 sigma)."""
    u = uniform(torch.full((100_000,), 42), torch.arange(100_000))
    assert u.min() >= 0 and u.max() < 1
    assert abs(u.mean().item() - 0.5) < 5 * (1 / 12 / 1e5) ** 0.5
    assert abs(u.var().item() - 1 / 12) < 0.002


def test_streams_depend_only_on_seed_and_counter():
    """A trajectory's numbers do not depend on the batch it is drawn in."""
    seeds = trajectory_seeds(3, torch.arange(10))
    counters = torch.arange(10) * 3
    together = uniform(seeds, counters)
    alone = torch.stack([uniform(seeds[i : i + 1], counters[i : i + 1])[0] for i in range(10)])
    assert torch.equal(together, alone)
    assert torch.equal(trajectory_seeds(3, torch.arange(4, 6)), seeds[4:6])
    assert len(set(seeds.tolist())) == 10
