"""Model construction: config validation, parameter counts, the info command."""

from __future__ import annotations

import pytest

from fusionff import ModelConfig, MultiStateMACE, save_model
from fusionff.cli import main


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(elements=["H", "Xx"]), "unknown chemical symbol 'Xx'"),
        (dict(elements=[]), "at least one"),
        (dict(elements=["H"], n_states=0), "n_states"),
        (dict(elements=["H"], dtype="float16"), "dtype"),
        (dict(elements=["H"], fusion_tree="star"), "fusion_tree"),
        (dict(elements=["H"], n_states=2, e0s={"H": [1.0]}), r"e0s\['H'\] has 1 entries"),
        (dict(elements=["H"], e0s={"C": [1.0]}), "not in elements"),
    ],
)
def test_invalid_config_names_the_key(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ModelConfig(**kwargs)


def test_unknown_config_key_is_an_error():
    with pytest.raises(ValueError, match="unknown keys"):
        ModelConfig.from_dict({"elements": ["H"], "chanels": 8})


def test_parameter_counts_of_fusion_and_plain_are_reported(capsys):
    """Prints the parameter counts of fusion and plain models of the same width (the
    foundation issue's comparison) and checks they are computed from real modules."""
    counts = {}
    for fusion in (False, True):
        m = MultiStateMACE(
            elements=["H", "C"],
            n_states=2,
            channels=32,
            l_max=2,
            correlation=3,
            num_layers=2,
            fusion=fusion,
        )
        counts[fusion] = m.num_parameters()
        assert counts[fusion] == sum(p.numel() for p in m.parameters() if p.requires_grad)
    with capsys.disabled():
        print(
            f"\nparameters (C=32, l_max=2, nu=3, 2 layers): plain {counts[False]:,}, "
            f"fusion {counts[True]:,}"
        )
    assert counts[False] != counts[True]  # the product blocks really differ


def test_info_command_prints_architecture(tmp_path, capsys):
    m = MultiStateMACE(elements=["H", "C"], n_states=2, channels=4, fusion=True)
    save_model(m, tmp_path / "m.fff")
    assert main(["info", str(tmp_path / "m.fff")]) == 0
    out = capsys.readouterr().out
    assert "H C" in out and "states" in out and f"{m.num_parameters():,}" in out
    assert "((h.A).A).A" in out


def test_info_command_reports_bad_file(tmp_path, capsys):
    (tmp_path / "bad.fff").write_bytes(b"not a model")
    assert main(["info", str(tmp_path / "bad.fff")]) == 1
    assert "bad.fff" in capsys.readouterr().err
