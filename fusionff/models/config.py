"""Architecture of a multi-state MACE model, as a plain dataclass (stored in model files)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from ase.data import atomic_numbers

DTYPES = ("float32", "float64")
FUSION_TREES = ("chain", "balanced")
HEADS = ("adiabatic", "diabatic")
COUPLING_MODES = ("vector", "outer")


@dataclass
class ModelConfig:
    """Hyper-parameters of :class:`fusionff.models.MultiStateMACE`.

    Lengths in Angstrom, energies in eV.

    Attributes:
        elements: chemical symbols the model knows, e.g. ``["H", "C"]``.
        n_states: number S of electronic states (energies predicted at once).
        r_max: cutoff radius, Angstrom.
        channels: channels C of every irrep in the hidden features.
        l_max: highest l of the edge spherical harmonics and of the atomic basis A.
        hidden_l_max: highest l of the equivariant features passed between layers.
        correlation: highest correlation (body) order of the product basis / fusion tree.
        num_layers: message-passing layers.
        fusion: replace MACE's product basis by a fusion block fusing h_i with copies of A_i.
        fusion_tree: shape of the fusion diagram: ``chain`` (((h.A).A).A or ``balanced``.
        fusion_element_weights: vertex weights of the fusion block depend on the element.
        l_int_max: truncation of intermediate irreps (defaults to ``l_max``).
        num_bessel: radial Bessel functions.
        cutoff_p: exponent of the polynomial cutoff envelope.
        radial_mlp: hidden widths of the radial MLP.
        readout_hidden: hidden width of the last layer's MLP readout.
        avg_num_neighbors: normalisation of neighbour sums (set from the training data).
        e0s: per-element reference energies, ``{symbol: [E_0, ..., E_{S-1}]}`` eV (default 0).
        scale: per-state scale of the learned interaction energy (eV).
        shift: per-state shift per atom of the learned interaction energy (eV).
        dtype: ``float32`` or ``float64``.
        head: ``adiabatic`` (the readouts give the S energies, as sums of per-atom terms) or
            ``diabatic`` (they give a symmetric S x S matrix H per structure, as sums of per-atom
            terms; the energies are its eigenvalues and couplings follow from its gradients;
            see :mod:`fusionff.nn.diabatic`; ``e0s``, ``scale`` and ``shift`` of state s apply to
            the diagonal element s). Files written before heads existed are adiabatic.
        couplings: adiabatic head only: also learn the non-adiabatic couplings d_ij (i < j)
            (needs ``l_max >= 1`` and ``n_states >= 2``; the energies' network is unchanged).
            ``false``: none. ``vector`` (or ``true``, read as ``vector``): one polar vector
            (1o) per state pair and atom, read out from the final node features and the edges'
            1o spherical harmonics (:mod:`fusionff.nn.couplings`). ``outer``: the sign-free
            outer product D = d d^T per structure and pair, from ``coupling_terms`` such
            vectors and invariant weights of every atom pair, couplings from its largest
            eigenpair (:mod:`fusionff.nn.outer_couplings`; fits couplings that are
            antisymmetric under a symmetry of the molecule). The diabatic head has couplings
            from its eigenvectors and refuses this key. Files written before this key existed
            have no learned couplings.
        coupling_scale: the learned couplings are ``coupling_scale`` (1/Angstrom) times the
            readout, and D is ``coupling_scale**2`` times its readout (set by training to the
            RMS of the reference couplings' components).
        coupling_terms: K, vector fields per state pair of ``couplings: outer``.
    """

    elements: list[str]
    n_states: int = 1
    r_max: float = 5.0
    channels: int = 32
    l_max: int = 2
    hidden_l_max: int = 1
    correlation: int = 3
    num_layers: int = 2
    fusion: bool = False
    fusion_tree: str = "chain"
    fusion_element_weights: bool = True
    l_int_max: int | None = None
    num_bessel: int = 8
    cutoff_p: int = 5
    radial_mlp: list[int] = field(default_factory=lambda: [64, 64])
    readout_hidden: int = 16
    avg_num_neighbors: float = 8.0
    e0s: dict[str, list[float]] | None = None
    scale: list[float] | None = None
    shift: list[float] | None = None
    dtype: str = "float64"
    head: str = "adiabatic"
    couplings: bool | str = False
    coupling_scale: float = 1.0
    coupling_terms: int = 4

    def __post_init__(self) -> None:
        self.elements = list(self.elements)
        self.radial_mlp = [int(w) for w in self.radial_mlp]
        if not self.elements:
            raise ValueError("elements must name at least one chemical element")
        for s in self.elements:
            if s not in atomic_numbers or s == "X":
                raise ValueError(f"elements: unknown chemical symbol {s!r}")
        if len(set(self.elements)) != len(self.elements):
            raise ValueError(f"elements: repeated symbols in {self.elements}")
        checks = {
            "n_states": self.n_states >= 1,
            "r_max": self.r_max > 0,
            "channels": self.channels >= 1,
            "l_max": self.l_max >= 0,
            "hidden_l_max": 0 <= self.hidden_l_max <= max(self.l_max, 0),
            "correlation": self.correlation >= 1,
            "num_layers": self.num_layers >= 1,
            "num_bessel": self.num_bessel >= 1,
            "avg_num_neighbors": self.avg_num_neighbors > 0,
            "coupling_terms": self.coupling_terms >= 1,
        }
        for key, ok in checks.items():
            if not ok:
                raise ValueError(f"model config: invalid {key} = {getattr(self, key)!r}")
        if self.dtype not in DTYPES:
            raise ValueError(f"model config: dtype must be one of {DTYPES}, got {self.dtype!r}")
        if self.fusion_tree not in FUSION_TREES:
            raise ValueError(
                f"model config: fusion_tree must be one of {FUSION_TREES}, got {self.fusion_tree!r}"
            )
        if self.head not in HEADS:
            raise ValueError(f"model config: head must be one of {HEADS}, got {self.head!r}")
        if self.head == "diabatic" and self.n_states < 2:
            raise ValueError("model config: head 'diabatic' needs n_states >= 2")
        if self.couplings is True:
            self.couplings = "vector"
        if self.couplings is not False and self.couplings not in COUPLING_MODES:
            raise ValueError(
                f"model config: couplings must be false, true or one of {COUPLING_MODES}, got "
                f"{self.couplings!r}"
            )
        if self.couplings:
            if self.head != "adiabatic":
                raise ValueError(
                    "model config: couplings is for the adiabatic head; the diabatic head's "
                    "couplings come from its eigenvectors"
                )
            if self.n_states < 2 or self.l_max < 1:
                raise ValueError("model config: couplings need n_states >= 2 and l_max >= 1")
        if not self.coupling_scale > 0:
            raise ValueError(
                f"model config: invalid coupling_scale = {self.coupling_scale!r} (must be > 0)"
            )
        if self.l_int_max is None:
            self.l_int_max = self.l_max
        for key in ("scale", "shift"):
            v = getattr(self, key)
            if v is not None and len(v) != self.n_states:
                raise ValueError(
                    f"model config: {key} has {len(v)} entries, n_states is {self.n_states}"
                )
        if self.e0s is not None:
            for sym, vals in self.e0s.items():
                if sym not in self.elements:
                    raise ValueError(f"model config: e0s for {sym!r}, which is not in elements")
                if len(vals) != self.n_states:
                    raise ValueError(
                        f"model config: e0s[{sym!r}] has {len(vals)} entries, "
                        f"n_states is {self.n_states}"
                    )

    @property
    def atomic_numbers(self) -> list[int]:
        return [atomic_numbers[s] for s in self.elements]

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> ModelConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"model config: unknown keys {unknown}")
        return cls(**d)
