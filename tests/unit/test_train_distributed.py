"""The rank bookkeeping of data-parallel training that needs no process group: shards of a
batch, and one rank (every operation the identity) without torchrun."""

from __future__ import annotations

import numpy as np
import torch

from fusionff.train.distributed import Ranks, join


def test_shards_are_contiguous_near_equal_and_cover_the_batch_once():
    """For every batch length and number of ranks, the ranks' shards joined in rank order are
    the batch, and their lengths differ by at most one (an empty shard only when the batch
    has fewer structures than there are ranks)."""
    cpu = torch.device("cpu")
    for size in (1, 2, 3, 4):
        for n in range(0, 11):
            batch = np.arange(100, 100 + n)
            shards = [Ranks(rank, size, cpu).shard(batch) for rank in range(size)]
            assert np.array_equal(np.concatenate(shards), batch)
            lengths = [len(s) for s in shards]
            assert max(lengths) - min(lengths) <= 1
            assert min(lengths) > 0 or n < size


def test_without_torchrun_one_rank_and_identity_operations(monkeypatch):
    """No WORLD_SIZE: one rank on the asked device, and sharding, gathering, summing
    gradients and agreeing on values change nothing."""
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    ranks = join("cpu")
    assert (ranks.rank, ranks.size, ranks.is_main, ranks.active) == (0, 1, True, False)
    batch = np.arange(5)
    assert ranks.shard(batch) is batch
    out = {"energies": torch.ones(5, 2, requires_grad=True), "note": None}
    assert ranks.gather_rows(out) is out
    p = torch.nn.Parameter(torch.ones(3))
    p.grad = torch.full((3,), 2.0)
    ranks.sum_gradients([p])
    assert torch.equal(p.grad, torch.full((3,), 2.0))
    assert ranks.max(15) == 15.0 and ranks.from_main(1.5, True) == (1.5, 1.0)
    assert ranks.main_first(lambda: "done") == "done"
