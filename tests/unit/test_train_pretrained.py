"""init_from (fusionff.train.pretrained): which parameters a fine-tune copies, which keys must
match the model file, and which come from it."""

from __future__ import annotations

import pytest
import torch

from fusionff.models.config import ModelConfig
from fusionff.models.multistate_mace import MultiStateMACE
from fusionff.train.config import ConfigError
from fusionff.train.pretrained import copy_matching_parameters, fine_tune_model_keys

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
