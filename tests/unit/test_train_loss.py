"""The masked multi-state loss: value by hand, masked labels change nothing, Huber form."""

from __future__ import annotations

import pytest
import torch

from fusionff.train.data import Labels
from fusionff.train.loss import gap_loss, multistate_loss, robust_square, state_losses


def make(energy_mask, force_mask):
    g = torch.Generator().manual_seed(0)
    labels = Labels(
        energies=torch.randn(2, 2, generator=g, dtype=torch.float64),
        energy_mask=torch.tensor(energy_mask),
        forces=torch.randn(3, 2, 3, generator=g, dtype=torch.float64),
        force_mask=torch.tensor(force_mask),
        n_atoms=torch.tensor([2.0, 1.0], dtype=torch.float64),
    )
    energies = torch.randn(2, 2, generator=g, dtype=torch.float64, requires_grad=True)
    forces = torch.randn(3, 2, 3, generator=g, dtype=torch.float64, requires_grad=True)
    return energies, forces, labels


def test_loss_value_by_hand():
    """Per-state means over labelled entries, weighted by w_E, w_F and the state weights."""
    energy_mask = [[True, True], [True, False]]
    energies, forces, labels = make(energy_mask, [[True, True]] * 2 + [[True, False]])
    with torch.no_grad():
        e_mse, f_mse = state_losses(energies, forces, labels)
        de = (energies - labels.energies) / labels.n_atoms[:, None]
        df = ((forces - labels.forces) ** 2).sum(-1)
    assert e_mse[0] == pytest.approx(float((de[:, 0] ** 2).mean()))
    assert e_mse[1] == pytest.approx(float(de[0, 1] ** 2))
    assert f_mse[0] == pytest.approx(float(df[:, 0].mean()))
    assert f_mse[1] == pytest.approx(float(df[:2, 1].mean()))
    w = torch.tensor([1.0, 0.5], dtype=torch.float64)
    loss = multistate_loss(energies, forces, labels, 2.0, 3.0, w).detach()
    assert float(loss) == pytest.approx(float((w * (2.0 * e_mse + 3.0 * f_mse)).sum()))


def test_changing_masked_labels_changes_nothing():
    """Masked energies/forces set to huge values or NaN leave the loss and its gradient as is."""
    energy_mask = [[True, False], [True, True]]
    force_mask = [[True, False], [True, False], [False, True]]
    energies, forces, labels = make(energy_mask, force_mask)
    w = torch.ones(2, dtype=torch.float64)
    loss = multistate_loss(energies, forces, labels, 1.0, 10.0, w)
    grads = torch.autograd.grad(loss, (energies, forces))
    for bad in (1e6, float("nan")):
        changed = Labels(**vars(labels))
        changed.energies = labels.energies.masked_fill(~labels.energy_mask, bad)
        changed.forces = labels.forces.masked_fill(~labels.force_mask[..., None], bad)
        loss2 = multistate_loss(energies, forces, changed, 1.0, 10.0, w)
        grads2 = torch.autograd.grad(loss2, (energies, forces))
        assert torch.equal(loss, loss2)
        assert all(torch.equal(a, b) for a, b in zip(grads, grads2, strict=True))


def test_state_without_labels_contributes_zero():
    """A state with no labelled entry in the batch adds 0 (not NaN) to the loss."""
    energies, forces, labels = make([[True, False]] * 2, [[True, False]] * 3)
    e_mse, f_mse = state_losses(energies, forces, labels)
    assert e_mse[1] == 0.0 and f_mse[1] == 0.0


def test_robust_square_is_square_below_delta_and_linear_above():
    """rho(x) = x^2 for |x| <= delta and delta (2|x| - delta) beyond: continuous, with a
    continuous slope (2 delta sign x) at |x| = delta, and with slope 2 delta far out."""
    delta = 0.5
    x = torch.tensor([-3.0, -0.5, -0.2, 0.0, 0.3, 0.5, 2.0], dtype=torch.float64)
    x.requires_grad_(True)
    rho = robust_square(x, delta)
    expected = torch.where(x.abs() <= delta, x**2, delta * (2 * x.abs() - delta))
    assert torch.allclose(rho, expected, rtol=0, atol=1e-15)
    (grad,) = torch.autograd.grad(rho.sum(), x)
    assert grad[0] == -2 * delta and grad[-1] == 2 * delta
    assert torch.allclose(grad[2], 2 * x[2].detach())
    eps = 1e-7
    for edge in (-delta, delta):
        left, right = (
            robust_square(torch.tensor(edge - eps), delta),
            robust_square(torch.tensor(edge + eps), delta),
        )
        assert abs(float(left - right)) < 1e-6
    assert torch.equal(robust_square(x, None), x**2)


