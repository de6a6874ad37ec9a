"""ChannelwiseCG (matrix-product channel-wise couplings) equals the e3nn TensorProduct it
replaces, for the uuu couplings of fusion vertices and the uvu edge coupling of interactions,
values and gradients, to float64 round-off."""

from __future__ import annotations

import pytest
import torch
from e3nn import o3

from fusionff.nn.channelwise import ChannelwiseCG


def _uuu(c: int, a: str, b: str, out: str):
    ir_a, ir_b, ir_o = (o3.Irreps(x) * 1 for x in (a, b, out))
    ir_a, ir_b, ir_o = (o3.Irreps([(c, ir) for _, ir in x]) for x in (ir_a, ir_b, ir_o))
    ins = [
        (i1, i2, i3, "uuu", True)
        for i1, (_, t1) in enumerate(ir_a)
        for i2, (_, t2) in enumerate(ir_b)
        for i3, (_, t3) in enumerate(ir_o)
        if t3 in t1 * t2
    ]
    return o3.TensorProduct(ir_a, ir_b, ir_o, ins, internal_weights=False, shared_weights=False)


def _uvu(c: int):
    node = o3.Irreps(f"{c}x0e+{c}x1o")
    sh = o3.Irreps("1x0e+1x1o+1x2e")
    mid, ins = [], []
    for i1, (mul, ir1) in enumerate(node):
        for i2, (_, ir2) in enumerate(sh):
            for ir in ir1 * ir2:
                if ir.l <= 2:
                    ins.append((i1, i2, len(mid), "uvu", True))
                    mid.append((mul, ir))
    return o3.TensorProduct(
        node, sh, o3.Irreps(mid), ins, internal_weights=False, shared_weights=False
    )


CASES = {
    "uuu": lambda: _uuu(3, "0e+1o+2e", "0e+1o+1e+2e", "0e+1o+1e+2e+2o"),
    "uuu-scalar": lambda: _uuu(2, "0e", "0e+1o", "1o"),
    "uvu": lambda: _uvu(3),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_matches_e3nn(case):
    """Same output and same gradients (inputs and weights) as e3nn, float64."""
    torch.manual_seed(0)
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # e3nn's own CG buffers exact, as the reference
    try:
        tp = CASES[case]()
    finally:
        torch.set_default_dtype(default)
    fast = ChannelwiseCG(tp)
    z = 7
    x1 = torch.randn(z, tp.irreps_in1.dim, dtype=torch.float64, requires_grad=True)
    x2 = torch.randn(z, tp.irreps_in2.dim, dtype=torch.float64, requires_grad=True)
    w = torch.randn(z, tp.weight_numel, dtype=torch.float64, requires_grad=True)
    ref = tp(x1, x2, w)
    got = fast(x1, x2, w)
    assert got.shape == ref.shape
    torch.testing.assert_close(got, ref, rtol=0, atol=1e-12)
    probe = torch.randn_like(ref)
    g_ref = torch.autograd.grad((ref * probe).sum(), (x1, x2, w))
    g_got = torch.autograd.grad((got * probe).sum(), (x1, x2, w))
    for a, b in zip(g_got, g_ref, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)


def test_rejects_other_connection_modes():
    """Only channel-wise couplings are supported; others name the problem."""
    ir = o3.Irreps("2x0e+2x1o")
    tp = o3.TensorProduct(ir, ir, ir, [(0, 0, 0, "uvw", True)])
    with pytest.raises(ValueError, match="only uuu or uvu"):
        ChannelwiseCG(tp)
