"""Model files: bit-identical round trip, clean failures on bad files, no code execution."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import torch

from fusionff import ModelFileError, Potential, load_model, save_model
from fusionff.models.io import FORMAT, read_header
from tests.conftest import random_molecule, small_model


@pytest.mark.parametrize("fusion", [False, True], ids=["plain", "fusion"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_save_load_gives_bit_identical_outputs(tmp_path, fusion, dtype):
    """Energies and forces of every state are bitwise equal after save -> load."""
    model = small_model(fusion=fusion, dtype=dtype)
    path = tmp_path / "m.fff"
    save_model(model, path, metadata={"note": "test"})
    loaded = load_model(path)
    z, x = random_molecule(np.random.default_rng(0))
    a = Potential(model, device="cpu").evaluate(z, x[None])
    b = Potential(loaded, device="cpu").evaluate(z, x[None])
    assert torch.equal(a["energies"], b["energies"])
    assert torch.equal(a["forces"], b["forces"])
    assert loaded.config == model.config
    assert read_header(path)["metadata"] == {"note": "test"}


def test_header_records_architecture_and_units(tmp_path):
    """The JSON header names the format, version, elements, states, units and size."""
    model = small_model(fusion=True)
    save_model(model, tmp_path / "m.fff")
    h = read_header(tmp_path / "m.fff")
    assert h["format"] == FORMAT and h["version"] == 1
    assert h["elements"] == ["H", "C", "O"] and h["n_states"] == 3
    assert h["units"]["energy"] == "eV" and h["units"]["length"] == "Angstrom"
    assert h["n_parameters"] == model.num_parameters()
    assert h["config"]["fusion"] is True


@pytest.fixture()
def saved(tmp_path):
    path = tmp_path / "m.fff"
    save_model(small_model(fusion=False, n_states=2), path)
    return path


def test_truncated_file_fails_cleanly(saved):
    """A model file cut in half raises ModelFileError naming the file."""
    data = saved.read_bytes()
    saved.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match="m.fff"):
        load_model(saved)


def test_file_of_another_format_fails_cleanly(tmp_path):
    """Random bytes, a JSON file and a torch file without the marker are all refused."""
    for name, content in [
        ("r.fff", bytes(range(256)) * 8),
        ("j.fff", json.dumps({"a": 1}).encode()),
    ]:
        (tmp_path / name).write_bytes(content)
        with pytest.raises(ModelFileError, match=name):
            load_model(tmp_path / name)
    torch.save({"weights": {}}, tmp_path / "t.fff")
    with pytest.raises(ModelFileError, match="not a fusionff model file"):
        load_model(tmp_path / "t.fff")


def test_unknown_version_fails_cleanly(saved):
    """A file claiming a future format version is refused with the version in the message."""
    payload = torch.load(saved, weights_only=True)
    payload["version"] = 99
    torch.save(payload, saved)
    with pytest.raises(ModelFileError, match="version 99"):
        load_model(saved)


def test_weights_not_matching_header_fail_cleanly(saved):
    """Weights of another architecture are refused, not silently half-loaded."""
    payload = torch.load(saved, weights_only=True)
    payload["weights"].pop(next(iter(payload["weights"])))
    torch.save(payload, saved)
    with pytest.raises(ModelFileError, match="do not match"):
        load_model(saved)


class _Exploit:
    def __reduce__(self):
        return (exec, ("import pathlib; pathlib.Path('PWNED').write_text('x')",))


def test_loading_executes_no_code(tmp_path, monkeypatch):
    """A file carrying a pickled callable is refused and the callable never runs."""
    monkeypatch.chdir(tmp_path)
    with open("evil.fff", "wb") as fh:
        payload = {"format": FORMAT, "version": 1, "header": "{}", "weights": _Exploit()}
        pickle.dump(payload, fh, protocol=2)
    with pytest.raises(ModelFileError):
        load_model("evil.fff")
    assert not (tmp_path / "PWNED").exists()


def test_missing_file_names_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.fff"):
        load_model(tmp_path / "nope.fff")
