"""Small helpers on O(3) irreps (e3nn's ``Irrep``/``Irreps``) shared by the layers."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from e3nn import o3


def natural_types(l_max: int) -> list[o3.Irrep]:
    """Natural-parity irreps ``0e, 1o, 2e, ...`` up to ``l_max`` (as spherical harmonics)."""
    if l_max < 0:
        raise ValueError(f"l_max must be >= 0, got {l_max}")
    return [o3.Irrep(l, (-1) ** l) for l in range(l_max + 1)]


def coupled_types(ir1: o3.Irrep, ir2: o3.Irrep, l_max: int) -> list[o3.Irrep]:
    """Irreps in ``ir1 (x) ir2`` (Clebsch-Gordan selection rule) with ``l <= l_max``."""
    return [ir for ir in ir1 * ir2 if ir.l <= l_max]


def sorted_unique(types: Iterable[o3.Irrep]) -> list[o3.Irrep]:
    """Distinct irreps in e3nn's canonical order (by l, then parity)."""
    return sorted(set(types))


def uniform_irreps(channels: int, types: Sequence[o3.Irrep]) -> o3.Irreps:
    """``channels`` copies of each irrep type: ``C x t1 + C x t2 + ...``."""
    return o3.Irreps([(channels, ir) for ir in types])


def irreps_types(irreps: o3.Irreps) -> list[o3.Irrep]:
    """The distinct irrep types of ``irreps``, in order of first appearance."""
    seen: list[o3.Irrep] = []
    for _, ir in o3.Irreps(irreps):
        if ir not in seen:
            seen.append(ir)
    return seen


def uniform_channels(irreps: o3.Irreps) -> int:
    """The common multiplicity of ``irreps``; error if the multiplicities differ."""
    muls = {mul for mul, _ in o3.Irreps(irreps)}
    if len(muls) != 1:
        raise ValueError(f"irreps {irreps} must have one multiplicity for every irrep, got {muls}")
    return muls.pop()
