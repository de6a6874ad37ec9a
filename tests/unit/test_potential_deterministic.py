"""The potential evaluates with PyTorch's deterministic algorithms on the CPU.

With more than one thread, PyTorch's CPU backward of float32 indexing (``index_put_`` with
accumulation) adds with atomic operations from several threads, in an order set by thread
timing; under deterministic algorithms it adds serially. That cannot be provoked on demand
(it needs threads preempted mid-kernel), so these tests check that the switch is on while the
model runs and is restored afterwards.
"""

from __future__ import annotations

import torch
from ase.build import molecule

from fusionff import MultiStateMACE
from fusionff.potential import Potential, deterministic_cpu


def test_model_runs_under_deterministic_algorithms_and_the_setting_is_restored():
    torch.manual_seed(0)
    model = MultiStateMACE(
        elements=["H", "C"], n_states=2, channels=4, num_layers=1, correlation=2, dtype="float32"
    )
    seen = []
    model.register_forward_hook(
        lambda *_: seen.append(
            (
                torch.are_deterministic_algorithms_enabled(),
                torch.utils.deterministic.fill_uninitialized_memory,
            )
        )
    )
    potential = Potential(model, device="cpu")
    atoms = molecule("C2H4")
    positions = torch.as_tensor(atoms.positions[None].repeat(3, 0))
    before = torch.are_deterministic_algorithms_enabled()
    first = potential.evaluate(atoms.numbers, positions)["forces"]
    again = potential.evaluate(atoms.numbers, positions)["forces"]
    assert seen == [(True, False), (True, False)]
    assert torch.are_deterministic_algorithms_enabled() == before
    assert torch.utils.deterministic.fill_uninitialized_memory is True
    assert torch.equal(first, again)


def test_deterministic_cpu_leaves_other_devices_alone():
    with deterministic_cpu(torch.device("meta")):
        assert not torch.are_deterministic_algorithms_enabled()
    with deterministic_cpu(torch.device("cpu")):
        assert torch.are_deterministic_algorithms_enabled()
    assert not torch.are_deterministic_algorithms_enabled()
