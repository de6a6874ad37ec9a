"""Sign-free learned couplings (``couplings: outer``): D = d d^T per structure and state pair.

Checked in float64: D transforms as (Q x 1) D (Q x 1)^T under rotations and reflections and
follows permutations of the atoms, to 1e-10 relative, and so do the couplings taken out of it
(up to their sign); the loss on D ignores the signs of the reference couplings; on a toy
molecule with a C2 symmetry whose coupling is antisymmetric under the swap of its halves the
outer readout fits what the vector readout cannot; D = 0 and degenerate D give finite couplings
and gradients; model files keep the mode bit for bit; the config names bad values; training
and the Potential take the mode through their usual paths.
"""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from fusionff import MultiStateMACE, load_model, save_model
from fusionff.data.graph import build_graph
from fusionff.models.config import ModelConfig
from fusionff.models.io import read_header
from fusionff.nn.outer_couplings import couplings_from_outer, structure_pairs
from fusionff.potential import Potential
from fusionff.train.config import ConfigError, TrainConfig
from fusionff.train.data import Labels
from fusionff.train.loss import coupling_loss, outer_coupling_loss
from fusionff.train.metrics import coupling_metrics
from fusionff.train.trainer import Trainer
from tests.conftest import random_molecule, relative_error, small_model
from tests.integration.train_helpers import TINY_MODEL
from tests.unit.test_train_couplings import write_coupling_toy

TOL = 1e-10


def _model(n_states: int = 3, seed: int = 0, **overrides) -> MultiStateMACE:
    model = small_model(
        fusion=False, n_states=n_states, couplings="outer", coupling_scale=3.0, **overrides
    )
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in model.coupling_readout.parameters():
            p.normal_()
    return model


def _eval(model: MultiStateMACE, numbers: list, positions: list) -> dict[str, torch.Tensor]:
    out = model.evaluate_structures(numbers, positions, compute_couplings=True)
    return {k: v.detach() for k, v in out.items()}


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return relative_error(a.numpy(), b.numpy())


def _same_up_to_sign(a: torch.Tensor, b: torch.Tensor, counts: list[int]) -> float:
    """Largest relative difference of couplings (n, S, S, 3) per structure and pair, each
    compared with the sign of b that fits better."""
    worst, start = 0.0, 0
    for n in counts:
        x, y = a[start : start + n], b[start : start + n]
        sign = torch.where((x * y).sum(dim=(0, 3), keepdim=True) < 0, -1.0, 1.0)
        worst = max(worst, _rel(x, sign * y))
        start += n
    return worst


def _labels(nacs: torch.Tensor, counts: list[int], mask=None) -> Labels:
    b, n, s = len(counts), sum(counts), nacs.shape[1]
    return Labels(
        energies=torch.zeros(b, s, dtype=torch.float64),
        energy_mask=torch.zeros(b, s, dtype=torch.bool),
        forces=torch.zeros(n, s, 3, dtype=torch.float64),
        force_mask=torch.zeros(n, s, dtype=torch.bool),
        n_atoms=torch.tensor(counts, dtype=torch.float64),
        nacs=nacs,
        nac_mask=torch.ones(b, dtype=torch.bool) if mask is None else torch.tensor(mask),
    )


def test_structure_pairs_list_every_ordered_pair_of_each_structure():
    """structure_pairs of (2, 3, 1) atoms: 4 + 9 + 1 pairs, a-major, structure after
    structure, never across structures."""
    first, second, owner = structure_pairs(torch.tensor([2, 3, 1]))
    pairs = list(zip(first.tolist(), second.tolist(), strict=True))
    assert pairs[:4] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert pairs[4:7] == [(2, 2), (2, 3), (2, 4)] and pairs[-1] == (5, 5)
    assert owner.tolist() == [0] * 4 + [1] * 9 + [2]


