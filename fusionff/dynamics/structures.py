"""Electronic structures for dynamics, built from the name a run input gives them.

A run input names its potential as ``{<kind>: <options>}`` (``potential: PATH`` is short for
``{model: PATH}``). Each kind is registered with :func:`register_structure`: a dataclass of its
options (the YAML mapping is checked against it; a scalar value fills its ``shorthand``
option) and a factory ``factory(options, atoms, device) -> ElectronicStructure``. A factory
may be given as a ``"module:function"`` string, imported only when a run builds that kind, so
importing the registry (or the runner) imports no backend: no MOPAC, no model code.

Built in: ``model`` (a ``*.fff`` file), ``tully`` (Tully's 1D models), ``mopac`` (the
reference program itself, R1) and ``casscf`` (SA-CASSCF through OpenMolcas, R2). A new
backend registers its kind here or from its own module::

    @dataclass
    class OrcaOptions:
        n_states: int = 2
        workers: int = 1

    register_structure("orca", "mypackage.orca:dynamics_structure",
                       OrcaOptions, runtime_options=("workers",))

and ``potential: {orca: {n_states: 3}}`` then works in a run input; the runner is not
touched. Options that change results belong to the run's identity (a checkpoint resumes
only with the same ones); name those that do not (parallelism) in ``runtime_options``. An
option added to a kind after runs were made with it takes ``metadata={"added": True}`` on its
field: at its default it is left out of the identity, so those runs still resume.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from ase import Atoms

from fusionff.config_schema import ConfigError
from fusionff.dynamics.protocol import ElectronicStructure
from fusionff.dynamics.tully import TULLY_MODELS

__all__ = [
    "StructureKind",
    "register_structure",
    "structure_kind",
    "structure_kinds",
    "ModelOptions",
    "TullyOptions",
    "MopacOptions",
    "CasscfOptions",
]

Factory = Callable[[Any, Atoms | None, torch.device], ElectronicStructure]


@dataclass(frozen=True)
class StructureKind:
    """A registered kind of electronic structure.

    Attributes:
        name: the key in a run input's ``potential`` mapping.
        factory: ``(options, atoms, device) -> ElectronicStructure`` or ``"module:function"``;
            ``atoms`` is the run's molecule (None for model systems).
        options: the dataclass of its options.
        shorthand: the option a scalar value sets (``{model: PATH}`` sets ``path``).
        molecular: runs on a molecule (``structure``, Wigner or file starts); False for model
            systems, which start from ``initial_conditions.x0``/``k``.
        runtime_options: options that do not change results (left out of the run identity).
        content_option: an option holding a file path, or a list of them, whose bytes
            identify the potential (the run identity includes their SHA-256).
    """

    name: str
    factory: Factory | str
    options: type
    shorthand: str | None = None
    molecular: bool = True
    runtime_options: tuple[str, ...] = ()
    content_option: str | None = None

    def build(self, options: Any, atoms: Atoms | None, device: torch.device):
        """The electronic structure for ``options`` (imports the backend now)."""
        factory = self.factory
        if isinstance(factory, str):
            module, _, name = factory.partition(":")
            factory = getattr(importlib.import_module(module), name)
        return factory(options, atoms, device)


_REGISTRY: dict[str, StructureKind] = {}


def register_structure(
    kind: str,
    factory: Factory | str,
    options: type,
    *,
    shorthand: str | None = None,
    molecular: bool = True,
    runtime_options: tuple[str, ...] = (),
    content_option: str | None = None,
) -> StructureKind:
    """Make ``potential: {kind: ...}`` available to run inputs (see :class:`StructureKind`).
    Registering a name twice is an error."""
    if kind in _REGISTRY:
        raise ValueError(f"electronic structure kind {kind!r} is already registered")
    if not dataclasses.is_dataclass(options):
        raise TypeError(f"options of {kind!r} must be a dataclass, got {options!r}")
    names = {f.name for f in dataclasses.fields(options)}
    for name in (shorthand, content_option, *runtime_options):
        if name is not None and name not in names:
            raise ValueError(f"{kind!r}: {name!r} is not an option of {options.__name__}")
    entry = StructureKind(
        kind, factory, options, shorthand, molecular, tuple(runtime_options), content_option
    )
    _REGISTRY[kind] = entry
    return entry


def structure_kind(kind: str) -> StructureKind:
    """The registered kind ``kind`` (KeyError naming the known kinds)."""
    if kind not in _REGISTRY:
        raise KeyError(f"no electronic structure kind {kind!r} (known: {structure_kinds()})")
    return _REGISTRY[kind]


def structure_kinds() -> list[str]:
    """Names of the registered kinds, sorted."""
    return sorted(_REGISTRY)


# built-in kinds ----------------------------------------------------------------------------
@dataclass
class ModelOptions:
    """A trained model. path: the ``*.fff`` file, or a list of them: a committee, whose mean
    energies, forces and (diabatic heads) couplings drive the dynamics (members must share
    elements and number of states)."""

    path: str | list[str]

    def __post_init__(self) -> None:
        if isinstance(self.path, list) and not self.path:
            raise ConfigError("potential.model: a committee needs at least one model file")

    @property
    def paths(self) -> list[str]:
        """Every model file, one for a single model."""
        return list(self.path) if isinstance(self.path, list) else [self.path]


@dataclass
class TullyOptions:
    """Tully's one-dimensional models. model: "simple", "dual" or "extended"."""

    model: str

    def __post_init__(self) -> None:
        if self.model not in TULLY_MODELS:
            raise ConfigError(f"potential.tully: one of {sorted(TULLY_MODELS)}, got {self.model!r}")