def test_huber_loss_equals_mse_for_small_errors_and_bounds_an_outlier():
    """With every error below the thresholds the Huber loss equals the squared one; a force
    label 1000 eV/A off pulls on its prediction with at most 2 delta w_F / n_atoms per
    component, where the squared loss pulls 1000 times harder."""
    energies, forces, labels = make([[True, True]] * 2, [[True, True]] * 3)
    w = torch.ones(2, dtype=torch.float64)
    mse = multistate_loss(energies, forces, labels, 1.0, 1.0, w)
    huber = multistate_loss(energies, forces, labels, 1.0, 1.0, w, 100.0, 100.0)
    assert torch.equal(mse, huber)
    labels.forces = labels.forces.detach().clone()
    labels.forces[0, 0, 0] += 1000.0
    delta = 0.5
    (g_h,) = torch.autograd.grad(
        multistate_loss(energies, forces, labels, 1.0, 1.0, w, 0.01, delta), forces
    )
    (g_m,) = torch.autograd.grad(multistate_loss(energies, forces, labels, 1.0, 1.0, w), forces)
    n = 3  # atoms labelled in state 0
    assert abs(float(g_h[0, 0, 0])) == pytest.approx(2 * delta / n)
    assert abs(float(g_m[0, 0, 0])) > 1000 * abs(float(g_h[0, 0, 0]))


def make_gap_case():
    """Three structures, three states; structure 1 lacks E_0, structure 2 lacks E_2."""
    g = torch.Generator().manual_seed(1)
    labels = Labels(
        energies=torch.randn(3, 3, generator=g, dtype=torch.float64),
        energy_mask=torch.tensor([[True, True, True], [False, True, True], [True, True, False]]),
        forces=torch.zeros(3, 3, 3, dtype=torch.float64),
        force_mask=torch.zeros(3, 3, dtype=torch.bool),
        n_atoms=torch.tensor([1.0, 1.0, 1.0], dtype=torch.float64),
    )
    energies = torch.randn(3, 3, generator=g, dtype=torch.float64, requires_grad=True)
    return energies, labels


def test_gap_loss_value_by_hand():
    """Per state s >= 1 the mean squared error of E_s - E_0 over structures with both labels,
    summed over s; a structure without E_0 adds nothing."""
    energies, labels = make_gap_case()
    e, r = energies.detach(), labels.energies
    err = (e[:, 1:] - e[:, :1]) - (r[:, 1:] - r[:, :1])
    expected = float((err[[0, 2], 0] ** 2).mean() + err[0, 1] ** 2)
    assert float(gap_loss(energies, labels).detach()) == pytest.approx(expected, rel=1e-12)


def test_gap_loss_ignores_shared_shifts_and_masked_labels():
    """Shifting every state's prediction by one constant per structure changes nothing (only
    gaps count), nor do masked reference energies set to NaN; the gradient sums to zero over
    the states of each structure."""
    energies, labels = make_gap_case()
    loss = gap_loss(energies, labels)
    (grad,) = torch.autograd.grad(loss, energies)
    shifted = energies.detach() + torch.tensor([[5.0], [-2.0], [0.3]], dtype=torch.float64)
    assert float(gap_loss(shifted, labels)) == pytest.approx(float(loss.detach()), rel=1e-12)
    changed = Labels(**vars(labels))
    changed.energies = labels.energies.masked_fill(~labels.energy_mask, float("nan"))
    assert torch.equal(gap_loss(energies, changed), loss)
    assert torch.allclose(grad.sum(dim=1), torch.zeros(3, dtype=torch.float64), atol=1e-14)


def test_gap_loss_huber_and_one_state():
    """With a threshold, errors beyond it grow linearly; one state has no gap (loss 0)."""
    energies, labels = make_gap_case()
    e, r = energies.detach(), labels.energies
    err = (e[:, 1:] - e[:, :1]) - (r[:, 1:] - r[:, :1])
    delta = 0.05
    expected = float(robust_square(err[[0, 2], 0], delta).mean() + robust_square(err[0, 1], delta))
    assert float(gap_loss(energies, labels, delta).detach()) == pytest.approx(expected, rel=1e-12)
    one = Labels(**vars(labels))
    one.energies, one.energy_mask = labels.energies[:, :1], labels.energy_mask[:, :1]
    assert float(gap_loss(energies[:, :1], one).detach()) == 0.0


def test_gap_loss_seam_weight_by_hand():
    """``seam_weight`` a multiplies each squared gap error by 1 + a exp(-|g_ref| / scale),
    g_ref the reference gap, and still divides by the number of structures; a = 0 is the
    plain loss; masked references set to NaN change nothing."""
    energies, labels = make_gap_case()
    e, r = energies.detach(), labels.energies
    err = (e[:, 1:] - e[:, :1]) - (r[:, 1:] - r[:, :1])
    w = 1.0 + 4.0 * torch.exp(-(r[:, 1:] - r[:, :1]).abs() / 0.3)
    expected = float((w[[0, 2], 0] * err[[0, 2], 0] ** 2).mean() + w[0, 1] * err[0, 1] ** 2)
    weighted = gap_loss(energies, labels, seam_weight=4.0, seam_scale=0.3)
    assert float(weighted.detach()) == pytest.approx(expected, rel=1e-12)
    assert torch.equal(gap_loss(energies, labels, seam_weight=0.0), gap_loss(energies, labels))
    changed = Labels(**vars(labels))
    changed.energies = labels.energies.masked_fill(~labels.energy_mask, float("nan"))
    assert torch.equal(gap_loss(energies, changed, seam_weight=4.0, seam_scale=0.3), weighted)