@pytest.mark.parametrize("transform", ["rotation", "reflection"])
def test_outer_products_and_couplings_are_equivariant_under_o3(transform):
    """Two structures (9 and 6 atoms), three states: D(QR) = Q D_ab(R) Q^T on every block and
    pair, and d(QR) = +-Q d(R) per structure and pair, for random rotations Q and reflections
    -Q, to 1e-10 relative; energies invariant. D is symmetric (D_ba = D_ab^T) and d is not
    trivially zero."""
    model = _model()
    rng = np.random.default_rng(1)
    (z1, x1), (z2, x2) = random_molecule(rng), random_molecule(rng, n=6)
    a = _eval(model, [z1, z2], [x1, x2])
    first, second, _ = structure_pairs(torch.tensor([9, 6]))
    pairs = list(zip(first.tolist(), second.tolist(), strict=True))
    index = {pair: m for m, pair in enumerate(pairs)}
    back = torch.tensor([index[(s, f)] for f, s in pairs])  # the pair (b, a) of each (a, b)
    assert _rel(a["nac_outer"][back], a["nac_outer"].transpose(-1, -2)) < 1e-14
    assert a["nacs"][:, 0, 1].abs().max() > 1e-2
    for _ in range(2):
        q = Rotation.random(random_state=rng.integers(1 << 31)).as_matrix()
        q = torch.tensor(q if transform == "rotation" else -q)
        b = _eval(model, [z1, z2], [x1 @ q.numpy().T, x2 @ q.numpy().T])
        assert _rel(b["energies"], a["energies"]) < TOL
        assert _rel(b["nac_outer"], q @ a["nac_outer"] @ q.T) < TOL
        assert _same_up_to_sign(b["nacs"], a["nacs"] @ q.T, [9, 6]) < TOL


def test_outer_products_follow_a_permutation_of_the_atoms():
    """Renumbering the atoms of a molecule (like atoms swap places) permutes D's blocks:
    D'_ab = D_pi(a)pi(b), and d'_a = +-d_pi(a), to 1e-10 relative."""
    model = _model(n_states=2, seed=1)
    rng = np.random.default_rng(2)
    z, x = random_molecule(rng, n=8)
    perm = rng.permutation(len(z))
    a = _eval(model, [z], [x])
    b = _eval(model, [z[perm]], [x[perm]])
    n = len(z)
    d_a = a["nac_outer"].reshape(n, n, 1, 3, 3)
    d_b = b["nac_outer"].reshape(n, n, 1, 3, 3)
    p = torch.as_tensor(perm)
    assert _rel(d_b, d_a[p][:, p]) < TOL
    assert _same_up_to_sign(b["nacs"], a["nacs"][p], [n]) < TOL


def test_outer_loss_ignores_the_signs_of_reference_couplings():
    """Flipping d_ij^ref of any structure and pair leaves the loss (squares and Huber) and its
    gradient unchanged; the loss is zero at D = d_ref d_ref^T, an unlabelled structure counts
    nothing, and the Huber loss equals the squared one below its threshold and is smaller
    above it."""
    counts, s = [2, 3, 1], 3
    g = torch.Generator().manual_seed(0)
    nacs = torch.randn(sum(counts), s, s, 3, generator=g, dtype=torch.float64)
    nacs = nacs - nacs.transpose(1, 2)
    first, second, _ = structure_pairs(torch.tensor(counts))
    rows, cols = torch.triu_indices(s, s, offset=1)
    exact = nacs[first][:, rows, cols, :, None] * nacs[second][:, rows, cols, None, :]
    outer = exact + 0.3 * torch.randn(exact.shape, generator=g, dtype=torch.float64)
    outer.requires_grad_(True)
    assert float(outer_coupling_loss(exact, _labels(nacs, counts))) == 0.0
    for delta in (None, 0.5):
        loss = outer_coupling_loss(outer, _labels(nacs, counts), delta)
        (grad,) = torch.autograd.grad(loss, outer)
        for structure, pair in [(0, 0), (1, 2), (2, 1)]:
            flipped = nacs.clone()
            atoms = slice(sum(counts[:structure]), sum(counts[: structure + 1]))
            i, j = int(rows[pair]), int(cols[pair])
            flipped[atoms, i, j] *= -1
            flipped[atoms, j, i] *= -1
            other = outer_coupling_loss(outer, _labels(flipped, counts), delta)
            assert torch.equal(other, loss)
            assert torch.equal(torch.autograd.grad(other, outer)[0], grad)
    reference = _labels(nacs, counts, mask=[True, False, True])
    garbage = nacs.clone()
    garbage[2:5] = float("nan")  # the unlabelled structure's atoms
    masked = outer_coupling_loss(outer, _labels(garbage, counts, mask=[True, False, True]))
    assert torch.isfinite(masked) and torch.equal(masked, outer_coupling_loss(outer, reference))
    squares = outer_coupling_loss(outer, _labels(nacs, counts))
    assert torch.allclose(outer_coupling_loss(outer, _labels(nacs, counts), 100.0), squares)
    assert outer_coupling_loss(outer, _labels(nacs, counts), 0.1) < squares


