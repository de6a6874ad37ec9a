"""Multi-state datasets (HDF5), importers, neighbour lists and graphs."""

from fusionff.data.dataset import MultiStateDataset
from fusionff.data.importers import (
    find_xxmd_files,
    import_any,
    import_to_dataset,
    read_ase_db,
    read_extxyz,
    read_xxmd,
    write_ase_db,
    write_extxyz,
)
from fusionff.data.schema import FORMAT_NAME, FORMAT_VERSION, DatasetError
from fusionff.data.structure import STATUSES, Structure

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "STATUSES",
    "DatasetError",
    "MultiStateDataset",
    "Structure",
    "find_xxmd_files",
    "import_any",
    "import_to_dataset",
    "read_ase_db",
    "read_extxyz",
    "read_xxmd",
    "write_ase_db",
    "write_extxyz",
]
