"""Analysis of surface-hopping ensembles: populations, decay times, products, yields, hops.

Reads run directories only (H5MD trajectories and the ensemble summary; no PyTorch). Modules:
``run`` (reading), ``intervals`` (binomial 95% intervals of fractions of trajectories),
``populations``, ``lifetime`` (decay fits), ``dihedral`` (MDAnalysis; stilbene's central
dihedral and ortho carbons), ``products`` (isomers, DHP, yields), ``hops``, ``diagnostics``
(smallest gaps, energy drift, flagged trajectories), ``domain`` (the run's domain limit
re-applied at a stricter distance), ``analyze`` (all of it), ``plots``, ``cli``
(``fusionff analyze``) and ``selection`` (frames to label next, by committee spread and gap).
The names below are imported lazily, so the command line starts without h5py, MDAnalysis,
scipy or matplotlib.
"""

from fusionff._lazy import lazy_exports

_EXPORTS = {
    "Analysis": "fusionff.analysis.analyze",
    "AnalysisOptions": "fusionff.analysis.analyze",
    "analyze_run": "fusionff.analysis.analyze",
    "analysis_to_dict": "fusionff.analysis.analyze",
    "format_report": "fusionff.analysis.analyze",
    "read_run": "fusionff.analysis.run",
    "Run": "fusionff.analysis.run",
    "Trajectory": "fusionff.analysis.run",
    "TrajectoryRecord": "fusionff.analysis.run",
    "read_records": "fusionff.analysis.run",
    "population_curves": "fusionff.analysis.populations",
    "fit_decay": "fusionff.analysis.lifetime",
    "Proportion": "fusionff.analysis.intervals",
    "clopper_pearson": "fusionff.analysis.intervals",
    "diagnostics": "fusionff.analysis.diagnostics",
    "detect_stilbene_dihedral": "fusionff.analysis.dihedral",
    "dihedral_series": "fusionff.analysis.dihedral",
    "detect_stilbene_ortho": "fusionff.analysis.dihedral",
    "ortho_distance_series": "fusionff.analysis.dihedral",
    "product_statistics": "fusionff.analysis.products",
    "hop_statistics": "fusionff.analysis.hops",
    "plot_all": "fusionff.analysis.plots",
    "select_frames": "fusionff.analysis.selection",
    "Selection": "fusionff.analysis.selection",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports("fusionff.analysis", _EXPORTS)
