"""Learned couplings against the diabatic head's, with and without the coupling loss, on R2.

Trains small models on the same data and split (SA-CASSCF stilbene labels with couplings,
``data/stilbene/stilbene-r2.h5`` or a copy): the adiabatic head with learned couplings
(``model.couplings: vector``) and the diabatic head, each with ``loss.nacs`` = 0 and > 0, and
the adiabatic head with sign-free learned couplings (``model.couplings: outer``, D = d d^T,
:mod:`fusionff.nn.outer_couplings`) with ``loss.nacs`` = ``--w-outer``, for the same number of
epochs, and reports on the test split the phase-free coupling MAE (1/Angstrom; ``ref_mae`` is
the MAE of predicting zero), energy, force and gap MAEs, and the wall time. With ``loss.nacs =
0`` the adiabatic head's coupling readout is never trained (the baseline of an untrained
readout); the diabatic head's couplings come from its eigenvectors either way. The outer
mode's loss on D is about 18 rms(d)^2 times the vector mode's for the same coupling error
(:func:`fusionff.train.loss.outer_coupling_loss`), so ``--w-outer`` defaults to 450, about
``--w-nacs`` 100 / (18 x 0.11^2) for R2's rms(d) = 0.11 1/Angstrom.

It also measures how much of the reference couplings any equivariant readout can represent
(``symmetry``): stilbene's two halves (atoms a and a + 13 mod 26 in these files) are swapped by
a C2 rotation g at symmetric geometries, where a readout that is rotation-equivariant and
permutation-invariant gives d_{pi(a)} = g d_a, while S0/S1 (A/B) couplings have
d_{pi(a)} = -g d_a. Per structure: the RMSD of the best O(3) map onto the swapped structure,
the share of |d|^2 in the representable (symmetric) part, and on the test split the MAE of
predicting that part (the best an equivariant readout can do at exactly symmetric geometries).
Each trained model's test coupling MAE is also split into the structures within 0.2 Angstrom
RMSD of that symmetry and the others, and for the outer mode the cost of the eigen step that
takes the couplings out of D is timed against the whole evaluation.

    python benchmarks/couplings_r2.py DATA.h5 [--epochs 20] [--w-nacs 100] [--w-outer 450]
        [--channels 16] [--only NAME,NAME] [--time-limit MINUTES]
        [--out benchmarks/results/couplings_r2_cpu.json] [--work /tmp/couplings_r2]

Use one thread on a shared CPU (``OMP_NUM_THREADS=1``; the script sets torch's threads to 1).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from fusionff.models.io import load_model
from fusionff.nn.outer_couplings import couplings_from_outer
from fusionff.train.config import TrainConfig
from fusionff.train.data import file_sha256, load_training_data
from fusionff.train.evaluate import predict
from fusionff.train.loss import outer_coupling_loss
from fusionff.train.metrics import coupling_metrics
from fusionff.train.trainer import Trainer

NEAR_SYMMETRIC = 0.2  # Angstrom RMSD of the half swap


def variant_config(args, name: str, head: str, w_nacs: float, couplings: str) -> TrainConfig:
    model = {
        "channels": args.channels,
        "num_layers": 2,
        "r_max": 4.5,
        "l_max": 1,
        "hidden_l_max": 1,
        "correlation": 2,
        "radial_mlp": [16, 16],
        "readout_hidden": 16,
        "head": head,
    }
    if head == "adiabatic":
        model["couplings"] = couplings
    return TrainConfig.from_dict(
        {
            "data": str(args.data),
            "output": str(Path(args.work) / name),
            "model": model,
            "split": {"train": 0.8, "validation": 0.1, "test": 0.1, "seed": 0},
            "loss": {"energy": 10.0, "forces": 1.0, "nacs": w_nacs},
            "optimizer": {"lr": 0.01},
            "schedule": {"name": "cosine", "min_lr": 0.001},
            "batch_size": 8,
            "max_epochs": args.epochs,
            "ema_decay": 0.9,
            "early_stopping_patience": None,
            "time_limit_minutes": args.time_limit,
            "device": "cpu",
            "dtype": "float64",
            "seed": 0,
        }
    )


def summary(metrics: dict) -> dict:
    """The numbers of one test split: meV, meV/Angstrom, 1/Angstrom."""
    out = {
        "n_structures": metrics["n_structures"],
        "energy_mae_meV": [s["energy_mae"] for s in metrics["states"]],
        "force_mae_meV_per_A": [s["force_mae"] for s in metrics["states"]],
        "gap_mae_meV": [g["mae"] for g in metrics["gaps"]],
    }
    if "couplings" in metrics:
        (c,) = metrics["couplings"]
        out["coupling_mae_per_A"] = c["mae"]
        out["coupling_rmse_per_A"] = c["rmse"]
        out["coupling_ref_mean_abs_per_A"] = c["ref_mae"]
    return out


def swap_symmetry(x: np.ndarray, z: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """The map of a structure onto its copy with the halves swapped (atom a -> a + N/2 mod N):
    RMSD (Angstrom) of the best O(3) map g, g (3, 3) and the permutation (N,)."""
    perm = (np.arange(len(z)) + len(z) // 2) % len(z)
    if len(z) % 2 or not np.array_equal(z[perm], z):
        raise ValueError("atoms are not in two matching halves")
    x = x - x.mean(0)
    u, _, vt = np.linalg.svd(x[perm].T @ x)
    g = u @ vt  # x[perm] ~ x @ g.T
    return float(np.sqrt(((x[perm] - x @ g.T) ** 2).sum(1).mean())), g, perm


def symmetry_analysis(data_path: Path, test_rows: list[int]) -> dict:
    """The representable share of the couplings (module docstring); ``test_rows``: the test
    split's rows of the file (``split.json``)."""
    data = load_training_data([data_path], 4.5)
    rows = np.flatnonzero(data.nac_mask)
    rmsd, share, dets, sym_pred = [], [], [], {}
    for i in rows:
        atoms = slice(data.atom_offsets[i], data.atom_offsets[i + 1])
        x, z, d = data.positions[atoms], data.numbers[atoms], data.nacs[atoms, 0, 1]
        distance, g, perm = swap_symmetry(x, z)
        rmsd.append(distance)
        dets.append(float(np.linalg.det(g)))
        sym = 0.5 * (d + d[perm] @ g)  # the part with d_pi(a) = g d_a
        share.append(float((sym**2).sum() / (d**2).sum()))
        sym_pred[int(i)] = sym
    rmsd, share = np.array(rmsd), np.array(share)
    near = rmsd < NEAR_SYMMETRIC
    index = {int(row): k for k, row in enumerate(data.ids)}
    test = [index[r] for r in test_rows if data.nac_mask[index[r]]]
    atoms = data.atom_indices(np.array(test))
    pred = np.zeros_like(data.nacs[atoms])
    pred[:, 0, 1] = np.concatenate([sym_pred[i] for i in test])
    pred[:, 1, 0] = -pred[:, 0, 1]
    (oracle,) = coupling_metrics(
        pred, data.nacs[atoms], np.ones(len(test), bool), data.n_atoms[np.array(test)]
    )
    return {
        "n_structures": int(rows.size),
        "symmetry_operation_proper": bool(np.all(np.array(dets) > 0)),
        "symmetry_rmsd_A_percentiles_5_50_95": np.percentile(rmsd, [5, 50, 95]).tolist(),
        "n_within_0.2A_of_symmetric": int(near.sum()),
        "n_exactly_symmetric_rmsd_below_1e-6A": int((rmsd < 1e-6).sum()),
        "representable_share_of_d2_mean": float(share.mean()),
        "representable_share_of_d2_mean_within_0.2A": float(share[near].mean()),
        "representable_share_of_d2_mean_beyond_0.2A": float(share[~near].mean()),
        "test_mae_of_symmetric_part_per_A": oracle["mae"],
        "test_ref_mean_abs_per_A": oracle["ref_mae"],
    }


