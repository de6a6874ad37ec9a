"""Reference labels for training: backends for quantum-chemistry programs (MOPAC at R1 first),
a multi-state ASE calculator around them, and parallel resumable labelling into a dataset."""

from fusionff.labeling.backend import LabelResult, ReferenceBackend
from fusionff.labeling.calculator import MopacCalculator
from fusionff.labeling.mopac import KCAL_PER_MOL_TO_EV, R1_KEYWORDS, MopacBackend
from fusionff.labeling.runner import LabelSummary, label

__all__ = [
    "KCAL_PER_MOL_TO_EV",
    "R1_KEYWORDS",
    "LabelResult",
    "LabelSummary",
    "MopacBackend",
    "MopacCalculator",
    "ReferenceBackend",
    "label",
]
