"""Channel-wise Clebsch-Gordan couplings as two dense matrix products.

A channel-wise coupling (e3nn connection modes ``uuu`` and ``uvu`` with one channel in the
second input) computes, for every channel ``u`` and every path ``p = (l1, l2 -> l3)``,

    out[z, u, l3 block] += w[z, p, u] * c_p * sum_ij x1[z, u, l1 block i] x2[z, u, j] C_p[i, j, :]

e3nn evaluates this path by path, a few small einsums each; with many paths on small
features (a fusion vertex, the edge coupling of an interaction) the time goes into launching
tiny kernels, and twice more in the double backward that force training needs. Here the
outer product ``x1 (x) x2`` of each channel is formed once, contracted with all paths' CG
blocks in one matrix product, weighted, and the paths are summed onto the output irreps with
a second matrix product (CG blocks from :func:`e3nn.o3.wigner_3j`, path normalisation taken
from the e3nn module, so the result equals e3nn's to round-off; tests/unit/test_channelwise.py).

Used by the fusion vertices (benchmarks/train_step.py: a training step of the fusion stilbene
model about 1.1x faster on one CPU core). The interaction's edge coupling (``uvu``, thousands
of edges, few paths) stays with e3nn: there this formulation measured slower (0.8x, on a
loaded machine; not re-measured idle).
"""

from __future__ import annotations

import torch
from e3nn import o3
from torch import nn


def _blocks(irreps: o3.Irreps) -> list[tuple[int, int, int, int]]:
    """(offset in the e3nn layout, multiplicity, irrep dim, offset in the per-channel layout)."""
    out, start, per_channel = [], 0, 0
    for mul, ir in irreps:
        out.append((start, mul, ir.dim, per_channel))
        start += mul * ir.dim
        per_channel += ir.dim
    return out


class ChannelwiseCG(nn.Module):
    """The coupling of an e3nn ``TensorProduct`` whose instructions are all ``uuu``, or all
    ``uvu`` with multiplicity 1 in every irrep of the second input, evaluated as matrix products.

    Args:
        tp: the e3nn module (its irreps, instructions and path weights are used; it is not kept).

    ``forward(x1, x2, weight)`` takes the e3nn layouts, ``weight`` (Z, tp.weight_numel) per row
    or (tp.weight_numel,) shared, and returns what ``tp(x1, x2, weight)`` returns.
    """

    def __init__(self, tp: o3.TensorProduct):
        super().__init__()
        modes = {ins.connection_mode for ins in tp.instructions}
        muls1 = {mul for mul, _ in tp.irreps_in1}
        if len(muls1) != 1:
            raise ValueError(f"first input must have one multiplicity, got {tp.irreps_in1}")
        (c,) = muls1
        if modes == {"uuu"}:
            shared_channels = False
            if {mul for mul, _ in tp.irreps_in2} != {c}:
                raise ValueError(f"uuu needs {c} channels in {tp.irreps_in2}")
        elif modes == {"uvu"}:
            shared_channels = True
            if {mul for mul, _ in tp.irreps_in2} != {1}:
                raise ValueError(f"uvu needs multiplicity 1 in {tp.irreps_in2}")
        else:
            raise ValueError(f"only uuu or uvu instructions, got {sorted(modes)}")
        if any(mul != c for mul, _ in tp.irreps_out):
            raise ValueError(f"output must have {c} channels per irrep, got {tp.irreps_out}")
        if not all(ins.has_weight for ins in tp.instructions):
            raise ValueError("every instruction must be weighted")
        self.channels = c
        self.shared_channels = shared_channels
        self.in1 = _blocks(tp.irreps_in1)
        self.in2 = _blocks(tp.irreps_in2)
        self.out = _blocks(tp.irreps_out)
        d1, d2, d3 = (sum(b[2] for b in blocks) for blocks in (self.in1, self.in2, self.out))
        self.dims = (d1, d2, d3)
        n_cols = sum(tp.irreps_out[ins.i_out].ir.dim for ins in tp.instructions)
        cg = torch.zeros(d1, d2, n_cols, dtype=torch.float64)
        gather = torch.zeros(n_cols, d3, dtype=torch.float64)
        path_of_column = torch.zeros(n_cols, dtype=torch.long)
        col = 0
        for p, ins in enumerate(tp.instructions):
            l1 = tp.irreps_in1[ins.i_in1].ir.l
            l2 = tp.irreps_in2[ins.i_in2].ir.l
            ir3 = tp.irreps_out[ins.i_out].ir
            _, _, n1, o1 = self.in1[ins.i_in1]
            _, _, n2, o2 = self.in2[ins.i_in2]
            _, _, n3, o3_ = self.out[ins.i_out]
            w3j = o3.wigner_3j(l1, l2, ir3.l, dtype=torch.float64)
            cg[o1 : o1 + n1, o2 : o2 + n2, col : col + n3] = ins.path_weight * w3j
            gather[col : col + n3, o3_ : o3_ + n3] = torch.eye(n3, dtype=torch.float64)
            path_of_column[col : col + n3] = p
            col += n3
        # float64 masters, cast once per (dtype, device) on use: a model built in float32
        # and moved to float64 still gets CG coefficients exact to float64
        self._cg64 = cg.reshape(d1 * d2, n_cols)
        self._gather64 = gather
        self._path_of_column = path_of_column
        self._cache: dict[tuple, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}
        self.n_paths = len(tp.instructions)
        self.weight_numel = tp.weight_numel

    @staticmethod
    def _to_channels(x: torch.Tensor, blocks, mul: int) -> torch.Tensor:
        """(Z, e3nn dim) -> (Z, mul, per-channel dim)."""
        z = x.shape[0]
        # torch.split, not slices: backward concatenates instead of zero-filling per block
        pieces = torch.split(x, [mul * d for _, _, d, _ in blocks], dim=1)
        parts = [p.reshape(z, mul, d) for p, (_, _, d, _) in zip(pieces, blocks, strict=True)]
        return parts[0] if len(parts) == 1 else torch.cat(parts, dim=-1)

    def _matrices(self, dtype: torch.dtype, device: torch.device):
        key = (dtype, device)
        if key not in self._cache:
            self._cache[key] = (
                self._cg64.to(device=device, dtype=dtype),
                self._gather64.to(device=device, dtype=dtype),
                self._path_of_column.to(device),
            )
        return self._cache[key]

    def forward(self, x1: torch.Tensor, x2: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        c, (d1, d2, _) = self.channels, self.dims
        cg, gather, path_of_column = self._matrices(x1.dtype, x1.device)
        z = max(x1.shape[0], x2.shape[0])
        a = self._to_channels(x1, self.in1, c)  # (Z, c, d1)
        b = self._to_channels(x2, self.in2, 1 if self.shared_channels else c)  # (Z, c|1, d2)
        outer = (a.unsqueeze(-1) * b.unsqueeze(-2)).reshape(z * c, d1 * d2)
        paths = (outer @ cg).reshape(z, c, -1)  # (Z, c, columns)
        w = weight.reshape(-1, self.n_paths, c).transpose(1, 2)  # (Z|1, c, paths)
        paths = paths * w.index_select(2, path_of_column)
        y = paths @ gather  # (Z, c, d3)
        pieces = torch.split(y, [d for _, _, d, _ in self.out], dim=-1)
        parts = [p.reshape(z, c * d) for p, (_, _, d, _) in zip(pieces, self.out, strict=True)]
        return parts[0] if len(parts) == 1 else torch.cat(parts, dim=-1)