# A toy molecule of two halves (C, O, H) that the C2 rotation g about z swaps: atom a + 3 is
# at g x_a. Within a half the distances are 1.1-1.6 Angstrom, across the halves 1.4 (C-C') and
# 2-3.8 for every other element pair, so a pair's elements and distance tell whether it lies
# within a half or across.
_HALF_Z = np.array([6, 8, 1])
_HALF_X = np.array([[0.7, 0.0, 0.0], [1.9, 0.3, 0.2], [1.0, -1.0, 0.3]])
_C2 = np.diag([-1.0, -1.0, 1.0])


def _toy_geometry(rng: np.random.Generator, symmetric: bool) -> np.ndarray:
    """6 atoms: the halves moved by 0.05 Angstrom per coordinate, the second half the C2 image
    of the first (symmetric) or moved independently."""
    a = _HALF_X + 0.05 * rng.normal(size=(3, 3))
    b = a @ _C2.T if symmetric else _HALF_X @ _C2.T + 0.05 * rng.normal(size=(3, 3))
    return np.concatenate([a, b])


def _toy_coupling(x: np.ndarray) -> np.ndarray:
    """d_a = sigma_a f_a (N, 3): f_a = sum_b exp(-|r_ab|^2 / 2) r_ab is equivariant, so at a
    symmetric geometry f_pi(a) = g f_a, and sigma = +1 on the first half, -1 on the second
    makes d_pi(a) = -g d_a (the A/B pattern of stilbene's S0/S1 coupling)."""
    r = x[None, :, :] - x[:, None, :]
    w = np.exp(-0.5 * (r**2).sum(-1))
    np.fill_diagonal(w, 0.0)
    return np.repeat([1.0, -1.0], 3)[:, None] * (w[..., None] * r).sum(1)


def _toy_labels(positions: list[np.ndarray]) -> Labels:
    d = torch.tensor(np.concatenate([_toy_coupling(x) for x in positions]))
    nacs = torch.zeros(len(d), 2, 2, 3, dtype=torch.float64)
    nacs[:, 0, 1], nacs[:, 1, 0] = d, -d
    return _labels(nacs, [6] * len(positions))


