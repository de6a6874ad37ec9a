"""init_from (fusionff.train.pretrained): which parameters a fine-tune copies, which keys must
match the model file, and which come from it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from e3nn import o3

from fusionff.data.graph import build_graph
from fusionff.models.config import ModelConfig
from fusionff.models.multistate_mace import MultiStateMACE
from fusionff.train.config import ConfigError
from fusionff.train.pretrained import (
    copy_matching_parameters,
    fine_tune_model_keys,
    identity_skip,
)

TINY = {
    "elements": ["H", "C"],
    "n_states": 2,
    "channels": 4,
    "num_layers": 2,
    "l_max": 1,
    "hidden_l_max": 1,
    "correlation": 2,
    "radial_mlp": [8],
    "readout_hidden": 4,
    "dtype": "float64",
}


def model(seed: int, **keys) -> MultiStateMACE:
    torch.manual_seed(seed)
    return MultiStateMACE(config=ModelConfig(**{**TINY, **keys}))


def parameters(m: MultiStateMACE) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in m.named_parameters()}


def test_matching_parameters_are_copied_and_the_diabatic_readouts_stay_fresh():
    """Adiabatic file -> diabatic model: every parameter with the file's name and shape equals
    the file's afterwards; the readouts (3 outputs per atom here, 2 in the file) keep their
    fresh values and are reported with both shapes; buffers (e0, scale, shift) are untouched."""
    source = model(0, e0s={"H": [1.0, 2.0], "C": [3.0, 4.0]}, scale=[5.0, 6.0])
    target = model(1, head="diabatic", e0s={"H": [-7.0, -8.0], "C": [-9.0, -1.0]})
    before = parameters(target)
    buffers = {n: b.clone() for n, b in target.named_buffers()}

    copied, fresh = copy_matching_parameters(target, source)

    theirs = dict(source.named_parameters())
    assert copied and fresh and set(copied) | set(fresh) == set(before)
    for name in copied:
        assert torch.equal(dict(target.named_parameters())[name], theirs[name]), name
    for name, why in fresh.items():
        assert name.startswith("readouts."), name
        assert "here" in why and "in the file" in why
        assert torch.equal(dict(target.named_parameters())[name], before[name]), name
    assert all(torch.equal(b, buffers[n]) for n, b in target.named_buffers())


def test_same_architecture_copies_everything_across_dtypes():
    """A float32 file into a float64 model of the same architecture: all parameters copied
    (cast), none left fresh."""
    source = model(0, dtype="float32")
    target = model(1)
    copied, fresh = copy_matching_parameters(target, source)
    assert not fresh and len(copied) == len(list(target.parameters()))
    for name, p in target.named_parameters():
        assert p.dtype == torch.float64
        assert torch.equal(p, dict(source.named_parameters())[name].double()), name


def test_parameters_the_file_lacks_stay_fresh():
    """Learned couplings the file's model does not have keep their initialisation and are
    reported as 'not in the file'."""
    target = model(1, couplings=True)
    before = parameters(target)
    _, fresh = copy_matching_parameters(target, model(0))
    assert fresh and all(n.startswith("coupling_readout.") for n in fresh)
    assert set(fresh.values()) == {"not in the file"}
    assert all(torch.equal(dict(target.named_parameters())[n], before[n]) for n in fresh)


def test_elements_and_neighbour_normalisation_come_from_the_file_unless_set():
    """Keys the config leaves out take the file's elements and avg_num_neighbors; statistics
    of the energies (e0s, scale, shift) are not taken; a config's own avg_num_neighbors wins."""
    file = ModelConfig(**TINY, avg_num_neighbors=12.5, e0s={"H": [1.0, 1.0]}, scale=[2.0, 2.0])
    keys = fine_tune_model_keys({"channels": 4}, file, "r1.fff")
    assert keys == {"channels": 4, "elements": ["H", "C"], "avg_num_neighbors": 12.5}
    assert (
        fine_tune_model_keys({"avg_num_neighbors": 9.0}, file, "r1.fff")["avg_num_neighbors"] == 9.0
    )


@pytest.mark.parametrize(
    ("keys", "file_keys", "message"),
    [
        (
            {"r_max": 4.0},
            {},
            r"model\.r_max: 4\.0 here, but init_from r1\.fff was trained with 5\.0",
        ),
        ({}, {"r_max": 4.5}, r"model\.r_max: 5\.0 here, .* with 4\.5"),
        ({"elements": ["C", "H"]}, {}, r"model\.elements: \['C', 'H'\] here"),
        ({"elements": ["H", "C", "O"]}, {}, r"model\.elements: "),
        ({"cutoff_p": 6}, {}, r"model\.cutoff_p: 6 here"),
        ({}, {"fusion": True, "fusion_tree": "balanced"}, r"model\.fusion_tree: 'chain' here"),
    ],
)
def test_keys_that_give_the_weights_their_meaning_must_match_the_file(keys, file_keys, message):
    """r_max, elements (order included), cutoff_p and fusion_tree differing from the file's
    (set in the config or left at the default) raise ConfigError naming the key."""
    file = ModelConfig(**{**TINY, **file_keys})
    with pytest.raises(ConfigError, match=message):
        fine_tune_model_keys(keys, file, "r1.fff")


