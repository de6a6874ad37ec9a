"""Shared fixtures: small float64 models, their outputs, test structures and relative errors."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from fusionff import MultiStateMACE

ROOT = Path(__file__).resolve().parents[1]


def load_script(relative: str):
    """A repository script that is not part of the package (e.g. ``data/stilbene/r2/x.py``),
    imported as a module from its path relative to the repository root."""
    path = ROOT / relative
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def pytest_addoption(parser):
    parser.addoption(
        "--run-slow",
        action="store_true",
        default=False,
        help="also run the tests marked slow (skipped by default so that the suite takes about "
        "five minutes on two cores; FUSIONFF_RUN_SLOW=1 does the same, -m slow runs them alone)",
    )


def pytest_collection_modifyitems(config, items):
    """Skip tests marked ``slow`` unless asked for: ``--run-slow``, ``FUSIONFF_RUN_SLOW=1``,
    or a ``-m`` expression that names them. Skipped, not deselected, so that the summary says
    how many were left out and how to run them."""
    wanted = config.getoption("--run-slow") or os.environ.get("FUSIONFF_RUN_SLOW") == "1"
    if wanted or "slow" in (config.getoption("-m") or ""):
        return
    skip = pytest.mark.skip(reason="slow: run with --run-slow (or -m slow for these alone)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session", autouse=True)
def _threads():
    torch.set_num_threads(min(2, torch.get_num_threads()))


def small_model(fusion: bool, n_states: int = 3, **overrides) -> MultiStateMACE:
    """A small but complete model (every block present) for exact tests; float64."""
    kw = dict(
        elements=["H", "C", "O"],
        n_states=n_states,
        r_max=3.5,
        channels=8,
        l_max=2,
        hidden_l_max=1,
        correlation=3,
        num_layers=2,
        fusion=fusion,
        dtype="float64",
        avg_num_neighbors=4.0,
    )
    kw.update(overrides)
    torch.manual_seed(0)
    model = MultiStateMACE(**kw)
    # random E0s and scale/shift so that every buffer takes part in the checks
    with torch.no_grad():
        model.e0.normal_()
        model.scale.uniform_(0.5, 2.0)
        model.shift.normal_()
    return model


def outputs_with_couplings(model: MultiStateMACE, numbers, positions) -> dict[str, np.ndarray]:
    """The model's outputs for one structure (``numbers`` (N,), ``positions`` (N, 3) Angstrom),
    couplings included, as arrays: energies (1, S) eV, forces (N, S, 3) eV/Angstrom, nacs
    (N, S, S, 3) 1/Angstrom and whatever else its head returns."""
    out = model.evaluate_structures([numbers], [positions], compute_couplings=True)
    return {k: v.detach().numpy() for k, v in out.items()}


def relative_error(a: np.ndarray, b: np.ndarray) -> float:
    """max |a - b| over the largest |b| (at least 1e-12): the error of ``a`` relative to ``b``."""
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-12))


@pytest.fixture(params=[False, True], ids=["plain", "fusion"], scope="module")
def model(request) -> MultiStateMACE:
    return small_model(fusion=request.param)


def random_molecule(rng: np.random.Generator, n: int = 9) -> tuple[np.ndarray, np.ndarray]:
    """A compact random H/C/O cluster with no two atoms closer than 0.9 Angstrom."""
    numbers = rng.choice([1, 6, 8], size=n)
    positions: list[np.ndarray] = []
    while len(positions) < n:
        x = rng.uniform(-1.8, 1.8, size=3)
        if all(np.linalg.norm(x - p) > 0.9 for p in positions):
            positions.append(x)
    return numbers, np.array(positions)


def random_crystal(
    rng: np.random.Generator, n: int = 5
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A triclinic periodic cell (rows = lattice vectors, Angstrom) with n atoms inside."""
    cell = np.diag([3.2, 3.6, 3.4]) + rng.uniform(-0.4, 0.4, size=(3, 3))
    frac = rng.uniform(0, 1, size=(n, 3))
    numbers = rng.choice([1, 6, 8], size=n)
    return numbers, frac @ cell, cell