def coupling_mae_by_symmetry(model, data, indices: np.ndarray) -> dict:
    """Test coupling MAE and ref_mae (1/Angstrom) of the structures ``indices`` (with labelled
    couplings) within ``NEAR_SYMMETRIC`` Angstrom RMSD of the half swap and beyond."""
    indices = indices[data.nac_mask[indices]]
    nacs = predict(model, data, indices, 8, couplings=True).nacs.numpy()
    owner = np.repeat(np.arange(len(indices)), data.n_atoms[indices])
    rmsd = []
    for i in indices:
        atoms = data.atom_indices(np.array([i]))
        rmsd.append(swap_symmetry(data.positions[atoms], data.numbers[atoms])[0])
    rmsd = np.array(rmsd)
    out = {}
    for key, part in (
        ("near_symmetric", rmsd < NEAR_SYMMETRIC),
        ("beyond", rmsd >= NEAR_SYMMETRIC),
    ):
        atoms = np.isin(owner, np.flatnonzero(part))
        entry = {"n": int(part.sum()), "coupling_mae_per_A": None, "ref_mean_abs_per_A": None}
        if part.any():
            (c,) = coupling_metrics(
                nacs[atoms],
                data.nacs[data.atom_indices(indices)][atoms],
                np.ones(int(part.sum()), bool),
                data.n_atoms[indices[part]],
            )
            entry["coupling_mae_per_A"], entry["ref_mean_abs_per_A"] = c["mae"], c["ref_mae"]
        out[key] = entry
    return out


