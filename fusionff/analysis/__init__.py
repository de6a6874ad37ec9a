"""Analysis of surface-hopping ensembles: populations, decay times, products, yields, hops.

Reads run directories only (H5MD trajectories and the ensemble summary; no PyTorch). Modules:
``run`` (reading), ``populations``, ``lifetime`` (decay fits), ``dihedral`` (MDAnalysis;
stilbene's central dihedral), ``products`` (isomers, yields), ``hops``, ``analyze`` (all of
it), ``plots`` and ``cli`` (``fusionff analyze``). The names below are imported lazily, so
the command line starts without h5py, MDAnalysis, scipy or matplotlib.
"""

from importlib import import_module

_EXPORTS = {
    "Analysis": "fusionff.analysis.analyze",
    "AnalysisOptions": "fusionff.analysis.analyze",
    "analyze_run": "fusionff.analysis.analyze",
    "analysis_to_dict": "fusionff.analysis.analyze",
    "format_report": "fusionff.analysis.analyze",
    "read_run": "fusionff.analysis.run",
    "Run": "fusionff.analysis.run",
    "Trajectory": "fusionff.analysis.run",
    "population_curves": "fusionff.analysis.populations",
    "fit_decay": "fusionff.analysis.lifetime",
    "detect_stilbene_dihedral": "fusionff.analysis.dihedral",
    "dihedral_series": "fusionff.analysis.dihedral",
    "product_statistics": "fusionff.analysis.products",
    "hop_statistics": "fusionff.analysis.hops",
    "plot_all": "fusionff.analysis.plots",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'fusionff.analysis' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