def random_structures(seed: int):
    """Two small random molecules of H and C (positions in Angstrom)."""
    rng = np.random.default_rng(seed)
    numbers = [np.array([6, 6, 1, 1, 1, 1]), np.array([6, 1, 1, 6, 1])]
    positions = [rng.normal(scale=1.0, size=(6, 3)), rng.normal(scale=1.6, size=(5, 3))]
    return numbers, positions


@pytest.mark.parametrize("fusion", [True, False])
@pytest.mark.parametrize(("n_file", "n_model"), [(2, 3), (2, 4), (3, 5)])
def test_a_deeper_model_grown_from_a_file_computes_what_the_file_computes(fusion, n_file, n_model):
    """Energies and forces of every state of the grown model equal the file's to float64
    round-off (same e0, scale, shift), for fusion blocks and MACE's product basis: the file's
    last layer moves last and each inserted layer is an identity. Every parameter of the file
    is copied (renamed); the inserted layers' tensors are reported as inserted."""
    stats = {"e0s": {"H": [-13.6, -10.0], "C": [-1030.0, -1027.0]}, "scale": [1.7, 2.1]}
    source = model(0, num_layers=n_file, l_max=2, fusion=fusion, shift=[0.3, -0.2], **stats)
    target = model(1, num_layers=n_model, l_max=2, fusion=fusion, shift=[0.3, -0.2], **stats)

    copied, fresh = copy_matching_parameters(target, source)

    assert len(copied) == len(list(source.parameters()))
    inserted = {
        f"layer {k} inserted, starts as the identity" for k in range(n_file - 1, n_model - 1)
    }
    assert set(fresh.values()) == inserted
    numbers, positions = random_structures(2)
    theirs = source.evaluate_structures(numbers, positions)
    ours = target.evaluate_structures(numbers, positions)
    assert theirs["energies"].abs().min() > 1.0  # not trivially zero
    torch.testing.assert_close(ours["energies"], theirs["energies"], rtol=0, atol=1e-10)
    torch.testing.assert_close(ours["forces"], theirs["forces"], rtol=0, atol=1e-10)
    last = dict(target.named_parameters())
    for name, p in source.named_parameters():  # the file's last layer is the model's last
        parts = name.split(".")
        if parts[0] in ("interactions", "products", "skips", "readouts") and parts[1] == str(
            n_file - 1
        ):
            assert torch.equal(last[".".join([parts[0], str(n_model - 1), *parts[2:]])], p), name


def test_the_inserted_layers_learn_from_the_first_step():
    """An inserted layer starts at zero output but not at a stationary point: the gradient of
    an energy loss reaches its readout and its product's output map (else it would never
    move), and after one optimiser step the grown model differs from the file's."""
    source = model(0, num_layers=2, fusion=True)
    target = model(1, num_layers=3, fusion=True)
    copy_matching_parameters(target, source)
    numbers, positions = random_structures(3)
    graph = build_graph(numbers, positions, target.r_max, dtype=torch.float64)
    loss = target(graph, compute_forces=False)["energies"].pow(2).sum()
    loss.backward()
    assert target.readouts[1].linear.weight.grad.abs().max() > 0
    assert target.products[1].block.output.weight.grad.abs().max() > 0
    with torch.no_grad():
        for p in target.parameters():
            if p.grad is not None:
                p -= 1e-2 * p.grad
    after = target.evaluate_structures(numbers, positions)["energies"]
    assert not torch.allclose(after, source.evaluate_structures(numbers, positions)["energies"])


@pytest.mark.parametrize("n_file", [1, 3])
def test_a_shallower_or_one_layer_file_copies_by_name_only(n_file):
    """No growth unless the model is deeper than a file of at least two layers: a one-layer
    file into a two-layer model, or a three-layer file into a two-layer model, copies the
    parameters whose name and shape match and inserts nothing."""
    target = model(1, num_layers=2)
    _, fresh = copy_matching_parameters(target, model(0, num_layers=n_file))
    assert not any("inserted" in why for why in fresh.values())


@pytest.mark.parametrize("irreps", ["4x0e+4x1o", "3x0e+3x1o+3x2e"])
def test_identity_skip_passes_features_through_for_every_element(irreps):
    """The skip tensor product (features x one-hot element -> features) set to the identity
    returns its input for atoms of every element; a skip whose output irreps differ from its
    input's has no identity and is refused."""
    skip = o3.FullyConnectedTensorProduct(irreps, "3x0e", irreps)
    identity_skip(skip)
    x = torch.randn(6, skip.irreps_in1.dim)
    elements = torch.eye(3)[torch.tensor([0, 1, 2, 2, 1, 0])]
    torch.testing.assert_close(skip(x, elements), x)
    with pytest.raises(ValueError, match="no identity"):
        identity_skip(o3.FullyConnectedTensorProduct("4x0e", "3x0e", "2x0e"))