def eigen_step_cost(model, data, indices: np.ndarray, repeats: int = 3) -> dict:
    """Seconds per structure of the eigen step (couplings out of D) and of the whole evaluation
    (energies, forces, D and couplings) in batches of 8, the best of ``repeats``."""
    counts_all = data.n_atoms[indices]
    eigen, whole = [], []
    for _ in range(repeats):
        t_eigen = t_whole = 0.0
        for start in range(0, len(indices), 8):
            chunk = indices[start : start + 8]
            graph = data.graph(chunk, model.dtype, model.device)
            t0 = time.perf_counter()
            out = model(graph, compute_forces=True, compute_couplings=True)
            t_whole += time.perf_counter() - t0
            counts = torch.as_tensor(data.n_atoms[chunk])
            t0 = time.perf_counter()
            couplings_from_outer(out["nac_outer"], counts, model.n_states)
            t_eigen += time.perf_counter() - t0
        eigen.append(t_eigen / len(indices))
        whole.append(t_whole / len(indices))
    return {
        "n_structures": int(len(indices)),
        "atoms_per_structure": sorted(set(counts_all.tolist())),
        "eigen_step_s_per_structure": min(eigen),
        "whole_evaluation_s_per_structure": min(whole),
        "eigen_share_of_evaluation": min(eigen) / min(whole),
    }


