"""Forces of every state from one vmapped backward pass (the GPU default for dynamics) equal
those of one backward pass per state, for both heads, and training's second derivatives
through them equal too (float64, round-off)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase.build import molecule

from fusionff.data.graph import build_graph
from fusionff.models.multistate_mace import state_forces
from tests.conftest import small_model


def _energies(model, create_graph: bool):
    atoms = [molecule("CH3OH"), molecule("C2H4")]
    rng = np.random.default_rng(4)
    graph = build_graph(
        [a.numbers for a in atoms],
        [a.positions + rng.normal(0, 0.05, a.positions.shape) for a in atoms],
        model.r_max,
        None,
        None,
        model.dtype,
        torch.device("cpu"),
    )
    graph.positions.requires_grad_(True)
    out = model(graph, compute_forces=False, training=create_graph)
    return out["energies"], graph.positions


@pytest.mark.parametrize("head", ["adiabatic", "diabatic"])
@pytest.mark.parametrize("fusion", [True, False])
def test_vmapped_forces_equal_per_state_forces(fusion, head):
    model = small_model(fusion=fusion, n_states=3, head=head)
    energies, positions = _energies(model, create_graph=False)
    loop = state_forces(energies, positions, create_graph=False, batched=False)
    energies, positions = _energies(model, create_graph=False)
    vmapped = state_forces(energies, positions, create_graph=False, batched=True)
    assert vmapped.shape == loop.shape == (positions.shape[0], 3, 3)
    torch.testing.assert_close(vmapped, loop, rtol=1e-12, atol=1e-12)


def test_vmapped_forces_carry_training_gradients():
    """With create_graph, a force loss differentiates to the same parameter gradients."""
    model = small_model(fusion=True, n_states=2)
    grads = []
    for batched in (False, True):
        model.zero_grad()
        energies, positions = _energies(model, create_graph=True)
        forces = state_forces(energies, positions, create_graph=True, batched=batched)
        (forces**2).sum().backward()
        grads.append(
            torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
        )
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-10, atol=1e-12)


def test_default_is_per_state_on_cpu():
    """The default picks the vmapped pass only for CUDA tensors without a graph."""
    model = small_model(fusion=True, n_states=2)
    energies, positions = _energies(model, create_graph=False)
    calls = []
    original = torch.autograd.grad

    def spy(*args, **kwargs):
        calls.append(kwargs.get("is_grads_batched", False))
        return original(*args, **kwargs)

    torch.autograd.grad = spy
    try:
        state_forces(energies, positions, create_graph=False)
    finally:
        torch.autograd.grad = original
    assert calls == [False, False]