@dataclass
class MopacOptions:
    """MOPAC itself (level R1 unless ``keywords`` say otherwise).

    Attributes:
        n_states: states computed.
        keywords: MOPAC keywords without ROOT (default: level R1).
        timeout: s, limit of one MOPAC run.
        workers: MOPAC runs at the same time: the structures of a batch are computed in
            parallel, so use about one per core with batch_size >= workers.
    """

    n_states: int = 2
    keywords: str | None = None
    timeout: float = field(default=600.0, metadata={"unit": "s"})
    workers: int = 1

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ConfigError(f"potential.mopac.workers: must be at least 1, got {self.workers}")


def _model(options: ModelOptions, atoms: Atoms | None, device: torch.device):
    from fusionff.dynamics.ml import MLElectronicStructure

    for path in options.paths:
        if not Path(path).exists():
            raise FileNotFoundError(f"potential: no model file {path}")
    return MLElectronicStructure(options.path, atoms.numbers, device=str(device))


def _tully(options: TullyOptions, atoms: Atoms | None, device: torch.device):
    from fusionff.dynamics.tully import TullyModel

    return TullyModel(options.model)


def _mopac(options: MopacOptions, atoms: Atoms | None, device: torch.device):
    from fusionff.dynamics.protocol import ASECalculatorStructure
    from fusionff.labeling.calculator import MopacCalculator

    keywords = {} if options.keywords is None else {"keywords": options.keywords}
    calculator = MopacCalculator(n_states=options.n_states, timeout=options.timeout, **keywords)
    return ASECalculatorStructure(calculator, atoms, options.n_states, workers=options.workers)


@dataclass
class CasscfOptions:
    """SA-CASSCF(2,2) through OpenMolcas itself (level R2 with the defaults; see
    :mod:`fusionff.labeling.molcas`): energies, forces and couplings of every state, each
    structure starting from the orbitals of the nearest structure computed before (in
    practice its own trajectory's previous step).

    Attributes:
        active_atoms: the two atoms (0-based) of the C=C bond whose pi/pi* pair is active
            (stilbene: [0, 13]).
        n_states: states averaged and computed (at most 3).
        basis: basis set.
        couplings: compute non-adiabatic couplings (FSSH then uses them; without, the
            energies-only algorithms).
        timeout: s, limit of one OpenMolcas job.
        workers: OpenMolcas jobs at the same time (the structures of a batch in parallel).
        both_starts: also converge each step from fresh RHF orbitals and keep the lower state
            average (as ``fusionff label`` does by default; 1.1-1.5x the cost). Off by default:
            a trajectory follows its own previous step, which keeps its surface continuous;
            turn it on where following may have kept a higher solution (an energy drift at
            the first steps says so).
        screen_rmsd: Angstrom; a structure whose nearest computed neighbour is farther than
            this is converged from both starts even without ``both_starts``: a trajectory's
            first step (and its first after a resume) would otherwise follow the orbitals of
            another trajectory of the batch, which put a stilbene start on the higher of two
            SA-CASSCF solutions (S1 2.6 eV too high). Consecutive steps are 0.01-0.03 A apart
            and still follow alone.
    """

    active_atoms: list[int] = field(default_factory=lambda: [0, 1])
    n_states: int = 2
    basis: str = "STO-3G"
    couplings: bool = True
    timeout: float = field(default=1800.0, metadata={"unit": "s"})
    workers: int = 1
    both_starts: bool = field(default=False, metadata={"added": True})
    screen_rmsd: float = field(default=0.1, metadata={"unit": "Angstrom", "added": True})

    def __post_init__(self) -> None:
        if not self.screen_rmsd >= 0:
            raise ConfigError(f"potential.casscf.screen_rmsd: must be >= 0, got {self.screen_rmsd}")
        if len(self.active_atoms) != 2:
            raise ConfigError(
                f"potential.casscf.active_atoms: two atom indices, got {self.active_atoms}"
            )
        if not 1 <= self.n_states <= 3:
            raise ConfigError(f"potential.casscf.n_states: 1 to 3, got {self.n_states}")
        if self.workers < 1:
            raise ConfigError(f"potential.casscf.workers: must be at least 1, got {self.workers}")


def _casscf(options: CasscfOptions, atoms: Atoms | None, device: torch.device):
    from fusionff.dynamics.protocol import ASECalculatorStructure
    from fusionff.labeling.calculator import CasscfCalculator

    calculator = CasscfCalculator(
        tuple(options.active_atoms),
        n_states=options.n_states,
        basis=options.basis,
        couplings=options.couplings,
        timeout=options.timeout,
        both_starts=options.both_starts,
        screen_above_rmsd=options.screen_rmsd,
    )
    return ASECalculatorStructure(
        calculator,
        atoms,
        options.n_states,
        provides_nacs=options.couplings,
        workers=options.workers,
    )


register_structure("model", _model, ModelOptions, shorthand="path", content_option="path")
register_structure("tully", _tully, TullyOptions, shorthand="model", molecular=False)
register_structure("mopac", _mopac, MopacOptions, runtime_options=("workers",))
register_structure("casscf", _casscf, CasscfOptions, runtime_options=("workers",))
