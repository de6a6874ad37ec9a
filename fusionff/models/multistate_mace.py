"""MultiStateMACE: one equivariant network for the energies of S electronic states.

Per layer: MACE interaction (atomic basis A), then either MACE's product basis (symmetric
contraction, ``fusion=False``) or a fusion block fusing the atom's own features h_i with copies
of A_i (``fusion=True``), an element-dependent residual, and a readout to S per-atom energies
(``head="adiabatic"``) or to the S(S+1)/2 per-atom elements of a symmetric S x S matrix H whose
eigenvalues are the energies (``head="diabatic"``, :mod:`fusionff.nn.diabatic`). With
``couplings="vector"`` (or ``True``) the adiabatic head also reads out learned couplings (polar
vectors per state pair and atom, :mod:`fusionff.nn.couplings`) from the final node features and
the edges; with ``couplings="outer"`` their sign-free outer products d d^T
(:mod:`fusionff.nn.outer_couplings`).
Energies are in eV, positions in Angstrom, forces in eV/Angstrom (minus the gradient of each
state's energy, by autograd).
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import contextmanager

import numpy as np
import torch
from e3nn import o3
from torch import nn

from fusionff.data.graph import Graph
from fusionff.models.config import ModelConfig
from fusionff.nn.couplings import CouplingReadout
from fusionff.nn.diabatic import (
    adiabatic_states,
    n_hamiltonian_elements,
    nonadiabatic_couplings,
    symmetric_matrix,
    upper_indices,
)
from fusionff.nn.fusion import FusionBlock, FusionDiagram
from fusionff.nn.interaction import Interaction
from fusionff.nn.irreps import natural_types, uniform_irreps
from fusionff.nn.outer_couplings import OuterCouplingReadout, couplings_from_outer
from fusionff.nn.radial import RadialEmbedding
from fusionff.nn.readout import LinearReadout, MLPReadout
from fusionff.nn.symmetric_contraction import SymmetricContraction

_TORCH_DTYPES = {"float32": torch.float32, "float64": torch.float64}


@contextmanager
def _default_dtype(dtype: torch.dtype):
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(old)


class ProductBasis(nn.Module):
    """MACE's product basis: symmetric contraction of A followed by a linear map."""

    def __init__(self, irreps_a, irreps_out, correlation, n_elements, l_int_max):
        super().__init__()
        self.contraction = SymmetricContraction(
            irreps_a, irreps_out, correlation, n_elements, l_int_max
        )
        self.linear = o3.Linear(irreps_out, irreps_out)

    def forward(self, h: torch.Tensor, a: torch.Tensor, node_attrs: torch.Tensor) -> torch.Tensor:
        return self.linear(self.contraction(a, node_attrs))


class FusionProduct(nn.Module):
    """Fusion block on the leaves ``h`` (the atom's features) and ``correlation`` copies of A."""

    def __init__(self, irreps_h, irreps_a, irreps_out, config: ModelConfig, n_elements: int):
        super().__init__()
        leaves = ["h"] + ["A"] * config.correlation
        build = FusionDiagram.chain if config.fusion_tree == "chain" else FusionDiagram.balanced
        self.diagram = build(leaves, config.l_int_max)
        self.block = FusionBlock(
            self.diagram,
            {"h": irreps_h, "A": irreps_a},
            irreps_out,
            config.channels,
            n_elements,
            element_weights=config.fusion_element_weights,
        )

    def forward(self, h: torch.Tensor, a: torch.Tensor, node_attrs: torch.Tensor) -> torch.Tensor:
        return self.block({"h": h, "A": a}, node_attrs)