def _fit_toy(mode: str, positions: list[np.ndarray], labels: Labels) -> MultiStateMACE:
    """A tiny model's coupling readout (and trunk) fitted for 250 Adam steps, full batch."""
    torch.manual_seed(0)
    rms = float(labels.nacs[:, 0, 1].pow(2).mean().sqrt())
    model = MultiStateMACE(
        elements=["H", "C", "O"], n_states=2, r_max=3.0, channels=4, l_max=1, hidden_l_max=1,
        correlation=2, num_layers=1, radial_mlp=[8], readout_hidden=16, avg_num_neighbors=4.0,
        couplings=mode, coupling_scale=rms, coupling_terms=2,
    )  # fmt: skip
    graph = build_graph([np.concatenate([_HALF_Z, _HALF_Z])] * len(positions), positions, 3.0)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.02)
    for _ in range(250):
        out = model(graph, compute_forces=False, training=True, compute_couplings=True)
        if mode == "outer":
            loss = outer_coupling_loss(out["nac_outer"], labels)
        else:
            loss = coupling_loss(out["nacs"], labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model


def test_outer_readout_fits_a_coupling_antisymmetric_under_a_symmetry():
    """The key property. Trained on 8 symmetric and 8 distorted geometries of the C2 toy with
    a coupling antisymmetric under the swap, and evaluated on 8 new symmetric geometries: the
    vector readout stays at its floor (phase-free MAE at least the mean |d_ref|, the MAE of
    predicting zero, since its prediction is symmetric there), the outer readout's phase-free
    MAE is more than 10 times lower. Measured: 1.23 and 0.042 times mean |d_ref| (29x)."""
    rng = np.random.default_rng(0)
    train = [_toy_geometry(rng, k < 8) for k in range(16)]
    test = [_toy_geometry(rng, True) for _ in range(8)]
    test_labels = _toy_labels(test)
    test_z = [np.concatenate([_HALF_Z, _HALF_Z])] * len(test)
    errors = {}
    for mode in ("vector", "outer"):
        model = _fit_toy(mode, train, _toy_labels(train))
        nacs = _eval(model, test_z, test)["nacs"].numpy()
        (m,) = coupling_metrics(nacs, test_labels.nacs.numpy(), np.ones(8, bool), np.full(8, 6))
        errors[mode] = m["mae"]
        ref_mae = m["ref_mae"]
    assert errors["vector"] > 0.99 * ref_mae
    assert errors["outer"] < 0.1 * errors["vector"]


def test_couplings_of_zero_and_degenerate_outer_products_are_finite():
    """couplings_from_outer: D = 0 and a negative definite D give d = 0 exactly; D = identity
    (every eigenvalue 1) gives a finite unit-length d. A model whose pair weights are zero
    gives D = 0 and d = 0, and the loss on D has finite gradients for every parameter and the
    positions (the distance of an atom to itself, |0|, is not differentiated)."""
    counts = torch.tensor([3, 2])
    m = int((counts**2).sum())
    first, second, _ = structure_pairs(counts)
    eye = (first == second).to(torch.float64)[:, None, None, None] * torch.eye(3)
    for outer, norm in ((torch.zeros(m, 1, 3, 3), 0.0), (-eye, 0.0), (eye, 1.0)):
        d = couplings_from_outer(outer.to(torch.float64), counts, 2)
        assert torch.isfinite(d).all()
        for start, n in ((0, 3), (3, 2)):
            assert float(d[start : start + n, 0, 1].norm()) == pytest.approx(norm, abs=1e-14)
    model = _model(n_states=2)
    with torch.no_grad():
        model.coupling_readout.weights[-1].weight.zero_()
        model.coupling_readout.weights[-1].bias.zero_()
    rng = np.random.default_rng(3)
    z, x = random_molecule(rng, n=5)
    graph = build_graph([z], [x], model.r_max)
    out = model(graph, compute_couplings=True)
    assert torch.equal(out["nacs"], torch.zeros_like(out["nacs"]))
    positions = graph.positions.clone().requires_grad_(True)
    graph.positions = positions
    out = model(graph, compute_forces=False, training=True, compute_couplings=True)
    assert "nacs" not in out  # training: the eigen step is left out
    nacs = torch.tensor(rng.normal(size=(5, 2, 2, 3)))
    loss = outer_coupling_loss(out["nac_outer"], _labels(nacs - nacs.transpose(1, 2), [5]))
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is None or torch.isfinite(p.grad).all(), name
    assert torch.isfinite(positions.grad).all()


def test_model_file_keeps_outer_couplings_bit_for_bit(tmp_path):
    """save -> load (torch.load weights_only: no code runs): same config (couplings 'outer',
    coupling_terms, coupling_scale) and bitwise equal energies, forces, D and couplings. A
    vector-mode file whose header says couplings: true loads as 'vector' with the same
    outputs to the bit."""
    model = _model(n_states=3, seed=4, coupling_terms=3)
    save_model(model, tmp_path / "o.fff")
    torch.load(tmp_path / "o.fff", weights_only=True)
    header = read_header(tmp_path / "o.fff")["config"]
    assert (header["couplings"], header["coupling_terms"]) == ("outer", 3)
    loaded = load_model(tmp_path / "o.fff")
    assert loaded.config == model.config
    z, x = random_molecule(np.random.default_rng(5))
    a, b = _eval(model, [z], [x]), _eval(loaded, [z], [x])
    for key in ("energies", "forces", "nac_outer", "nacs"):
        assert torch.equal(a[key], b[key]), key

    vector = small_model(fusion=False, n_states=2, couplings=True, coupling_scale=2.0)
    save_model(vector, tmp_path / "v.fff")
    payload = torch.load(tmp_path / "v.fff", weights_only=True)
    old = json.loads(payload["header"])
    old["config"]["couplings"] = True
    del old["config"]["coupling_terms"]  # as written before the outer mode existed
    payload["header"] = json.dumps(old)
    torch.save(payload, tmp_path / "v.fff")
    loaded = load_model(tmp_path / "v.fff")
    assert loaded.config.couplings == "vector"
    a, b = _eval(vector, [z], [x]), _eval(loaded, [z], [x])
    assert torch.equal(a["nacs"], b["nacs"]) and "nac_outer" not in b


def test_config_takes_coupling_modes_and_names_bad_values():
    """couplings: False, True (read as 'vector'), 'vector', 'outer'; another value, or
    coupling_terms < 1, is an error naming the key and the value, in ModelConfig and in a
    training config's model mapping."""
    for value, mode in ((False, False), (True, "vector"), ("vector", "vector"),
                        ("outer", "outer")):  # fmt: skip
        assert ModelConfig(elements=["H"], n_states=2, couplings=value).couplings == mode
    with pytest.raises(ValueError, match="couplings must be .* got 'sideways'"):
        ModelConfig(elements=["H"], n_states=2, couplings="sideways")
    with pytest.raises(ValueError, match="coupling_terms = 0"):
        ModelConfig(elements=["H"], n_states=2, couplings="outer", coupling_terms=0)
    with pytest.raises(ValueError, match="adiabatic head"):
        ModelConfig(elements=["H"], n_states=2, head="diabatic", couplings="outer")
    with pytest.raises(ConfigError, match="model.couplings"):
        TrainConfig.from_dict({"data": "x.h5", "output": "o", "model": {"couplings": 3}})
    config = TrainConfig.from_dict({"data": "x.h5", "output": "o", "model": {"couplings": "outer"}})
    assert config.model["couplings"] == "outer"


def test_potential_gives_outer_couplings_in_its_layout():
    """Potential.evaluate of an outer-mode model: provides_nacs, nacs (B, S, S, N, 3) equal to
    the model's own couplings of each structure, up to their sign."""
    model = _model(n_states=2, seed=6)
    z, x = random_molecule(np.random.default_rng(7), n=6)
    potential = Potential(model, device="cpu")
    assert potential.provides_nacs
    xs = x[None] + 0.05 * np.random.default_rng(8).normal(size=(2, 6, 3))
    batched = potential.evaluate(z, xs)["nacs"]
    assert batched.shape == (2, 2, 2, 6, 3)
    for b in range(2):
        own = _eval(model, [z], [xs[b]])["nacs"]
        assert _same_up_to_sign(batched[b].permute(2, 0, 1, 3), own, [6]) < TOL


def test_training_with_outer_couplings_uses_the_loss_on_d(tmp_path):
    """Two epochs of a tiny adiabatic model with couplings: outer and loss.nacs > 0 on the
    coupling toy run through the trainer (training batches without the eigen step, validation
    predictions with D and couplings): finite losses, and the history and test metrics report
    the phase-free coupling MAE."""
    write_coupling_toy(tmp_path / "c.h5", n=12, seed=3)
    config = TrainConfig.from_dict(
        {
            "data": str(tmp_path / "c.h5"),
            "output": str(tmp_path / "run"),
            "model": {**TINY_MODEL, "couplings": "outer", "coupling_terms": 2},
            "split": {"train": 0.5, "validation": 0.25, "test": 0.25},
            "batch_size": 4,
            "max_epochs": 2,
            "device": "cpu",
            "seed": 1,
            "loss": {"energy": 1.0, "forces": 1.0, "nacs": 10.0},
            "schedule": {"name": "none"},
        }
    )
    trainer = Trainer(config, log=io.StringIO())
    assert trainer.train_couplings and trainer.model.config.couplings == "outer"
    result = trainer.fit()
    assert all(np.isfinite(r["train_loss"]) for r in result.history)
    assert result.history[-1]["val_nac_mae"][0] is not None
    assert result.test_metrics["couplings"][0]["mae"] is not None
