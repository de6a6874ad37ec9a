"""The input of ``fusionff run``: a YAML file turned into dataclasses.

Example (``md/stilbene_cis_s1.yaml``)::

    potential: potentials/stilbene-r1.fff    # or {tully: simple} or {mopac: {n_states: 2}}
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

Instead of ``wigner``, ``initial_conditions: {file: PATH, state: 1}`` starts trajectory i from
frame i of an ASE-readable file with velocities (extended XYZ with momenta), or, when PATH is
the output directory of an earlier run, exactly where trajectory i of that run started (the
same ensemble on another potential, e.g. the reference ``{mopac: ...}``).

Tully's models take ``initial_conditions: {x0: -10, k: 20}`` (bohr, atomic units of momentum)
and ``stop: {region_bohr: 10}`` (leave [-10, 10] bohr). Paths are relative to the working
directory. Unknown keys and values of the wrong type raise :class:`RunConfigError` naming the
key (``dynamics.dtt: unknown key ...``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from fusionff.config_schema import ConfigError, build_dataclass, unknown_key
from fusionff.dynamics.engine import SurfaceHoppingConfig
from fusionff.dynamics.tully import TULLY_MODELS

__all__ = [
    "RunConfigError",
    "PotentialSpec",
    "WignerSpec",
    "InitialConditionsSpec",
    "StopSpec",
    "RunConfig",
]


class RunConfigError(ConfigError):
    """An invalid run input; the message names the key."""


@dataclass
class PotentialSpec:
    """What computes energies and forces.

    Attributes:
        kind: "model" (a ``*.fff`` file), "tully" or "mopac".
        path: the model file (kind "model").
        tully: "simple", "dual" or "extended" (kind "tully").
        n_states: states computed by MOPAC (kind "mopac").
        keywords: MOPAC keywords without ROOT (default: level R1).
        timeout: s, limit of one MOPAC run.
        workers: MOPAC runs at the same time (kind "mopac"): the structures of a batch are
            computed in parallel, so use about one per core with batch_size >= workers.
    """

    kind: str
    path: str | None = None
    tully: str | None = None
    n_states: int = 2
    keywords: str | None = None
    timeout: float = 600.0
    workers: int = 1

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise RunConfigError(f"potential.mopac.workers: must be at least 1, got {self.workers}")


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
    ``time_fs`` when that is given; ``batch_size`` defaults to ``n_traj``."""

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
        if p.kind == "tully":
            if ic.x0 is None or ic.k is None:
                raise RunConfigError("initial_conditions: Tully models need x0 (bohr) and k (a.u.)")
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

    def as_dict(self) -> dict[str, Any]:
        """The resolved config as plain data (written to the summary and checkpoints)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_yaml(cls, path: str | Path) -> RunConfig:
        """Read and check a run input file."""
        path = Path(path)
        try:
            raw = yaml.safe_load(path.read_text())
        except yaml.YAMLError as err:
            raise RunConfigError(f"{path}: not valid YAML: {err}") from None
        try:
            return cls.from_dict(raw)
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


def _potential(raw: Any) -> dict[str, Any]:
    """``path`` | {model: path} | {tully: name} | {mopac: {...}} -> PotentialSpec fields."""
    if isinstance(raw, str):
        return {"kind": "model", "path": raw}
    if not isinstance(raw, dict) or len(raw) != 1:
        raise RunConfigError(
            "potential: expected a model path or one of {model: path}, {tully: name}, "
            f"{{mopac: {{n_states: 2}}}}, got {raw!r}"
        )
    ((kind, value),) = raw.items()
    if kind == "model":
        if not isinstance(value, str):
            raise RunConfigError(f"potential.model: expected a path, got {value!r}")
        return {"kind": "model", "path": value}
    if kind == "tully":
        if value not in TULLY_MODELS:
            raise RunConfigError(f"potential.tully: one of {sorted(TULLY_MODELS)}, got {value!r}")
        return {"kind": "tully", "tully": value}
    if kind == "mopac":
        value = {} if value is None else value
        if not isinstance(value, dict):
            raise RunConfigError(f"potential.mopac: expected a mapping, got {value!r}")
        known = ["n_states", "keywords", "timeout", "workers"]
        for key in value:
            if key not in known:
                raise RunConfigError(unknown_key(f"potential.mopac.{key}", key, known))
        return {"kind": "mopac", **value}
    raise RunConfigError(unknown_key(f"potential.{kind}", kind, ["model", "tully", "mopac"]))
