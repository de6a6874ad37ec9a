"""MACE's product basis: the symmetric contraction of the atomic basis A with itself.

For each output irrep L and correlation order nu <= ``correlation``,

    B_{c,L} = sum_nu sum_k w[z, nu, k, c] (U^{nu}_k . A_c^{(x) nu})_L

where U^{nu}_k runs over a basis of the equivariant maps Sym^nu(V) -> L (V = the irreps of A),
with one weight per (element z, basis map k, channel c). We do not build U densely: the maps
are evaluated as a left chain of channel-wise CG couplings ((A.A).A)..., one slot per coupling
path (which keeps memory linear in the number of atoms). The paths of one order are linearly
dependent once contracted with the symmetric A^(x)nu; at construction we compute their dense
symmetrised forms once, find an orthonormal basis of their span (SVD), and store the matrix Q
that maps the independent weights to path weights. The number of weights is therefore that of
MACE's generalised CG basis, and the function space is the same.
"""

from __future__ import annotations

import copy
import itertools
import math

import torch
from e3nn import o3
from torch import nn

from fusionff.nn.irreps import irreps_types, uniform_channels, uniform_irreps


class SymmetricContraction(nn.Module):
    """Product basis of correlation order ``correlation`` with element-dependent weights.

    Args:
        irreps_in: irreps of A, one multiplicity C for every irrep (e.g. ``32x0e+32x1o+32x2e``).
        irreps_out: output irreps, multiplicity C (e.g. ``32x0e+32x1o``).
        correlation: highest order nu (>= 1).
        n_elements: number of element types.
        l_int_max: truncation of intermediate irreps in the coupling chain.
    """

    def __init__(
        self,
        irreps_in: o3.Irreps,
        irreps_out: o3.Irreps,
        correlation: int,
        n_elements: int,
        l_int_max: int,
    ):
        super().__init__()
        if correlation < 1:
            raise ValueError(f"correlation must be >= 1, got {correlation}")
        self.irreps_in = o3.Irreps(irreps_in)
        self.irreps_out = o3.Irreps(irreps_out)
        self.channels = uniform_channels(self.irreps_in)
        if uniform_channels(self.irreps_out) != self.channels:
            raise ValueError("irreps_in and irreps_out must have the same number of channels")
        self.correlation = correlation
        self.out_types = irreps_types(self.irreps_out)
        in_types = irreps_types(self.irreps_in)
        max_out = max(ir.l for ir in self.out_types)
        max_in = max(ir.l for ir in in_types)

        # Slots of the chain: depth d holds one slot per coupling path of d copies of A.
        depth_types: list[list[o3.Irrep]] = [list(in_types)]
        self.stages = nn.ModuleList()
        for depth in range(2, correlation + 1):
            prev = depth_types[-1]
            remaining = correlation - depth
            instructions, new_types = [], []
            for i_prev, ir_prev in enumerate(prev):
                for i_in, ir_in in enumerate(in_types):
                    for ir in ir_prev * ir_in:
                        # keep a slot only if it can still reach an output irrep
                        if ir.l > l_int_max or ir.l - remaining * max_in > max_out:
                            continue
                        instructions.append((i_prev, i_in, len(new_types), "uuu", False))
                        new_types.append(ir)
            tp = o3.TensorProduct(
                uniform_irreps(self.channels, prev),
                self.irreps_in,
                uniform_irreps(self.channels, new_types),
                instructions,
            )
            self.stages.append(tp)
            depth_types.append(new_types)
        self.depth_types = depth_types

        # Output paths: every slot (depth, index) whose irrep is an output irrep.
        self.paths: dict[str, list[tuple[int, int]]] = {}
        for ir in self.out_types:
            self.paths[str(ir)] = [
                (d, i) for d, ts in enumerate(depth_types) for i, t in enumerate(ts) if t == ir
            ]
            if not self.paths[str(ir)]:
                raise ValueError(f"no coupling path of A = {self.irreps_in} reaches output {ir}")

        # Independent symmetric maps: Q (n_paths, n_weights) per output irrep.
        q = self._independent_combinations()
        self.weights = nn.ParameterDict()
        for key, qmat in q.items():
            self.register_buffer(f"q_{key}", qmat)
            self.weights[key] = nn.Parameter(torch.randn(n_elements, qmat.shape[1], self.channels))

    # ------------------------------------------------------------------ construction helpers
    def _slots(self, a_copies: list[torch.Tensor]) -> list[list[torch.Tensor]]:
        """Chain values for (possibly different) copies of A: per depth, per slot (n, C, 2l+1)."""
        c = self.channels
        values = [a_copies[0]]
        for stage, a in zip(self.stages, a_copies[1:], strict=False):
            values.append(stage(values[-1], a))
        out = []
        for d, v in enumerate(values):
            types = self.depth_types[d]
            # torch.split, not slices: backward concatenates instead of zero-filling per slot
            pieces = torch.split(v, [c * ir.dim for ir in types], dim=1)
            out.append([p.reshape(-1, c, ir.dim) for p, ir in zip(pieces, types, strict=True)])
        return out

    @torch.no_grad()
    def _independent_combinations(self) -> dict[str, torch.Tensor]:
        dim = self.irreps_in.dim // self.channels
        # basis vector i of the per-channel space, repeated over channels, in e3nn's mul_ir layout
        basis = torch.zeros(dim, self.irreps_in.dim, dtype=torch.float64)
        # (the dense forms are always computed in float64, whatever the model's dtype)
        start_ch, start = 0, 0
        for mul, ir in self.irreps_in:
            for m in range(ir.dim):
                basis[start_ch + m, start + m : start + mul * ir.dim : ir.dim] = 1.0
            start_ch += ir.dim
            start += mul * ir.dim
        dtype = torch.get_default_dtype()
        modules = [copy.deepcopy(s).to(torch.float64) for s in self.stages]
        q: dict[str, torch.Tensor] = {}
        forms: dict[int, list[list[torch.Tensor]]] = {}
        for nu in range(1, self.correlation + 1):
            # evaluate the chain on every tuple of basis vectors: batch index = (i1, ..., i_nu)
            idx = torch.tensor(list(itertools.product(range(dim), repeat=nu))).reshape(-1, nu)
            copies = [basis[idx[:, j]] for j in range(nu)]
            values = [copies[0]]
            for stage, a in zip(modules[: nu - 1], copies[1:], strict=True):
                values.append(stage(values[-1], a))
            forms[nu] = self._split(values[-1], nu - 1)
        for ir in self.out_types:
            key = str(ir)
            blocks = []
            for nu in range(1, self.correlation + 1):
                cols = [i for d, i in self.paths[key] if d == nu - 1]
                if not cols:
                    blocks.append((0, torch.zeros(0, 0, dtype=torch.float64)))
                    continue
                dense = torch.stack([forms[nu][i] for i in cols], dim=-1)  # (dim^nu, 2l+1, P)
                dense = dense.reshape((dim,) * nu + (ir.dim, len(cols)))
                sym = sum(dense.permute(*p, nu, nu + 1) for p in itertools.permutations(range(nu)))
                flat = sym.reshape(-1, len(cols)) / math.factorial(nu)
                _, s, vh = torch.linalg.svd(flat, full_matrices=False)
                rank = int((s > 1e-10 * max(float(s.max()), 1e-300)).sum())
                blocks.append((len(cols), vh[:rank].T / s[:rank]))  # unit-norm combinations
            n_paths = sum(b[0] for b in blocks)
            n_w = sum(b[1].shape[1] for b in blocks)
            qmat = torch.zeros(n_paths, n_w, dtype=torch.float64)
            r0 = c0 = 0
            for p, blk in blocks:
                qmat[r0 : r0 + p, c0 : c0 + blk.shape[1]] = blk
                r0 += p
                c0 += blk.shape[1]
            q[key] = qmat.to(dtype)
        return q

    def _split(self, v: torch.Tensor, depth: int) -> list[torch.Tensor]:
        """Channel 0 of every slot at ``depth``: list of (batch, 2l+1)."""
        c, types = self.channels, self.depth_types[depth]
        pieces = torch.split(v, [c * ir.dim for ir in types], dim=1)
        return [p.reshape(-1, c, ir.dim)[:, 0] for p, ir in zip(pieces, types, strict=True)]

    # ------------------------------------------------------------------ forward
    def forward(self, a: torch.Tensor, node_attrs: torch.Tensor) -> torch.Tensor:
        """a: (n_atoms, irreps_in.dim); node_attrs: (n_atoms, n_elements) -> (n_atoms, out.dim)."""
        slots = self._slots([a] * self.correlation)
        outs = []
        for ir in self.out_types:
            key = str(ir)
            x = torch.stack([slots[d][i] for d, i in self.paths[key]], dim=1)  # (n, P, C, 2l+1)
            w = torch.einsum("ne,ekc->nkc", node_attrs, self.weights[key])
            wp = torch.einsum("pk,nkc->npc", getattr(self, f"q_{key}"), w)
            outs.append(torch.einsum("npc,npcm->ncm", wp, x).reshape(x.shape[0], -1))
        return torch.cat(outs, dim=-1)

    def num_independent_weights(self) -> dict[str, int]:
        """Independent basis maps per output irrep (summed over correlation orders)."""
        return {k: int(getattr(self, f"q_{k}").shape[1]) for k in self.paths}