class MultiStateMACE(nn.Module):
    """MACE-style equivariant potential predicting the energies of ``n_states`` states.

    Construct from keywords (see :class:`ModelConfig` for their meaning and units)::

        MultiStateMACE(elements=["H", "C"], n_states=2, r_max=5.0, channels=32, l_max=2,
                       correlation=3, num_layers=2, fusion=True, dtype="float64")

    or from a config: ``MultiStateMACE(config=cfg)``.
    """

    def __init__(self, config: ModelConfig | None = None, **kwargs):
        super().__init__()
        if config is None:
            config = ModelConfig(**kwargs)
        elif kwargs:
            raise TypeError("give either a config or keywords, not both")
        self.config = config
        dtype = _TORCH_DTYPES[config.dtype]
        # Build in float64 (the constant CG/coupling tables are computed exactly), then cast.
        with _default_dtype(torch.float64):
            self._build(config)
        self.to(dtype)

    def _build(self, c: ModelConfig) -> None:
        n_el, S, C = len(c.elements), c.n_states, c.channels
        n_out = S if c.head == "adiabatic" else n_hamiltonian_elements(S)
        self.n_readout = n_out  # per-atom outputs: S energies or the K elements of H
        z_table = torch.full((119,), -1, dtype=torch.long)
        for k, z in enumerate(c.atomic_numbers):
            z_table[z] = k
        self.register_buffer("z_table", z_table)
        e0 = torch.zeros(n_el, S)
        for sym, vals in (c.e0s or {}).items():
            e0[c.elements.index(sym)] = torch.tensor(vals, dtype=torch.float64)
        self.register_buffer("e0", e0)
        self.register_buffer("scale", torch.tensor(c.scale or [1.0] * S, dtype=torch.float64))
        self.register_buffer("shift", torch.tensor(c.shift or [0.0] * S, dtype=torch.float64))

        self.irreps_sh = o3.Irreps.spherical_harmonics(c.l_max)
        self.spherical_harmonics = o3.SphericalHarmonics(
            self.irreps_sh, normalize=True, normalization="component"
        )
        self.radial = RadialEmbedding(c.r_max, c.num_bessel, c.cutoff_p)
        irreps_embed = o3.Irreps(f"{C}x0e")
        self.embedding = o3.Linear(o3.Irreps(f"{n_el}x0e"), irreps_embed)
        irreps_a = uniform_irreps(C, natural_types(c.l_max))
        irreps_hidden = uniform_irreps(C, natural_types(c.hidden_l_max))
        self.interactions = nn.ModuleList()
        self.products = nn.ModuleList()
        self.skips = nn.ModuleList()
        self.readouts = nn.ModuleList()
        irreps_in = irreps_embed
        for layer in range(c.num_layers):
            last = layer == c.num_layers - 1
            irreps_out = irreps_embed if last else irreps_hidden
            self.interactions.append(
                Interaction(
                    irreps_in,
                    self.irreps_sh,
                    irreps_a,
                    c.num_bessel,
                    tuple(c.radial_mlp),
                    c.avg_num_neighbors,
                )
            )
            if c.fusion:
                self.products.append(FusionProduct(irreps_in, irreps_a, irreps_out, c, n_el))
            else:
                self.products.append(
                    ProductBasis(irreps_a, irreps_out, c.correlation, n_el, c.l_int_max)
                )
            self.skips.append(
                o3.FullyConnectedTensorProduct(irreps_in, o3.Irreps(f"{n_el}x0e"), irreps_out)
            )
            self.readouts.append(
                MLPReadout(irreps_out, n_out, c.readout_hidden)
                if last
                else LinearReadout(irreps_out, n_out)
            )
            irreps_in = irreps_out
        if c.couplings == "vector":
            self.coupling_readout = CouplingReadout(
                irreps_embed, self.irreps_sh, c.num_bessel, S, c.readout_hidden,
                c.avg_num_neighbors,
            )  # fmt: skip
        elif c.couplings == "outer":
            self.coupling_readout = OuterCouplingReadout(
                irreps_embed, self.irreps_sh, c.num_bessel, S, c.coupling_terms,
                c.readout_hidden, c.avg_num_neighbors,
            )  # fmt: skip

    # ------------------------------------------------------------------ properties
    @property
    def n_states(self) -> int:
        return self.config.n_states

    @property
    def elements(self) -> list[str]:
        return list(self.config.elements)

    @property
    def r_max(self) -> float:
        return self.config.r_max

    @property
    def dtype(self) -> torch.dtype:
        return self.e0.dtype

    @property
    def device(self) -> torch.device:
        return self.e0.device

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def species_index(self, numbers: torch.Tensor) -> torch.Tensor:
        """Atomic numbers (n,) -> model element indices (n,); ValueError naming unknown atoms."""
        bad_range = (numbers < 0) | (numbers >= self.z_table.shape[0])
        idx = self.z_table[numbers.clamp(0, self.z_table.shape[0] - 1)]
        bad = bad_range | (idx < 0)
        if bool(bad.any()):
            atom = int(torch.nonzero(bad)[0, 0])
            raise ValueError(
                f"atom {atom} has atomic number {int(numbers[atom])}, which this model does not "
                f"know (elements: {self.elements})"
            )
        return idx

    # ------------------------------------------------------------------ evaluation
    @property
    def head(self) -> str:
        return self.config.head

    @property
    def provides_nacs(self) -> bool:
        """Whether ``compute_couplings`` gives couplings: a diabatic head (from its eigenvectors)
        or an adiabatic head with learned couplings (``config.couplings``)."""
        return self.head == "diabatic" or bool(self.config.couplings)

    def forward(
        self,
        graph: Graph,
        compute_forces: bool = True,
        training: bool = False,
        compute_couplings: bool = False,
    ) -> dict[str, torch.Tensor]:
        """Energies of every state, and their forces.

        Returns a dict with ``energies`` (B, S) eV (ascending for the diabatic head) and, when
        ``compute_forces``, ``forces`` (n, S, 3) eV/Angstrom. With ``training=True`` forces and
        couplings keep their graph (for losses on them).

        Adiabatic head: also ``node_energies`` (n, S) eV. Diabatic head: also
        ``diabatic_hamiltonian`` (B, S, S) eV, ``eigenvectors`` (B, S, S) (column s: state s in
        the diabatic basis), ``node_hamiltonian`` (n, K) eV (per-atom terms of H, K = S(S+1)/2,
        order of :func:`fusionff.nn.diabatic.upper_indices`) and, when ``compute_couplings``,
        ``nacs`` (n, S, S, 3) 1/Angstrom: d_ij = <psi_i | grad psi_j> on each atom of its
        structure (for B copies of one N-atom molecule, ``nacs.reshape(B, N, S, S, 3)
        .permute(0, 2, 3, 1, 4)`` is (B, S, S, N, 3)). Couplings cost K extra backward passes.

        Adiabatic head with ``config.couplings``: when ``compute_couplings``, ``nacs`` (n, S, S,
        3) 1/Angstrom as well, the learned couplings (no extra backward pass). ``vector``:
        :mod:`fusionff.nn.couplings`. ``outer``: also ``nac_outer`` (M, P, 3, 3) 1/Angstrom^2,
        D = d d^T per structure and pair i < j over the M = sum N_b^2 atom pairs of
        :func:`fusionff.nn.outer_couplings.structure_pairs`, and ``nacs`` from D's largest
        eigenpair, without a graph and left out with ``training=True`` (losses use D).
        """
        if compute_couplings and not self.provides_nacs:
            raise ValueError(
                "couplings need head='diabatic' or learned couplings (couplings=True); this "
                "model's head is adiabatic without them"
            )
        positions = graph.positions
        needs_grad = compute_forces or (compute_couplings and self.head == "diabatic")
        if needs_grad and not positions.requires_grad:
            positions = positions.detach().requires_grad_(True)
        species = self.species_index(graph.numbers)
        node_attrs = nn.functional.one_hot(species, len(self.config.elements)).to(positions.dtype)
        sender, receiver = graph.edge_index
        vectors = positions[sender] - positions[receiver] + graph.shifts
        lengths = vectors.norm(dim=-1)
        edge_sh = self.spherical_harmonics(vectors)
        edge_radial = self.radial(lengths)

        h = self.embedding(node_attrs)
        node_e = torch.zeros(h.shape[0], self.n_readout, dtype=h.dtype, device=h.device)
        for interaction, product, skip, readout in zip(
            self.interactions, self.products, self.skips, self.readouts, strict=True
        ):
            a = interaction(h, edge_sh, edge_radial, graph.edge_index)
            h = product(h, a, node_attrs) + skip(h, node_attrs)
            node_e = node_e + readout(h)
        if self.head == "diabatic":
            out = self._diabatic(graph, positions, species, node_e, compute_couplings, training)
            energies = out["energies"]
        else:
            node_e = self.e0[species] + self.scale * node_e + self.shift
            energies = torch.zeros(graph.n_graphs, self.n_states, dtype=h.dtype, device=h.device)
            energies = energies.index_add(0, graph.batch, node_e)
            out = {"energies": energies, "node_energies": node_e}
            if compute_couplings:
                edges = (h, edge_sh, edge_radial, graph.edge_index)
                out.update(self._learned_couplings(edges, positions, graph, training))
        if compute_forces:
            out["forces"] = state_forces(energies, positions, training)
        return out

    def _learned_couplings(self, edges, positions, graph, training) -> dict[str, torch.Tensor]:
        """``nacs`` (and for the outer mode ``nac_outer``) of the adiabatic head, 1/Angstrom."""
        scale = self.config.coupling_scale
        if self.config.couplings == "vector":
            return {"nacs": scale * self.coupling_readout(*edges)}
        counts = torch.bincount(graph.batch, minlength=graph.n_graphs)
        outer = self.coupling_readout(*edges, positions, counts)
        out = {"nac_outer": scale**2 * outer}
        if not training:
            out["nacs"] = scale * couplings_from_outer(outer, counts, self.n_states)
        return out

    def _diabatic(self, graph, positions, species, node_out, compute_couplings, training):
        """Per-atom readouts (n, K) -> H (B, S, S), its eigenstates and, optionally, couplings.

        Diagonal element s of H gets the adiabatic head's per-atom terms (E0 of the element,
        ``scale[s]``, ``shift[s]``); the off-diagonal (i, j) the scale (scale_i + scale_j)/2 and
        no E0 or shift.
        """
        rows, cols = upper_indices(self.n_states, node_out.device)
        diagonal = rows == cols
        scale = 0.5 * (self.scale[rows] + self.scale[cols])
        shift = torch.where(diagonal, self.shift[rows], torch.zeros_like(scale))
        e0 = self.e0[species][:, rows] * diagonal
        node_h = e0 + scale * node_out + shift
        upper = torch.zeros(graph.n_graphs, rows.shape[0], dtype=node_h.dtype, device=node_h.device)
        upper = upper.index_add(0, graph.batch, node_h)
        hamiltonian = symmetric_matrix(upper, self.n_states)
        energies, vectors = adiabatic_states(hamiltonian)
        out = {
            "energies": energies,
            "diabatic_hamiltonian": hamiltonian,
            "eigenvectors": vectors,
            "node_hamiltonian": node_h,
        }
        if compute_couplings:
            grads = [
                torch.autograd.grad(
                    upper[:, k].sum(),
                    positions,
                    retain_graph=True,
                    create_graph=training,
                    materialize_grads=True,  # zeros, not an error, for atoms without neighbours
                )[0]
                for k in range(rows.shape[0])
            ]
            out["nacs"] = nonadiabatic_couplings(
                hamiltonian, energies, vectors, torch.stack(grads, dim=1), graph.batch
            )
        return out

    def evaluate_structures(
        self,
        numbers: Sequence[np.ndarray],
        positions: Sequence[np.ndarray],
        cells: Sequence[np.ndarray | None] | None = None,
        pbcs: Sequence[np.ndarray | None] | None = None,
        compute_couplings: bool = False,
    ) -> dict[str, torch.Tensor]:
        """Convenience: build the graph of a list of structures and evaluate it."""
        from fusionff.data.graph import build_graph

        graph = build_graph(numbers, positions, self.r_max, cells, pbcs, self.dtype, self.device)
        return self.forward(graph, compute_couplings=compute_couplings)


