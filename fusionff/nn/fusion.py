"""Fusion diagrams and fusion blocks (arXiv 2211.07482).

A fusion diagram is a binary tree: its leaves are input tensors, each internal vertex is a
channel-wise Clebsch-Gordan (CG) coupling of its two children, and each edge carries a set of
O(3) irreps, truncated at ``l_int_max``. Contracting the tree is an exactly equivariant
multilinear map of the inputs because every vertex is.

``FusionBlock`` evaluates a diagram on per-atom features:
- each leaf passes through its own channel-mixing linear map (e3nn ``o3.Linear``);
- each vertex couples channel ``c`` of its left child with channel ``c`` of its right child, with
  one learnable weight per (CG path, channel), optionally one set per element of the atom;
- the output is a linear map of the sum over the tree and all its sub-trees (leaves included,
  each sub-tree weighted per channel), so every correlation order up to the number of leaves
  is present.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from e3nn import o3
from torch import nn

from fusionff.nn.channelwise import ChannelwiseCG
from fusionff.nn.irreps import coupled_types, irreps_types, sorted_unique, uniform_irreps


@dataclass(frozen=True)
class FusionDiagram:
    """A binary tree of CG couplings.

    Nodes ``0 .. n_leaves-1`` are the leaves, named by ``leaves`` (several leaves may name the
    same input tensor: each is a separate copy with its own linear map). Vertex ``k`` is node
    ``n_leaves + k`` and couples the nodes ``vertices[k] = (left, right)``, which must be earlier
    nodes; every node except the root (the last vertex) is the child of exactly one vertex.
    Irreps on internal edges are truncated at ``l_int_max``.
    """

    leaves: tuple[str, ...]
    vertices: tuple[tuple[int, int], ...]
    l_int_max: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "leaves", tuple(self.leaves))
        object.__setattr__(self, "vertices", tuple(tuple(v) for v in self.vertices))
        n = len(self.leaves)
        if n < 1:
            raise ValueError("a fusion diagram needs at least one leaf")
        if len(self.vertices) != n - 1:
            raise ValueError(
                f"a binary tree with {n} leaves has {n - 1} vertices, got {len(self.vertices)}"
            )
        if self.l_int_max < 0:
            raise ValueError(f"l_int_max must be >= 0, got {self.l_int_max}")
        used: set[int] = set()
        for k, (a, b) in enumerate(self.vertices):
            node = n + k
            for child in (a, b):
                if not 0 <= child < node:
                    raise ValueError(
                        f"vertex {k} (node {node}) has child {child}: not an earlier node"
                    )
                if child in used:
                    raise ValueError(f"node {child} is the child of more than one vertex")
                used.add(child)
        if len(used) != self.n_nodes - 1:
            raise ValueError("the diagram is not connected: some node has no parent")

    @property
    def n_leaves(self) -> int:
        return len(self.leaves)

    @property
    def n_nodes(self) -> int:
        return len(self.leaves) + len(self.vertices)

    @property
    def root(self) -> int:
        return self.n_nodes - 1

    @classmethod
    def chain(cls, leaves: Sequence[str], l_int_max: int) -> FusionDiagram:
        """Left-to-right chain ``(((x0 x1) x2) x3) ...``."""
        n = len(leaves)
        vertices = [(0, 1)] + [(n + k - 1, k + 1) for k in range(1, n - 1)] if n > 1 else []
        return cls(tuple(leaves), tuple(vertices), l_int_max)

    @classmethod
    def balanced(cls, leaves: Sequence[str], l_int_max: int) -> FusionDiagram:
        """Pairs neighbouring nodes level by level: ``((x0 x1)(x2 x3))`` for four leaves."""
        level = list(range(len(leaves)))
        vertices: list[tuple[int, int]] = []
        while len(level) > 1:
            nxt = []
            for i in range(0, len(level) - 1, 2):
                vertices.append((level[i], level[i + 1]))
                nxt.append(len(leaves) + len(vertices) - 1)
            if len(level) % 2:
                nxt.append(level[-1])
            level = nxt
        return cls(tuple(leaves), tuple(vertices), l_int_max)

    def parent(self) -> dict[int, int]:
        """Map of child node -> vertex node."""
        return {c: self.n_leaves + k for k, v in enumerate(self.vertices) for c in v}

    def node_types(
        self, leaf_types: Mapping[str, Sequence[o3.Irrep]], out_types: Sequence[o3.Irrep]
    ) -> list[list[o3.Irrep]]:
        """Irreps carried by every node, after truncation and pruning.

        Forward: a vertex carries every irrep its children couple to with ``l <= l_int_max``.
        Backward: an irrep is kept only if it is an output type (every sub-tree is summed into
        the output) or if it can still couple into an irrep its parent keeps.
        """
        n = self.n_leaves
        missing = [name for name in self.leaves if name not in leaf_types]
        if missing:
            raise ValueError(f"no irreps given for leaves {missing}")
        types: list[list[o3.Irrep]] = [sorted_unique(leaf_types[name]) for name in self.leaves]
        for a, b in self.vertices:
            types.append(
                sorted_unique(
                    ir
                    for i1 in types[a]
                    for i2 in types[b]
                    for ir in coupled_types(i1, i2, self.l_int_max)
                )
            )
        out = set(out_types)
        keep = [list(t) for t in types]
        keep[self.root] = [ir for ir in types[self.root] if ir in out]
        for k in reversed(range(len(self.vertices))):
            node = n + k
            a, b = self.vertices[k]
            for child, sibling in ((a, b), (b, a)):
                keep[child] = [
                    ir
                    for ir in types[child]
                    if ir in out
                    or any(
                        u in keep[node]
                        for s in types[sibling]
                        for u in coupled_types(ir, s, self.l_int_max)
                    )
                ]
        return keep

    def describe(self) -> str:
        """Bracket notation of the tree, e.g. ``((h.A).A).A``."""
        names = list(self.leaves)
        for a, b in self.vertices:
            names.append(f"({names[a]}.{names[b]})")
        return names[-1][1:-1] if len(names) > 1 and names[-1].startswith("(") else names[-1]

    def to_dict(self) -> dict:
        return {
            "leaves": list(self.leaves),
            "vertices": [list(v) for v in self.vertices],
            "l_int_max": self.l_int_max,
        }

    @classmethod
    def from_dict(cls, d: Mapping) -> FusionDiagram:
        return cls(tuple(d["leaves"]), tuple(tuple(v) for v in d["vertices"]), int(d["l_int_max"]))


class FusionBlock(nn.Module):
    """Evaluates a :class:`FusionDiagram` on per-atom equivariant features.

    Args:
        diagram: the tree.
        leaf_irreps: irreps of each named input tensor.
        irreps_out: irreps of the output.
        channels: number of channels on every internal edge.
        n_elements: number of element types (for element-dependent vertex weights).
        element_weights: one set of vertex weights per element of the atom.
    """

    def __init__(
        self,
        diagram: FusionDiagram,
        leaf_irreps: Mapping[str, o3.Irreps],
        irreps_out: o3.Irreps,
        channels: int,
        n_elements: int,
        element_weights: bool = False,
    ):
        super().__init__()
        self.diagram = diagram
        self.irreps_out = o3.Irreps(irreps_out)
        self.element_weights = element_weights
        leaf_irreps = {k: o3.Irreps(v) for k, v in leaf_irreps.items()}
        out_types = irreps_types(self.irreps_out)
        types = diagram.node_types({k: irreps_types(v) for k, v in leaf_irreps.items()}, out_types)
        for node, t in enumerate(types):
            if not t:
                raise ValueError(
                    f"fusion diagram {diagram.describe()}: node {node} carries no irreps that "
                    f"reach the output {self.irreps_out} (raise l_int_max or change the tree)"
                )
        self.node_irreps = [uniform_irreps(channels, t) for t in types]
        self.leaf_linears = nn.ModuleList(
            o3.Linear(leaf_irreps[name], self.node_irreps[i])
            for i, name in enumerate(diagram.leaves)
        )
        self.couplings = nn.ModuleList()  # e3nn modules: the definition (and shared weights)
        self.vertex_products = nn.ModuleList()  # the same couplings as matrix products
        self.vertex_weights = nn.ParameterList()
        for k, (a, b) in enumerate(diagram.vertices):
            ir_a, ir_b, ir_v = (self.node_irreps[i] for i in (a, b, diagram.n_leaves + k))
            instructions = [
                (i1, i2, i3, "uuu", True)
                for i1, (_, t1) in enumerate(ir_a)
                for i2, (_, t2) in enumerate(ir_b)
                for i3, (_, t3) in enumerate(ir_v)
                if t3 in t1 * t2
            ]
            tp = o3.TensorProduct(
                ir_a,
                ir_b,
                ir_v,
                instructions,
                internal_weights=not element_weights,
                shared_weights=not element_weights,
            )
            self.couplings.append(tp)
            self.vertex_products.append(ChannelwiseCG(tp))
            if element_weights:
                self.vertex_weights.append(nn.Parameter(torch.randn(n_elements, tp.weight_numel)))
        # Sub-tree outputs of each output irrep type are summed with one weight per (node,
        # channel), then a single linear map produces the output.
        self.channels = channels
        self.out_types = out_types
        self.terms: list[tuple[int, int, int]] = []  # (node, irrep block, out type index)
        for node, irreps in enumerate(self.node_irreps):
            for block, (_, ir) in enumerate(irreps):
                if ir in out_types:
                    self.terms.append((node, block, out_types.index(ir)))
        self.term_weights = nn.Parameter(torch.ones(len(self.terms), channels))
        self.output = o3.Linear(uniform_irreps(channels, out_types), self.irreps_out)

    def forward(self, inputs: Mapping[str, torch.Tensor], node_attrs: torch.Tensor) -> torch.Tensor:
        """inputs: name -> (n_atoms, dim) features; node_attrs: (n_atoms, n_elements) one-hot."""
        d = self.diagram
        values = [lin(inputs[name]) for lin, name in zip(self.leaf_linears, d.leaves, strict=True)]
        for k, (a, b) in enumerate(d.vertices):
            if self.element_weights:
                w = node_attrs @ self.vertex_weights[k]
            else:
                w = self.couplings[k].weight
            values.append(self.vertex_products[k](values[a], values[b], w))
        c, n = self.channels, node_attrs.shape[0]
        # torch.split rather than slices: its backward is one concatenation, where each
        # slice's backward zero-fills a tensor of the full width
        blocks = [
            torch.split(v, [mul * ir.dim for mul, ir in irreps], dim=1)
            for v, irreps in zip(values, self.node_irreps, strict=True)
        ]
        sums: list[torch.Tensor | None] = [None] * len(self.out_types)
        for k, (node, block, t) in enumerate(self.terms):
            x = blocks[node][block].reshape(n, c, self.out_types[t].dim)
            x = x * self.term_weights[k].unsqueeze(-1)
            sums[t] = x if sums[t] is None else sums[t] + x
        return self.output(torch.cat([x.reshape(n, -1) for x in sums], dim=-1))
