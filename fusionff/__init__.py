"""fusionff: multi-state equivariant potentials (fusion-block MACE) and batched surface hopping.

Units at every public interface: energies in eV, lengths in Angstrom, time in fs, masses in amu.
"""

__version__ = "0.1.0"

from fusionff.calculator import FusionCalculator  # noqa: E402
from fusionff.models import (  # noqa: E402
    ModelConfig,
    ModelFileError,
    MultiStateMACE,
    load_model,
    save_model,
)
from fusionff.potential import Potential  # noqa: E402

__all__ = [
    "FusionCalculator",
    "ModelConfig",
    "ModelFileError",
    "MultiStateMACE",
    "Potential",
    "__version__",
    "load_model",
    "save_model",
]
