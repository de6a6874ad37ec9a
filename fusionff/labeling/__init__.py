"""Reference labels for training: backends for quantum-chemistry programs (MOPAC at R1,
SA-CASSCF through OpenMolcas at R2),
a multi-state ASE calculator around them, and parallel resumable labelling into a dataset."""

from fusionff.labeling.backend import LabelResult, ReferenceBackend
from fusionff.labeling.calculator import CasscfCalculator, MopacCalculator, ReferenceCalculator
from fusionff.labeling.mopac import KCAL_PER_MOL_TO_EV, R1_KEYWORDS, MopacBackend
from fusionff.labeling.runner import LabelSummary, label

__all__ = [
    "CasscfCalculator",
    "ReferenceCalculator",
    "KCAL_PER_MOL_TO_EV",
    "R1_KEYWORDS",
    "LabelResult",
    "LabelSummary",
    "MopacBackend",
    "MopacCalculator",
    "ReferenceBackend",
    "label",
]
