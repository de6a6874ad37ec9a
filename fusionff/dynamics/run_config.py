"""The input of ``fusionff run``: a YAML file turned into dataclasses.

Example (``md/stilbene_cis_s1.yaml``)::

    potential: potentials/stilbene-r1.fff    # or {tully: simple}, {mopac: {n_states: 2}}, or
                                             # {<kind>: {...}} of any registered kind
    structure: data/stilbene/cis-r1.xyz      # molecules only
    initial_conditions:
      wigner: {temperature: 300, hessian: compute, optimize: true}  # or hessian: FILE.npz
      # optimize: the S0 minimum of the run's own potential first (optimized.xyz), Hessian there
      state: 1                               # vertical excitation to S1
      energy_window: [3.5, 5.0]              # optional: keep samples whose S1-S0 gap is inside
    dynamics: {algorithm: kappa-tsh, dt: 0.5, decoherence: true}   # SurfaceHoppingConfig keys
    n_traj: 64
    batch_size: 16
    time_fs: 500                             # or n_steps
    write_every: 2                           # frames
    checkpoint_every: 100                    # steps
    device: auto
    seed: 0
    output: runs/stilbene_cis_s1
    stop: {state: 0, after_fs: 100}          # stop 100 fs after a trajectory first reaches S0
    threads: 1                               # PyTorch CPU threads (default: OMP_NUM_THREADS or 1)

With a committee potential (``potential: {model: [a.fff, b.fff]}``), ``dynamics: {committee:
{max_energy_std: 0.1, max_force_std: 1.0, action: flag}}`` (eV, eV/Angstrom) flags a
trajectory whose committee spread exceeds a limit (the largest spread of a state's energy, or
the force spread of the active state), recording why in its trajectory file; ``action: stop``
also stops it (status "committee-spread") while the others go on. See
:mod:`fusionff.dynamics.spread`; every frame of a committee run records the spreads.

Potentials come from the registry of :mod:`fusionff.dynamics.structures`: ``{kind: options}``
with the options checked against the kind's dataclass (a scalar sets its shorthand option:
``{model: PATH}``, ``{tully: simple}``).

Instead of ``wigner``, ``initial_conditions: {file: PATH, state: 1}`` starts trajectory i from
frame i of an ASE-readable file with velocities (extended XYZ with momenta), or, when PATH is
the output directory of an earlier run, exactly where trajectory i of that run started (the
same ensemble on another potential, e.g. the reference ``{mopac: ...}``).

Tully's models take ``initial_conditions: {x0: -10, k: 20}`` (bohr, atomic units of momentum)
and ``stop: {region_bohr: 10}`` (leave [-10, 10] bohr). Paths are relative to the working
directory. Unknown keys and values of the wrong type raise :class:`RunConfigError` naming the
key (``dynamics.dtt: unknown key ...``). ``fusionff run`` can replace the keys in
:data:`OVERRIDES` from its command line (:func:`with_overrides`) and print every resolved key
with its unit and default (:func:`describe_config`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from fusionff.config_schema import ConfigError, build_dataclass, unknown_key
from fusionff.device import default_threads
from fusionff.dynamics.engine import SurfaceHoppingConfig
from fusionff.dynamics.structures import StructureKind, structure_kind, structure_kinds

__all__ = [
    "RunConfigError",
    "PotentialSpec",
    "WignerSpec",
    "InitialConditionsSpec",
    "StopSpec",
    "RunConfig",
    "OVERRIDES",
    "with_overrides",
    "describe_config",
    "potential_identity",
]


class RunConfigError(ConfigError):
    """An invalid run input; the message names the key."""


_LEGACY_KINDS = ("model", "tully", "mopac")
_LEGACY_LAYOUT: dict[str, Any] = {
    "path": None,
    "tully": None,
    "n_states": 2,
    "keywords": None,
    "timeout": 600.0,
    "workers": 1,
}
"""The resolved potential of the built-in kinds before the registry: every option of model,
tully and mopac side by side. They keep it in ``config.yaml`` and in the run identity, so
checkpoints of runs made before it still resume."""


@dataclass
class PotentialSpec:
    """What computes energies and forces: a kind registered in
    :mod:`fusionff.dynamics.structures` and its options.

    Attributes:
        kind: "model" (a ``*.fff`` file), "tully", "mopac" or another registered kind.
        options: the kind's options dataclass (e.g. :class:`~fusionff.dynamics.structures.
            MopacOptions`).
    """

    kind: str
    options: Any

    @property
    def entry(self) -> StructureKind:
        return structure_kind(self.kind)

    def as_dict(self) -> dict[str, Any]:
        """``{kind, **options}`` as plain data (built-in kinds: the layout of older runs)."""
        options = dataclasses.asdict(self.options)
        if self.kind == "tully":
            options = {"tully": options.pop("model")}
        if self.kind in _LEGACY_KINDS:
            return {"kind": self.kind, **_LEGACY_LAYOUT, **options}
        return {"kind": self.kind, **options}


def potential_identity(resolved: dict[str, Any]) -> dict[str, Any]:
    """A resolved potential (:meth:`PotentialSpec.as_dict`) less the options that do not
    change results (``runtime_options``: MOPAC's ``workers``) and the options added to a kind
    later that are at their defaults (:mod:`fusionff.dynamics.structures`)."""
    kind = structure_kind(resolved["kind"])
    drop = set(kind.runtime_options)
    if resolved["kind"] in _LEGACY_KINDS:
        drop.add("workers")  # in their layout whatever the kind
    for f in dataclasses.fields(kind.options):  # options added later, at their defaults
        if f.metadata.get("added") and f.default is not dataclasses.MISSING:
            if f.name in resolved and resolved[f.name] == f.default:
                drop.add(f.name)
    return {k: v for k, v in resolved.items() if k not in drop}


@dataclass
class WignerSpec:
    """Wigner sampling of the harmonic S0 normal modes (:func:`fusionff.sampling.wigner_sample`).

    Attributes:
        temperature: K.
        hessian: an ``.npz`` file with ``hessian`` (3N, 3N) eV/Angstrom^2 (and optionally
            ``positions``, ``numbers``, checked against the structure), or "compute": finite
            differences of the S0 forces of the run's potential, cached as ``hessian.npz`` in
            the output directory.
        imaginary_tolerance: cm^-1; imaginary modes beyond it are an error, softer modes are
            left unexcited.
        step: Angstrom, finite-difference displacement for "compute".
        cold_below: cm^-1; modes softer than this keep their ground-state (0 K) width at
            any temperature, because straight-line sampling of a soft torsion at finite
            temperature stretches bonds (0: every mode thermal).
        optimize: first minimise the S0 energy of ``structure`` with the run's potential
            (ASE BFGS; cached as ``optimized.xyz`` in the output directory) and sample about
            that minimum, so the ensemble starts without the excess energy of a geometry that
            is a minimum of another method. Needs ``hessian: compute`` (a Hessian file
            belongs to the structure before optimisation).
        fmax: eV/Angstrom; the optimisation has converged when no atom's S0 force is larger.
        max_steps: optimisation steps at most; not converging by then is an error.
    """

    temperature: float
    hessian: str
    imaginary_tolerance: float = 10.0
    step: float = 1e-3
    cold_below: float = 0.0
    optimize: bool = False
    fmax: float = 0.01
    max_steps: int = 1000

    def __post_init__(self) -> None:
        key = "initial_conditions.wigner"
        if self.optimize and self.hessian != "compute":
            raise RunConfigError(
                f"{key}.optimize, {key}.hessian: optimize: true needs hessian: compute (the "
                f"file {self.hessian!r} is the Hessian at the structure before optimisation)"
            )
        if self.fmax <= 0:
            raise RunConfigError(f"{key}.fmax: must be positive, got {self.fmax}")
        if self.max_steps < 1:
            raise RunConfigError(f"{key}.max_steps: must be at least 1, got {self.max_steps}")


@dataclass
class InitialConditionsSpec:
    """Where trajectories start.

    Attributes:
        state: initial active state (vertical excitation; amplitudes one-hot).
        wigner: molecules: sample positions and velocities (needs ``structure``).
        file: molecules, instead of ``wigner``: trajectory i starts from frame i of this
            ASE-readable file (positions Angstrom, velocities from its momenta; extended XYZ
            keeps them) or, for a run's output directory, from frame 0 of that run's
            ``traj_<i>.h5md`` (positions and velocities exactly). Atoms must match
            ``structure``.
        energy_window: [emin, emax] eV; keep only samples whose gap E_state - E_0 lies inside.
        max_attempts: samples drawn per trajectory at most to meet the window.
        x0: Tully models: start, bohr.
        k: Tully models: momentum, atomic units.
    """

    state: int = 0
    wigner: WignerSpec | None = None
    file: str | None = None
    energy_window: list[float] | None = None
    max_attempts: int = 1000
    x0: float | None = None
    k: float | None = None


@dataclass
class StopSpec:
    """When a trajectory stops early (status "stopped").

    Attributes:
        state: stop ``after_fs`` after the trajectory first became active on this state.
        after_fs: fs.
        region_bohr: Tully models: stop once x > L, or x < -L moving outwards.
    """

    state: int | None = None
    after_fs: float = 0.0
    region_bohr: float | None = None


@dataclass
class RunConfig:
    """A whole ensemble run (see the module docstring). ``n_steps`` is resolved from
    ``time_fs`` when that is given; ``batch_size`` defaults to ``n_traj``. ``threads``: PyTorch
    CPU threads of the process (None: ``OMP_NUM_THREADS`` if set, else 1; see
    :func:`fusionff.device.default_threads`); not part of the run's identity, so a run resumes
    with another thread count."""

    potential: PotentialSpec
    initial_conditions: InitialConditionsSpec
    output: str
    dynamics: SurfaceHoppingConfig = field(default_factory=SurfaceHoppingConfig)
    structure: str | None = None
    n_traj: int = 1
    batch_size: int | None = None
    n_steps: int | None = None
    time_fs: float | None = None
    write_every: int = 1
    checkpoint_every: int = 100
    device: str = "auto"
    seed: int = 0
    stop: StopSpec | None = None
    threads: int | None = None

    def __post_init__(self) -> None:
        ic, p = self.initial_conditions, self.potential
        if (self.n_steps is None) == (self.time_fs is None):
            raise RunConfigError("n_steps, time_fs: give exactly one of them")
        if self.n_steps is None:
            self.n_steps = int(round(self.time_fs / self.dynamics.dt))
            self.time_fs = None
        for key in ("n_traj", "n_steps", "write_every", "checkpoint_every"):
            if getattr(self, key) < 1:
                raise RunConfigError(f"{key}: must be at least 1, got {getattr(self, key)}")
        if self.batch_size is None:
            self.batch_size = self.n_traj
        if self.batch_size < 1:
            raise RunConfigError(f"batch_size: must be at least 1, got {self.batch_size}")
        if self.threads is not None and self.threads < 1:
            raise RunConfigError(f"threads: must be at least 1, got {self.threads}")
        if not p.entry.molecular:
            if ic.x0 is None or ic.k is None:
                raise RunConfigError(
                    f"initial_conditions: {p.kind} models need x0 (bohr) and k (a.u.)"
                )
            if ic.wigner is not None or ic.file is not None or self.structure is not None:
                raise RunConfigError(
                    "initial_conditions.wigner, file, structure: not for Tully models"
                )
        else:
            if self.structure is None:
                raise RunConfigError("structure: a molecular run needs an xyz file")
            if (ic.wigner is None) == (ic.file is None):
                raise RunConfigError(
                    "initial_conditions.wigner, file: a molecular run needs exactly one of them"
                )
            if ic.file is not None and ic.energy_window is not None:
                raise RunConfigError(
                    "initial_conditions.energy_window: only for Wigner sampling, not with file"
                )
            if ic.x0 is not None or ic.k is not None:
                raise RunConfigError("initial_conditions.x0, k: only for Tully models")
            if self.stop is not None and self.stop.region_bohr is not None:
                raise RunConfigError("stop.region_bohr: only for Tully models")
        window = ic.energy_window
        if window is not None and (len(window) != 2 or window[0] >= window[1]):
            raise RunConfigError(f"initial_conditions.energy_window: need [emin, emax]: {window}")
        if ic.state < 0:
            raise RunConfigError(f"initial_conditions.state: must be >= 0, got {ic.state}")
        if self.dynamics.committee is not None:
            paths = getattr(p.options, "path", None) if p.kind == "model" else None
            if not (isinstance(paths, list) and len(paths) >= 2):
                what = "one model file" if p.kind == "model" else f"of kind {p.kind!r}"
                raise RunConfigError(
                    "dynamics.committee: needs a committee potential of at least two models "
                    f"(potential: {{model: [a.fff, b.fff]}}); the potential is {what}"
                )

    def as_dict(self) -> dict[str, Any]:
        """The resolved config as plain data (written to the summary and checkpoints)."""
        resolved = dataclasses.asdict(self)
        resolved["potential"] = self.potential.as_dict()
        for key in OMITTED_WHEN_NULL:
            section, name = key.split(".")
            if resolved[section][name] is None:
                del resolved[section][name]
        return resolved

    @classmethod
    def from_yaml(cls, path: str | Path, overrides: dict[str, Any] | None = None) -> RunConfig:
        """Read and check a run input file; ``overrides`` (see :func:`with_overrides`) replace
        its keys first."""
        path = Path(path)
        try:
            raw = yaml.safe_load(path.read_text())
        except yaml.YAMLError as err:
            raise RunConfigError(f"{path}: not valid YAML: {err}") from None
        try:
            return cls.from_dict(with_overrides(raw, overrides or {}))
        except RunConfigError as err:
            raise RunConfigError(f"{path}: {err}") from None

    @classmethod
    def from_dict(cls, raw: Any) -> RunConfig:
        """Build from plain data (e.g. parsed YAML); errors name the key."""
        if not isinstance(raw, dict):
            raise RunConfigError(f"config: expected a mapping, got {type(raw).__name__}")
        raw = dict(raw)
        if "potential" in raw:
            raw["potential"] = _potential(raw["potential"])
        return build_dataclass(cls, raw, "", RunConfigError)


OMITTED_WHEN_NULL = ("dynamics.committee", "dynamics.max_state_inversion", "dynamics.domain")
"""Keys added after runs were made with their default, null: left out of the resolved config
(and ``--show-config``) when null, so those runs keep their identity and resume."""

OVERRIDES = ("n_traj", "time_fs", "seed", "output", "device", "threads")
"""Keys ``fusionff run`` can set from its command line (``--n-traj`` ...)."""


def with_overrides(raw: Any, overrides: dict[str, Any]) -> Any:
    """The run input ``raw`` with top-level keys replaced (values None are skipped).

    The result is the input as if the file said ``key: value``: ``time_fs`` also removes
    ``n_steps`` (a run gives one of the two), and what follows from a key follows from its
    new value (``batch_size``, when not given, is ``n_traj``). Keys not in :data:`OVERRIDES`
    are an error."""
    if not isinstance(raw, dict):
        return raw
    raw = dict(raw)
    for key, value in overrides.items():
        if key not in OVERRIDES:
            raise RunConfigError(unknown_key(key, key, list(OVERRIDES)))
        if value is None:
            continue
        if key == "time_fs":
            raw.pop("n_steps", None)
        raw[key] = value
    return raw


UNITS = {
    "n_traj": "trajectories",
    "batch_size": "trajectories",
    "n_steps": "steps",
    "write_every": "steps",
    "checkpoint_every": "steps",
    "threads": "CPU threads",
    "dynamics.dt": "fs",
    "dynamics.decoherence_constant": "eV",
    "dynamics.kappa_gap_threshold": "eV",
    "dynamics.max_energy_drift": "eV",
    "dynamics.max_state_inversion": "eV",
    "dynamics.domain.min_distance": "Angstrom",
    "dynamics.domain.dissociation_distance": "Angstrom",
    "initial_conditions.energy_window": "eV",
    "initial_conditions.x0": "bohr",
    "initial_conditions.k": "a.u. of momentum",
    "initial_conditions.wigner.temperature": "K",
    "initial_conditions.wigner.imaginary_tolerance": "cm^-1",
    "initial_conditions.wigner.step": "Angstrom",
    "initial_conditions.wigner.cold_below": "cm^-1",
    "initial_conditions.wigner.fmax": "eV/Angstrom",
    "initial_conditions.wigner.max_steps": "steps",
    "stop.after_fs": "fs",
    "stop.region_bohr": "bohr",
    "dynamics.committee.max_energy_std": "eV",
    "dynamics.committee.max_force_std": "eV/Angstrom",
}
"""Units of the keys that have one; a registered potential's options give theirs as field
metadata (``field(default=600.0, metadata={"unit": "s"})``)."""

_RESOLVED_DEFAULTS = {"batch_size": "n_traj", "threads": "OMP_NUM_THREADS if set, else 1"}


def describe_config(config: RunConfig) -> list[str]:
    """Every key of the resolved ``config``, one line each: value, unit, and the default
    (``fusionff run --show-config``)."""
    rows: list[tuple[str, str, str]] = []
    _describe(config, "", rows)
    width = max(len(key) for key, _, _ in rows)
    return [f"{key:<{width}}  {value}{note}" for key, value, note in rows]


def _plain(value: Any) -> str:
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    return str(value)


def _describe(obj: Any, prefix: str, rows: list[tuple[str, str, str]]) -> None:
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        key = prefix + f.name
        if key in OMITTED_WHEN_NULL and value is None:
            continue
        if isinstance(obj, PotentialSpec) and f.name == "options":
            _describe(value, f"potential.{obj.kind}.", rows)
            continue
        if dataclasses.is_dataclass(value):
            _describe(value, key + ".", rows)
            continue
        if key in _RESOLVED_DEFAULTS:
            default = _RESOLVED_DEFAULTS[key]
        elif f.default is not dataclasses.MISSING:
            default = _plain(f.default)
        elif f.default_factory is not dataclasses.MISSING:
            default = _plain(f.default_factory())
        else:
            default = None
        unit = f.metadata.get("unit") or UNITS.get(key)
        text = _plain(value) + (f" {unit}" if unit and value is not None else "")
        if key == "n_steps":
            text += f" (= {value * obj.dynamics.dt:g} fs)"
        if key == "threads" and value is None:
            text += f" (here: {default_threads()})"
        if key == "time_fs":
            text, default = "null (resolved into n_steps)", "null"
        note = "  (required)" if default is None else f"  (default: {default})"
        if default is not None and default == _plain(value):
            note = "  (default)"
        rows.append((key, text, note))


def _potential(raw: Any) -> dict[str, Any]:
    """``path`` | {kind: value} -> PotentialSpec fields; a scalar value sets the kind's
    shorthand option ({model: path}, {tully: name}), a mapping its options."""
    if isinstance(raw, str):
        raw = {"model": raw}
    kinds = structure_kinds()
    if not isinstance(raw, dict) or len(raw) != 1:
        raise RunConfigError(
            f"potential: expected a model path or one {{kind: options}} with kind one of "
            f"{kinds} (e.g. {{tully: simple}}, {{mopac: {{n_states: 2}}}}), got {raw!r}"
        )
    ((kind, value),) = raw.items()
    if kind not in kinds:
        raise RunConfigError(unknown_key(f"potential.{kind}", kind, kinds))
    entry = structure_kind(kind)
    if value is None:
        value = {}
    elif not isinstance(value, dict):
        if entry.shorthand is None:
            raise RunConfigError(f"potential.{kind}: expected a mapping of options, got {value!r}")
        value = {entry.shorthand: value}
    try:
        options = build_dataclass(entry.options, value, f"potential.{kind}.", RunConfigError)
    except ConfigError as err:
        raise RunConfigError(str(err)) from None
    return {"kind": kind, "options": options}
