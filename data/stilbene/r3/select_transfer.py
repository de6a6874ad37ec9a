"""R3's first queue: R2's labelled geometries in farthest-point order, for labels at 6-31G.

    OMP_NUM_THREADS=1 python data/stilbene/r3/select_transfer.py \\
        potentials/stilbene-r2-adiabatic-round14.yaml data/stilbene/r3/transfer.xyz

R3 (SA-2-CASSCF(2,2)/6-31G) costs 4-6 times R2 per label, so its data cannot be grown from
nothing the way R2's were. Its first labels are R2's own structures (round 14's data: every
structure in its train, validation or test split, none of the excluded wrong labels), chosen
by farthest-point sampling so that any prefix of the queue covers what R2 explored: a queue cut
short after k labels holds the k most mutually distant structures, not the first k of a seed
file. Every second pick is instead a uniform random one (``--random-fraction 0.5``), so that
the prefix also follows where R2's data are dense (the Franck-Condon region, where every
trajectory starts), not only the outskirts that farthest-point sampling favours.
The R2-trained potential is then fine-tuned on them (and compared with training from
scratch on the same labels).

Distance between two structures: the Euclidean distance between their descriptors, which join
two standardised blocks of equal weight: (1) all 325 inverse interatomic distances (the atom
order is the same in every stilbene file), and (2) the collective variables of the
photoisomerisation, cos and sin of the central dihedral, the angle sums of both central
carbons, the shortest hydrogen-to-other-central-carbon distance and R2's S1-S0 gap (eV).
Structures whose hydrogen is within ``--min-h-distance`` (1.55 Angstrom) of the other central
carbon are left out: there the (2,2) active space fails its guard at STO-3G, and the 6-31G
probe (hchannel-probe.json) found the channel narrower, so they would cost a label and give
none. The first structure is the one nearest R2's cis minimum (``cis-r2.xyz``).

Each written frame carries ``r2_source`` (file: row) and ``r2_split`` (train/validation/test),
``dihedral``, ``angle_sum_c1``/``c2`` (degrees), ``h_other_c`` (Angstrom) and ``r2_gap`` (eV).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.io import read, write

from fusionff.data import stilbene
from fusionff.train.config import TrainConfig
from fusionff.train.data import load_training_data

BONDED_H = 1.3  # Angstrom: a hydrogen this close to a central carbon is its own


def hydrogen_to_other_carbon(p: np.ndarray, numbers: np.ndarray) -> float:
    """Shortest distance (Angstrom) of a central carbon's hydrogen to the other central carbon,
    the hydrogens found by distance (as in ``../r2/al14_frames.py``), not by index as in
    :func:`fusionff.data.stilbene.hydrogen_bridge_distance`: the two differ where a C-H bond
    is stretched past 1.3 A, and this one wrote ``transfer.xyz``, which the queue's resume
    checks frame by frame, so it stays."""
    hydrogens = np.flatnonzero(numbers == 1)
    best = np.inf
    for own, other in ((stilbene.C1, stilbene.C2), (stilbene.C2, stilbene.C1)):
        for h in hydrogens:
            if np.linalg.norm(p[h] - p[own]) < BONDED_H:
                best = min(best, float(np.linalg.norm(p[h] - p[other])))
    return best


def inverse_distances(p: np.ndarray) -> np.ndarray:
    i, j = np.triu_indices(len(p), k=1)
    return 1.0 / np.linalg.norm(p[i] - p[j], axis=1)


def collective(p: np.ndarray, numbers: np.ndarray, gap: float) -> np.ndarray:
    phi = np.radians(stilbene.dihedral(p))
    return np.array(
        [
            np.cos(phi),
            np.sin(phi),
            stilbene.pyramidalisation(p, stilbene.C1),
            stilbene.pyramidalisation(p, stilbene.C2),
            hydrogen_to_other_carbon(p, numbers),
            gap,
        ]
    )


def standardise(block: np.ndarray) -> np.ndarray:
    """Columns to zero mean and unit variance, then the block to unit total variance."""
    scale = block.std(axis=0)
    scale[scale == 0] = 1.0
    z = (block - block.mean(axis=0)) / scale
    return z / np.sqrt(block.shape[1])


def farthest_point_order(x: np.ndarray, first: int, n: int) -> list[int]:
    """Greedy farthest-point sampling: ``n`` row indices of ``x``, starting at ``first``."""
    order = [first]
    nearest = np.linalg.norm(x - x[first], axis=1)
    for _ in range(min(n, len(x)) - 1):
        k = int(np.argmax(nearest))
        order.append(k)
        nearest = np.minimum(nearest, np.linalg.norm(x - x[k], axis=1))
    return order


def interleave(fps: list[int], n_total: int, n: int, seed: int) -> list[int]:
    """Alternate farthest-point picks with uniform random picks of the rest, ``n`` in all."""
    chosen = set(fps)
    rest = [int(i) for i in np.random.default_rng(seed).permutation(n_total) if i not in chosen]
    order = [k for pair in zip(fps, rest, strict=False) for k in pair]
    return order[:n]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", type=Path, help="an R2 training YAML (its data and split)")
    parser.add_argument("output", type=Path)
    parser.add_argument("--n", type=int, default=800, help="structures to write")
    parser.add_argument(
        "--random-fraction", type=float, default=0.5,
        help="share of uniform random picks, alternated with the farthest-point ones",
    )  # fmt: skip
    parser.add_argument("--min-h-distance", type=float, default=1.55, help="Angstrom")
    parser.add_argument("--cis", type=Path, default=Path("data/stilbene/r2/cis-r2.xyz"))
    args = parser.parse_args(argv)

    config = TrainConfig.from_yaml(args.config)
    split_path = Path(config.output) / "split.json"
    split = json.loads(split_path.read_text())
    data = load_training_data(config.data, r_max=config.model.get("r_max", 5.0))
    row_of = {int(row): i for i, row in enumerate(data.ids)}  # split.json holds file rows
    member = {}
    for name in ("train", "validation", "test"):
        for row in split[name]:
            if int(row) in row_of:
                member[row_of[int(row)]] = name
    candidates, blocks_a, blocks_b = [], [], []
    for i in sorted(member):
        a, b = data.atom_offsets[i], data.atom_offsets[i + 1]
        p, numbers = data.positions[a:b], data.numbers[a:b]
        if len(p) != stilbene.N_ATOMS or not np.all(data.energy_mask[i]):
            continue
        cv = collective(p, numbers, float(data.energies[i, 1] - data.energies[i, 0]))
        if cv[4] < args.min_h_distance:
            continue
        candidates.append(i)
        blocks_a.append(inverse_distances(p))
        blocks_b.append(cv)
    x = np.hstack([standardise(np.array(blocks_a)), standardise(np.array(blocks_b))])
    cis = read(args.cis)
    cis_x = inverse_distances(cis.positions)
    first = int(np.argmin(np.linalg.norm(np.array(blocks_a) - cis_x, axis=1)))
    n_fps = args.n - int(round(args.random_fraction * args.n))
    order = farthest_point_order(x, first, n_fps)
    if args.random_fraction > 0:
        order = interleave(order, len(candidates), args.n, seed=0)

    frames = []
    for k in order:
        i = candidates[k]
        a, b = data.atom_offsets[i], data.atom_offsets[i + 1]
        cv = blocks_b[k]
        atoms = Atoms(numbers=data.numbers[a:b], positions=data.positions[a:b])
        atoms.info.update(
            r2_source=data.describe(i).replace(" ", ""),
            r2_split=member[i],
            dihedral=round(float(np.degrees(np.arctan2(cv[1], cv[0]))), 2),
            angle_sum_c1=round(float(cv[2]), 2),
            angle_sum_c2=round(float(cv[3]), 2),
            h_other_c=round(float(cv[4]), 3),
            r2_gap=round(float(cv[5]), 4),
        )
        frames.append(atoms)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    write(args.output, frames, format="extxyz")
    gaps = np.array([f.info["r2_gap"] for f in frames])
    splits = [f.info["r2_split"] for f in frames]
    print(
        f"{len(member)} structures in {split_path}'s splits, {len(candidates)} candidates "
        f"(hydrogen >= {args.min_h_distance} A); wrote {len(frames)} to {args.output}"
    )
    for n in (100, 200, 400, len(frames)):
        g = gaps[:n]
        print(
            f"first {n}: R2 gap < 0.5 eV {np.sum(g < 0.5)}, < 1 eV {np.sum(g < 1)}, median "
            f"{np.median(g):.2f} eV; R2 test split {splits[:n].count('test')}"
        )


if __name__ == "__main__":
    main()
