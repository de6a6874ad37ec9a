"""The phase-free coupling loss and metrics: sign flips of reference couplings change nothing,
zero exactly at +-reference, masks, Huber form, and the coupling weight's default."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fusionff.train.config import LossConfig, TrainConfig
from fusionff.train.data import Labels
from fusionff.train.loss import coupling_loss, robust_square
from fusionff.train.metrics import coupling_metrics

N_ATOMS = [2, 3, 1]  # three structures, six atoms
S = 3


def _labels(nacs: torch.Tensor, nac_mask=(True, True, True)) -> Labels:
    b = len(N_ATOMS)
    return Labels(
        energies=torch.zeros(b, S, dtype=torch.float64),
        energy_mask=torch.zeros(b, S, dtype=torch.bool),
        forces=torch.zeros(sum(N_ATOMS), S, 3, dtype=torch.float64),
        force_mask=torch.zeros(sum(N_ATOMS), S, dtype=torch.bool),
        n_atoms=torch.tensor(N_ATOMS, dtype=torch.float64),
        nacs=nacs,
        nac_mask=torch.tensor(nac_mask),
    )


def _antisymmetric(g: torch.Generator) -> torch.Tensor:
    x = torch.randn(sum(N_ATOMS), S, S, 3, generator=g, dtype=torch.float64)
    return x - x.transpose(1, 2)


def _flip(nacs: torch.Tensor, structure: int, i: int, j: int) -> torch.Tensor:
    """The couplings with d_ij and d_ji of one structure's atoms negated."""
    start = sum(N_ATOMS[:structure])
    atoms = slice(start, start + N_ATOMS[structure])
    out = nacs.clone()
    out[atoms, i, j] *= -1
    out[atoms, j, i] *= -1
    return out


def test_loss_invariant_under_flipping_any_reference_coupling_sign():
    """Flipping the sign of d_ij^ref for one structure and one pair, for every choice and for
    random sets of them, leaves the loss (squares and Huber) and its gradient unchanged."""
    g = torch.Generator().manual_seed(0)
    ref, pred = _antisymmetric(g), _antisymmetric(g).requires_grad_(True)
    for delta in (None, 0.3):
        base = coupling_loss(pred, _labels(ref), delta)
        (grad,) = torch.autograd.grad(base, pred)
        flips = [[(b, i, j)] for b in range(3) for i, j in ((0, 1), (0, 2), (1, 2))]
        rng = np.random.default_rng(0)
        flips += [[(b, i, j) for b, i, j in f if rng.random() < 0.5] for f in [sum(flips, [])] * 5]
        for chosen in flips:
            flipped = ref
            for b, i, j in chosen:
                flipped = _flip(flipped, b, i, j)
            loss = coupling_loss(pred, _labels(flipped), delta)
            assert torch.equal(loss, base)
            assert torch.equal(torch.autograd.grad(loss, pred)[0], grad)


def test_loss_is_zero_exactly_when_prediction_is_plus_or_minus_reference():
    """pred = +-ref per structure and pair gives 0; any other prediction gives > 0, and the
    value is the min over the sign of the mean squared error, checked by hand."""
    g = torch.Generator().manual_seed(1)
    ref = _antisymmetric(g)
    signed = _flip(_flip(ref, 0, 0, 1), 2, 1, 2)
    assert float(coupling_loss(signed, _labels(ref))) == 0.0
    assert float(coupling_loss(-ref, _labels(ref))) == 0.0
    pred = signed.clone()
    pred[3, 0, 2, 1] += 0.1  # structure 1 (atoms 2-4), pair (0, 2)
    pred[3, 2, 0, 1] -= 0.1
    assert float(coupling_loss(pred, _labels(ref))) == pytest.approx(0.1**2 / (3 * 3) / 9)
    # by hand on random predictions: mean over 3 structures x 3 pairs of min over the sign
    pred = _antisymmetric(g)
    expected = []
    for b in range(3):
        atoms = slice(sum(N_ATOMS[:b]), sum(N_ATOMS[: b + 1]))
        for i, j in ((0, 1), (0, 2), (1, 2)):
            p, r = pred[atoms, i, j], ref[atoms, i, j]
            expected.append(min(float(((p - r) ** 2).mean()), float(((p + r) ** 2).mean())))
    assert float(coupling_loss(pred, _labels(ref))) == pytest.approx(np.mean(expected))


