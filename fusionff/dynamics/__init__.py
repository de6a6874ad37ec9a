"""Batched non-adiabatic surface hopping (FSSH, kappa-TSH, Landau-Zener) on any multi-state
electronic structure: ML potentials, Tully's models or wrapped ASE calculators.

Units: eV, Angstrom, fs, amu (velocities Angstrom/fs); see :mod:`fusionff.dynamics.units`.
"""

from fusionff.dynamics.algorithms import (
    ALGORITHMS,
    HoppingAlgorithm,
    get_algorithm,
    register_algorithm,
)
from fusionff.dynamics.ase_driver import HopEvent, SurfaceHopping
from fusionff.dynamics.engine import SurfaceHoppingConfig, initial_state, run, step, total_energy
from fusionff.dynamics.protocol import ASECalculatorStructure, ElectronicStructure, StateOutputs
from fusionff.dynamics.rng import trajectory_seeds, uniform
from fusionff.dynamics.scattering import tully_scattering
from fusionff.dynamics.state import Status, SurfaceHoppingState
from fusionff.dynamics.tully import TULLY_MODELS, TullyModel

__all__ = [
    "ALGORITHMS",
    "ASECalculatorStructure",
    "ElectronicStructure",
    "HopEvent",
    "HoppingAlgorithm",
    "StateOutputs",
    "Status",
    "SurfaceHopping",
    "SurfaceHoppingConfig",
    "SurfaceHoppingState",
    "TULLY_MODELS",
    "TullyModel",
    "get_algorithm",
    "initial_state",
    "register_algorithm",
    "run",
    "step",
    "total_energy",
    "trajectory_seeds",
    "tully_scattering",
    "uniform",
]

# ensemble runner (``fusionff run``)
from fusionff.dynamics.run_config import RunConfig, RunConfigError  # noqa: E402
from fusionff.dynamics.runner import run_ensemble  # noqa: E402

__all__ += ["RunConfig", "RunConfigError", "run_ensemble"]
