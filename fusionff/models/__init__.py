"""Multi-state models and their files."""

from fusionff.models.config import ModelConfig
from fusionff.models.io import ModelFileError, load_model, read_header, save_model
from fusionff.models.multistate_mace import MultiStateMACE

__all__ = [
    "ModelConfig",
    "ModelFileError",
    "MultiStateMACE",
    "load_model",
    "read_header",
    "save_model",
]
