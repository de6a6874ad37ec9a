"""Batched non-adiabatic surface hopping (FSSH, kappa-TSH, Landau-Zener) on any multi-state
electronic structure: ML potentials, Tully's models or wrapped ASE calculators.

Units: eV, Angstrom, fs, amu (velocities Angstrom/fs); see :mod:`fusionff.units`.

The names below are imported lazily (``import fusionff.dynamics`` does not load PyTorch until
one of them is used), so the command line and configuration code start fast.
"""

from fusionff._lazy import lazy_exports

_EXPORTS = {
    "ALGORITHMS": ".algorithms",
    "HoppingAlgorithm": ".algorithms",
    "get_algorithm": ".algorithms",
    "register_algorithm": ".algorithms",
    "HopEvent": ".ase_driver",
    "SurfaceHopping": ".ase_driver",
    "SurfaceHoppingConfig": ".sh_config",
    "initial_state": ".engine",
    "run": ".engine",
    "step": ".engine",
    "total_energy": ".engine",
    "MLElectronicStructure": ".ml",
    "ASECalculatorStructure": ".protocol",
    "ElectronicStructure": ".protocol",
    "StateOutputs": ".protocol",
    "trajectory_seeds": ".rng",
    "uniform": ".rng",
    "RunConfig": ".run_config",
    "RunConfigError": ".run_config",
    "run_ensemble": ".runner",
    "tully_scattering": ".scattering",
    "Status": ".state",
    "SurfaceHoppingState": ".state",
    "TULLY_MODELS": ".tully",
    "TullyModel": ".tully",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports("fusionff.dynamics", _EXPORTS)