def outer_loss_diagnosis(work: Path, data_path: Path) -> dict:
    """Per trained outer-mode model in ``work``, on its training and test splits: the loss on D
    (squares, :func:`outer_coupling_loss`) of its predictions and of D = 0, and the share of
    the D = 0 loss carried by the 1 and the 5 structures with the largest couplings, beside the
    same shares of the phase-free vector loss (the loss on D weighs each structure by its
    squared coupling)."""
    data = load_training_data([data_path], 4.5)
    index = {int(row): k for k, row in enumerate(data.ids)}
    out = {}
    for model_path in sorted(work.glob("*/model.fff")):
        model = load_model(model_path)
        if model.config.couplings != "outer":
            continue
        split = json.loads((model_path.parent / "split.json").read_text())
        entry = {}
        for part in ("train", "test"):
            indices = np.array([index[r] for r in split[part]])
            indices = indices[data.nac_mask[indices]]
            labels = data.labels(indices, model.dtype, model.device)
            outer = predict(model, data, indices, 8, couplings=True).nac_outer
            d = [data.nacs[data.atom_indices(np.array([i]))][:, 0, 1] for i in indices]
            on_d = np.sort([(x**2).sum() ** 2 / len(x) ** 2 for x in d])[::-1]
            on_vector = np.sort([(x**2).mean() for x in d])[::-1]
            entry[part] = {
                "n": int(len(indices)),
                "loss_on_D_of_zero": float(outer_coupling_loss(torch.zeros_like(outer), labels)),
                "loss_on_D_of_model": float(outer_coupling_loss(outer, labels)),
                "share_of_zero_loss_on_D_top_1_5": [
                    float(on_d[:k].sum() / on_d.sum()) for k in (1, 5)
                ],
                "share_of_zero_vector_loss_top_1_5": [
                    float(on_vector[:k].sum() / on_vector.sum()) for k in (1, 5)
                ],
                "max_abs_coupling_component_per_A": float(max(np.abs(x).max() for x in d)),
            }
        out[model_path.parent.name] = entry
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--w-nacs", type=float, default=100.0)
    parser.add_argument("--w-outer", type=float, default=450.0, help="loss.nacs of the outer mode")
    parser.add_argument("--time-limit", type=float, default=None, help="minutes per model")
    parser.add_argument("--channels", type=int, default=16)
    parser.add_argument("--only", default=None, help="comma-separated variant names")
    default_out = Path("benchmarks/results/couplings_r2_cpu.json")
    parser.add_argument("--out", type=Path, default=default_out)
    parser.add_argument("--work", default="/tmp/couplings_r2")
    parser.add_argument(
        "--symmetry",
        action="store_true",
        help="only (re)do the symmetry part and the outer-loss diagnosis of trained models",
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    variants = [
        ("adiabatic_couplings_w0", "adiabatic", 0.0, "vector"),
        ("adiabatic_couplings_w", "adiabatic", args.w_nacs, "vector"),
        ("diabatic_w0", "diabatic", 0.0, None),
        ("diabatic_w", "diabatic", args.w_nacs, None),
        ("adiabatic_outer_w", "adiabatic", args.w_outer, "outer"),
    ]
    if args.only or args.symmetry:
        keep = args.only.split(",") if args.only else []
        variants = [v for v in variants if v[0] in keep]
    results = json.loads(args.out.read_text()) if args.out.exists() else {}
    results.update(
        {
            "data": str(args.data),
            "data_sha256": file_sha256(args.data),
            "host": platform.node(),
            "threads": torch.get_num_threads(),
            "epochs": args.epochs,
            "w_nacs": args.w_nacs,
            "w_outer": args.w_outer,
            "time_limit_minutes_per_model": args.time_limit,
            "channels": args.channels,
        }
    )
    runs = results.setdefault("runs", {})
    for name, head, w, couplings in variants:
        config = variant_config(args, name, head, w, couplings)
        start = time.perf_counter()
        trainer = Trainer(config, restart=True)
        result = trainer.fit()
        wall = time.perf_counter() - start
        model = load_model(result.model_path)
        runs[name] = {
            "head": head,
            "learned_couplings": couplings,
            "w_nacs": w,
            "n_parameters": trainer.model.num_parameters(),
            "split": {k: len(v) for k, v in trainer.split.items()},
            "epochs": result.epochs,
            "wall_s": wall,
            "test": summary(result.test_metrics),
            "test_couplings_by_symmetry": coupling_mae_by_symmetry(
                model, trainer.data, trainer.split["test"]
            ),
            "validation": summary(result.validation_metrics),
        }
        if couplings == "outer":
            runs[name]["eigen_step"] = eigen_step_cost(model, trainer.data, trainer.split["test"])
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=1) + "\n")
        t = runs[name]["test"]
        print(
            f"{name:<24} d MAE {t.get('coupling_mae_per_A', float('nan')):.4f} 1/A "
            f"(|d_ref| {t.get('coupling_ref_mean_abs_per_A', float('nan')):.4f})  "
            f"E MAE {t['energy_mae_meV']}  F MAE {t['force_mae_meV_per_A']}  "
            f"gap MAE {t['gap_mae_meV']}  {runs[name]['wall_s']:.0f} s",
            flush=True,
        )

    split = json.loads(next(Path(args.work).glob("*/split.json")).read_text())
    results["symmetry"] = symmetry_analysis(args.data, split["test"])
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    print(json.dumps(results["symmetry"], indent=1))
    results["outer_loss_diagnosis"] = outer_loss_diagnosis(Path(args.work), args.data)
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    print(json.dumps(results["outer_loss_diagnosis"], indent=1))
    print_coupling_table(runs)


def print_coupling_table(runs: dict) -> None:
    """Test phase-free coupling MAE of each run (1/Angstrom), all and near/beyond the
    symmetric geometries, with its ratio to predicting zero."""
    print(
        f"{'run':<24}{'d MAE':>9}{'/zero':>7}{'near sym':>10}{'/zero':>7}{'beyond':>9}{'/zero':>7}"
    )
    for name, run in runs.items():
        t, parts = run["test"], run.get("test_couplings_by_symmetry")
        if t.get("coupling_mae_per_A") is None or parts is None:
            continue
        row = f"{name:<24}{t['coupling_mae_per_A']:>9.4f}"
        row += f"{t['coupling_mae_per_A'] / t['coupling_ref_mean_abs_per_A']:>7.2f}"
        for key, width in (("near_symmetric", 10), ("beyond", 9)):
            p = parts[key]
            if p["coupling_mae_per_A"] is None:
                row += f"{'-':>{width}}{'-':>7}"
            else:
                row += f"{p['coupling_mae_per_A']:>{width}.4f}"
                row += f"{p['coupling_mae_per_A'] / p['ref_mean_abs_per_A']:>7.2f}"
        print(row)


if __name__ == "__main__":
    main()