def state_forces(
    energies: torch.Tensor,
    positions: torch.Tensor,
    create_graph: bool,
    batched: bool | None = None,
) -> torch.Tensor:
    """Forces of every state: energies (B, S) -> (n, S, 3) = -dE_s/dx.

    ``batched``: one backward pass vmapped over the states (``is_grads_batched``) instead of
    one pass per state; the same forces. None (default): batched on a GPU when no graph of
    the forces is needed (dynamics, evaluation), where kernel launches bound the cost (an
    H200, R2 potential, B = 1 / 64 / 512: 1.43x / 1.21x / 1.40x faster;
    benchmarks/forces_batched.py); per state on a CPU, where the two cost the same, and in
    training (``create_graph``)."""
    n_states = energies.shape[1]
    if batched is None:
        batched = energies.is_cuda and not create_graph
    if batched:
        eye = torch.eye(n_states, dtype=energies.dtype, device=energies.device)
        (grads,) = torch.autograd.grad(
            energies,
            positions,
            grad_outputs=eye[:, None, :].expand(n_states, energies.shape[0], n_states),
            is_grads_batched=True,
            retain_graph=create_graph,
            create_graph=create_graph,
        )
        return -grads.permute(1, 0, 2)
    grads = []
    for s in range(n_states):
        (g,) = torch.autograd.grad(
            energies[:, s].sum(),
            positions,
            retain_graph=create_graph or s < n_states - 1,
            create_graph=create_graph,
        )
        grads.append(-g)
    return torch.stack(grads, dim=1)
