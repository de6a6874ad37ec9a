"""fusionff: multi-state equivariant potentials (fusion-block MACE) and batched surface hopping.

Units at every public interface: energies in eV, lengths in Angstrom, time in fs, masses in amu.

The public names below are imported lazily, so ``import fusionff`` (and the command line, and
worker processes) start without loading PyTorch until a model is used.
"""

from fusionff._lazy import lazy_exports

__version__ = "0.1.0"

_EXPORTS = {
    "FusionCalculator": "fusionff.calculator",
    "ModelConfig": "fusionff.models.config",
    "ModelFileError": "fusionff.models.io",
    "MultiStateMACE": "fusionff.models.multistate_mace",
    "Potential": "fusionff.potential",
    "load_model": "fusionff.models.io",
    "save_model": "fusionff.models.io",
}

__all__ = sorted(_EXPORTS) + ["__version__"]

__getattr__, __dir__ = lazy_exports("fusionff", _EXPORTS)
