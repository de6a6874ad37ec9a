"""Training configuration: dataclasses built from YAML, checked key by key.

Every default lives in the dataclasses below. Example (``data/examples/train_tiny.yaml``)::

    data: data/examples/toy_two_state.h5     # one path or a list; relative to the working dir
    output: runs/train_tiny
    model: {channels: 8, num_layers: 1, r_max: 4.0}   # ModelConfig keys
    split: {train: 0.7, validation: 0.15, test: 0.15}
    loss: {energy: 1.0, forces: 10.0, states: [1.0, 1.0]}   # nacs: 1.0 adds couplings
    optimizer: {name: adam, lr: 0.01}
    schedule: {name: plateau, factor: 0.8, patience: 5}
    batch_size: 8
    max_epochs: 50

Unknown keys and values of the wrong type raise :class:`ConfigError` naming the key
(``model.chanels: unknown key (did you mean 'channels'?)``).

The ``model`` mapping takes any :class:`fusionff.models.ModelConfig` key except ``dtype`` (set
at the top level). ``elements`` defaults to the elements found in the data and ``n_states`` to
the data's number of states; ``e0s``, ``avg_num_neighbors``, ``scale`` and ``shift`` are computed
from the training split unless given.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from fusionff.config_schema import ConfigError as BaseConfigError
from fusionff.config_schema import build_dataclass, convert_value, unknown_key
from fusionff.models.config import DTYPES, ModelConfig

OPTIMIZERS = ("adam", "adamw")
SCHEDULES = ("plateau", "cosine", "exponential", "none")
LOSS_KINDS = ("mse", "huber")


class ConfigError(BaseConfigError):
    """A training configuration with an unknown key, a wrong type or an invalid value."""


@dataclass
class SplitConfig:
    """Sizes of the train/validation/test splits and the seed of the random split.

    An ``int`` is a number of structures, a ``float`` a fraction of the usable structures
    (``1`` is one structure, ``1.0`` all of them).

    ``train_subsample`` (a fraction in (0, 1]) trains on part of the training split and leaves
    the split itself (``split.json``), validation and test as they are: a learning curve on
    a fixed test set. The part is the first ``floor(fraction * n_train)`` (at least one) of a
    permutation of the training split seeded by the split seed, so a smaller fraction's
    structures lie inside a larger one's (:func:`fusionff.train.split.train_subsample`). A
    run continued on added files draws its part anew from the extended training split.
    """

    train: int | float = 0.8
    validation: int | float = 0.1
    test: int | float = 0.1
    seed: int | None = None  # None: the run's seed
    train_subsample: float = 1.0


@dataclass
class LossConfig:
    """Weights of the loss: ``sum_s states[s] * (energy * rho(dE_s/N) + forces * rho(dF_s))``.

    ``kind: mse``: rho is the square. ``kind: huber``: rho is the square up to a threshold
    and linear beyond it (:func:`fusionff.train.loss.robust_square`), with thresholds
    ``huber_delta_energy`` in eV per atom and ``huber_delta_forces`` in eV/Angstrom per force
    component: structures far off the rest then weigh like large errors, not squared ones.

    ``nacs`` (w_nacs; 0 leaves couplings out) adds ``nacs * L_nacs``, the phase-free coupling
    error (:func:`fusionff.train.loss.coupling_loss`, (1/Angstrom)^2); it needs data with
    couplings and a model that gives them (``model.head: diabatic`` or ``model.couplings:
    vector`` or ``outer``). With ``couplings: outer`` L_nacs is the sign-free error of D =
    d d^T (:func:`fusionff.train.loss.outer_coupling_loss`, (1/Angstrom)^4, about 18 rms(d)^2
    times the other for the same coupling error). With ``kind: huber`` its threshold is
    ``huber_delta_nacs`` (1/Angstrom per component; its square per entry of D): couplings grow
    as 1/gap near intersections.

    ``gap`` (w_gap; 0 leaves it out) adds ``gap * L_gap``, the error of the gaps E_s - E_0 in
    eV (:func:`fusionff.train.loss.gap_loss`), Huber threshold ``huber_delta_gap`` (eV).
    ``gap_seam_weight`` (a, default 0) weights each structure's gap error by
    ``1 + a exp(-|gap_ref| / gap_seam_scale)`` (``gap_seam_scale`` in eV): more pull where the
    reference gap is small, where surface hopping decides.
    """

    energy: float = 1.0
    forces: float = 10.0
    states: list[float] | None = None  # None: 1.0 for every state
    kind: str = "mse"
    huber_delta_energy: float = 0.01
    huber_delta_forces: float = 0.5
    nacs: float = 0.0
    huber_delta_nacs: float = 0.5
    gap: float = 0.0
    huber_delta_gap: float = 0.1
    gap_seam_weight: float = 0.0
    gap_seam_scale: float = 0.5

    def delta_gap(self) -> float | None:
        """Huber threshold of the gap loss (eV), or None for squared errors."""
        return self.huber_delta_gap if self.kind == "huber" else None

    def deltas(self) -> tuple[float | None, float | None]:
        """(energy, forces) Huber thresholds, or (None, None) for squared errors."""
        if self.kind == "huber":
            return self.huber_delta_energy, self.huber_delta_forces
        return None, None

    def delta_nacs(self) -> float | None:
        """Huber threshold of the coupling loss (1/Angstrom), or None for squared errors."""
        return self.huber_delta_nacs if self.kind == "huber" else None


@dataclass
class OptimizerConfig:
    """Adam or AdamW; ``clip_grad_norm`` clips the gradient norm when set."""

    name: str = "adam"
    lr: float = 0.01
    weight_decay: float = 0.0
    clip_grad_norm: float | None = None


@dataclass
class ScheduleConfig:
    """Learning-rate schedule, stepped once per epoch.

    ``plateau``: multiply by ``factor`` after ``patience`` epochs without a lower validation
    loss; ``cosine``: cosine decay to ``min_lr`` over ``max_epochs`` (in a new stage, over the
    stage's epochs: from its start to ``max_epochs``); ``exponential``: multiply
    by ``gamma`` every epoch; ``none``: constant.
    """

    name: str = "plateau"
    factor: float = 0.8
    patience: int = 10
    gamma: float = 0.99
    min_lr: float = 0.0


@dataclass
class TrainConfig:
    """A training run (see the module docstring for the YAML form).

    Attributes:
        data: HDF5 multi-state dataset file(s) (a string or a list in YAML).
        output: directory for checkpoint.pt, split.json, model.fff, metrics.json, logs, plots.
        model: ModelConfig keys (see module docstring).
        split, loss, optimizer, schedule: see their classes.
        batch_size: structures per optimisation step (and per evaluation batch). Under
            torchrun the global batch: each rank evaluates a shard of about batch_size / ranks
            and the step is the one-process step (:mod:`fusionff.train.distributed`).
        max_epochs: epochs to train (a resumed run continues up to this number).
        ema_decay: decay of the exponential moving average of the weights used for
            validation and for the final model; 0 disables it.
        mask_forces_above: leave out (treat as unlabelled, in training and in every reported
            metric) the force labels of a structure's state when an atom's force in it is
            larger than this, eV/Angstrom; for reference programs whose gradients fail at
            strained geometries (None: keep all). The log says how many were left out.
        exclude: extended XYZ files of labels known to be wrong (one path or a list). Each
            frame names one label: its atoms, positions (Angstrom) and, in the info key
            ``energies``, the label's state energies (eV); a structure of the data with the
            same atoms, positions within 1e-4 Angstrom and finite energies within 1e-3 eV is
            put in no split (not trained on, validated or tested), and ``split.json`` records
            it. A relabelled copy of the geometry (other energies) is not matched. The log
            says how many were matched. An excluded structure stays out of a stored split even
            when no later config names it.
        release: extended XYZ files (as for ``exclude``) of labels that an earlier config
            excluded, as suspects, and that have been checked since and found right: a stored
            split takes them back, split with its fractions, and ``split.json`` records it
            (:mod:`fusionff.train.split`). Naming a label under both keys is an error.
        early_stopping_patience: stop after this many epochs without a lower validation loss
            (None: never).
        checkpoint_every: write ``checkpoint.pt`` every this many epochs (and at the end).
        time_limit_minutes: end this invocation (checkpoint, model file and report written)
            after the first epoch that ends past this wall-clock time; running the same
            config again resumes up to ``max_epochs`` (None: no limit). For batch queues.
        dtype: ``float32`` or ``float64`` (model and labels).
        device: ``auto``, ``cpu`` or ``cuda[:k]`` (asking for CUDA without it is an error).
        seed: initial weights and batch order (and the split unless ``split.seed`` is set).
        init_from: a model file (``*.fff``) whose parameters start a fresh run where their name
            and shape match (fine-tuning); reference energies, scale and shift still come from
            this run's data (:mod:`fusionff.train.pretrained`). A deeper model (more
            ``num_layers`` than the file's) grows the file's network: its inserted layers start
            as identities, so it starts from the file's energies and forces. A resumed run
            continues from its checkpoint and does not read it.
    """

    data: list[str]
    output: str = "runs/train"
    model: dict[str, Any] = field(default_factory=dict)
    split: SplitConfig = field(default_factory=SplitConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    batch_size: int = 8
    max_epochs: int = 100
    ema_decay: float = 0.99
    mask_forces_above: float | None = None
    exclude: list[str] = field(default_factory=list)
    release: list[str] = field(default_factory=list)
    early_stopping_patience: int | None = 50
    checkpoint_every: int = 1
    time_limit_minutes: float | None = None
    dtype: str = "float64"
    device: str = "auto"
    seed: int = 0
    init_from: str | None = None

    @classmethod
    def from_yaml(cls, path: str | Path) -> TrainConfig:
        """Read and check a YAML config file."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"training config not found: {path}")
        try:
            raw = yaml.safe_load(path.read_text())
        except yaml.YAMLError as err:
            raise ConfigError(f"{path}: not valid YAML: {err}") from None
        try:
            return cls.from_dict(raw if raw is not None else {})
        except ConfigError as err:
            raise ConfigError(f"{path}: {err}") from None

    @classmethod
    def from_dict(cls, raw: Any) -> TrainConfig:
        """Build from a mapping (as read from YAML), checking keys, types and values."""
        for key in ("data", "exclude", "release"):
            if isinstance(raw, dict) and isinstance(raw.get(key), str):
                raw = {**raw, key: [raw[key]]}
        config = build_dataclass(cls, raw, "", ConfigError)
        _check_model_keys(config.model)
        config.check()
        return config

    @property
    def split_seed(self) -> int:
        """The seed of the random split (and of ``split.train_subsample``): ``split.seed``, or
        the run's seed when that is unset."""
        return self.split.seed if self.split.seed is not None else self.seed

    def to_dict(self) -> dict[str, Any]:
        """Plain-python form (round-trips through :meth:`from_dict`)."""
        return dataclasses.asdict(self)

    def check(self) -> None:
        """Check the values (types were checked when the config was built)."""
        rules = [
            ("data", len(self.data) >= 1, "must name at least one dataset file"),
            ("batch_size", self.batch_size >= 1, "must be at least 1"),
            ("max_epochs", self.max_epochs >= 0, "must be at least 0"),
            ("ema_decay", 0.0 <= self.ema_decay < 1.0, "must be in [0, 1)"),
            ("checkpoint_every", self.checkpoint_every >= 1, "must be at least 1"),
            ("dtype", self.dtype in DTYPES, f"must be one of {DTYPES}"),
            ("device", _device_ok(self.device), "must be 'auto', 'cpu' or 'cuda[:k]'"),
            ("optimizer.name", self.optimizer.name in OPTIMIZERS, f"must be one of {OPTIMIZERS}"),
            ("optimizer.lr", self.optimizer.lr > 0, "must be positive"),
            ("optimizer.weight_decay", self.optimizer.weight_decay >= 0, "must be >= 0"),
            ("schedule.name", self.schedule.name in SCHEDULES, f"must be one of {SCHEDULES}"),
            ("schedule.factor", 0 < self.schedule.factor < 1, "must be in (0, 1)"),
            ("schedule.gamma", 0 < self.schedule.gamma <= 1, "must be in (0, 1]"),
            ("schedule.patience", self.schedule.patience >= 0, "must be >= 0"),
            ("loss.energy", self.loss.energy >= 0, "must be >= 0"),
            ("loss.forces", self.loss.forces >= 0, "must be >= 0"),
            ("loss.kind", self.loss.kind in LOSS_KINDS, f"must be one of {LOSS_KINDS}"),
            ("loss.huber_delta_energy", self.loss.huber_delta_energy > 0, "must be positive"),
            ("loss.huber_delta_forces", self.loss.huber_delta_forces > 0, "must be positive"),
            ("loss.nacs", self.loss.nacs >= 0, "must be >= 0"),
            ("loss.huber_delta_nacs", self.loss.huber_delta_nacs > 0, "must be positive"),
            ("loss.gap", self.loss.gap >= 0, "must be >= 0"),
            ("loss.huber_delta_gap", self.loss.huber_delta_gap > 0, "must be positive"),
            ("loss.gap_seam_weight", self.loss.gap_seam_weight >= 0, "must be >= 0"),
            ("loss.gap_seam_scale", self.loss.gap_seam_scale > 0, "must be positive"),
        ]
        cap = self.mask_forces_above
        rules.append(("mask_forces_above", cap is None or cap > 0, "must be positive"))
        limit = self.time_limit_minutes
        rules.append(("time_limit_minutes", limit is None or limit > 0, "must be positive"))
        patience = self.early_stopping_patience
        rules.append(("early_stopping_patience", patience is None or patience >= 1, "must be >= 1"))
        clip = self.optimizer.clip_grad_norm
        rules.append(("optimizer.clip_grad_norm", clip is None or clip > 0, "must be positive"))
        if self.loss.states is not None:
            rules.append(("loss.states", all(w >= 0 for w in self.loss.states), "must be >= 0"))
        for key in ("train", "validation", "test"):
            v = getattr(self.split, key)
            ok = v >= 0 and (isinstance(v, int) or v <= 1.0)
            rules.append((f"split.{key}", ok, "must be a count >= 0 or a fraction in [0, 1]"))
        for key, ok, message in rules:
            if not ok:
                raise ConfigError(f"{key}: {message} (got {_value(self, key)!r})")
        subsample = self.split.train_subsample
        if not 0.0 < subsample <= 1.0:
            raise ConfigError(
                f"split.train_subsample: must be a fraction in (0, 1] (got {subsample!r})"
            )
        fractions = [getattr(self.split, k) for k in ("train", "validation", "test")]
        if sum(f for f in fractions if isinstance(f, float)) > 1.0 + 1e-9:
            raise ConfigError(f"split: fractions add up to more than 1 ({fractions})")
        if self.split.train == 0:
            raise ConfigError("split.train: the training split must not be empty")


def _value(config: TrainConfig, dotted: str) -> Any:
    value: Any = config
    for part in dotted.split("."):
        value = getattr(value, part)
    return value


def _device_ok(device: str) -> bool:
    if device in ("auto", "cpu", "cuda"):
        return True
    return device.startswith("cuda:") and device[5:].isdigit()


def _check_model_keys(model: dict[str, Any]) -> None:
    """Check the ``model`` mapping against ModelConfig's fields and their types."""
    hints = typing.get_type_hints(ModelConfig)
    for key, value in model.items():
        if key == "dtype":
            raise ConfigError("model.dtype: set dtype at the top level of the config")
        if key not in hints:
            raise ConfigError(unknown_key(f"model.{key}", key, list(hints)))
        model[key] = convert_value(value, hints[key], f"model.{key}", ConfigError)