def test_unlabelled_structures_and_lower_triangle_never_enter():
    """Masked structures' reference values (here NaN) and the predicted d_ji, d_ii entries do
    not change the loss or its gradient; no labelled structure gives 0."""
    g = torch.Generator().manual_seed(2)
    ref, pred = _antisymmetric(g), _antisymmetric(g).requires_grad_(True)
    mask = (True, False, True)
    base = coupling_loss(pred, _labels(ref, mask))
    poisoned = ref.clone()
    poisoned[2:5] = float("nan")  # structure 1
    loss = coupling_loss(pred, _labels(poisoned, mask))
    (grad,) = torch.autograd.grad(loss, pred)
    assert torch.equal(loss, base) and torch.isfinite(grad).all()
    lower = torch.ones(S, S, dtype=torch.bool).tril()  # d_ji (j > i) and d_ii
    assert torch.all(grad[2:5] == 0) and torch.all(grad[:, lower] == 0)
    none = coupling_loss(pred, _labels(ref, (False, False, False)))
    assert float(none.detach()) == 0.0


def test_huber_coupling_loss_equals_squares_below_delta():
    """With errors below delta the Huber loss equals the squared one; above, it is smaller."""
    g = torch.Generator().manual_seed(3)
    ref = _antisymmetric(g)
    small = ref + 1e-3 * _antisymmetric(g)
    assert float(coupling_loss(small, _labels(ref), 0.5)) == pytest.approx(
        float(coupling_loss(small, _labels(ref))), rel=1e-12
    )
    large = ref + 10 * _antisymmetric(g)
    assert float(coupling_loss(large, _labels(ref), 0.5)) < float(
        coupling_loss(large, _labels(ref))
    )
    assert torch.equal(robust_square(torch.tensor([0.2]), 0.5), torch.tensor([0.2]) ** 2)


def test_coupling_weight_defaults_to_zero_and_is_checked():
    """loss.nacs defaults to 0 (training as before); negative weights and thresholds are
    refused naming the key; the Huber threshold applies with kind: huber only."""
    assert LossConfig().nacs == 0.0 and LossConfig().delta_nacs() is None
    assert LossConfig(kind="huber", huber_delta_nacs=0.2).delta_nacs() == 0.2
    for key, value in (("nacs", -1.0), ("huber_delta_nacs", 0.0)):
        with pytest.raises(ValueError, match=f"loss.{key}"):
            TrainConfig.from_dict({"data": "x.h5", "loss": {key: value}})


def test_coupling_metrics_are_phase_free_and_by_hand():
    """MAE/RMSE per pair take each structure's error against the nearer sign of the reference;
    flipping reference signs changes nothing; unlabelled structures are left out."""
    rng = np.random.default_rng(4)
    ref = rng.normal(size=(sum(N_ATOMS), 2, 2, 3))
    ref = ref - ref.transpose(0, 2, 1, 3)
    pred = ref + 0.01 * rng.normal(size=ref.shape)
    pred[2:5] *= -1  # structure 1 predicted with the other sign
    mask = np.array([True, True, False])
    n_atoms = np.array(N_ATOMS)
    (m,) = coupling_metrics(pred, ref, mask, n_atoms)
    err = np.abs(pred[:5, 0, 1] - ref[:5, 0, 1])
    err[2:5] = np.abs(pred[2:5, 0, 1] + ref[2:5, 0, 1])
    assert m["pair"] == [0, 1] and m["n"] == 2
    assert m["mae"] == pytest.approx(err.mean())
    assert m["ref_mae"] == pytest.approx(np.abs(ref[:5, 0, 1]).mean())
    flipped = ref.copy()
    flipped[:2] *= -1
    assert coupling_metrics(pred, flipped, mask, n_atoms) == [m]
    assert coupling_metrics(pred, ref, np.zeros(3, bool), n_atoms)[0]["mae"] is None
