"""Learned couplings against the diabatic head's, with and without the coupling loss, on R2.

Trains four small models on the same data and split (SA-CASSCF stilbene labels with couplings,
``data/stilbene/stilbene-r2.h5`` or a copy): the adiabatic head with learned couplings
(``model.couplings: true``) and the diabatic head, each with ``loss.nacs`` = 0 and > 0, for the
same number of epochs, and reports on the test split the phase-free coupling MAE (1/Angstrom;
``ref_mae`` is the MAE of predicting zero), energy, force and gap MAEs, and the wall time.
With ``loss.nacs = 0`` the adiabatic head's coupling readout is never trained (the baseline of
an untrained readout); the diabatic head's couplings come from its eigenvectors either way.

It also measures how much of the reference couplings any equivariant readout can represent
(``symmetry``): stilbene's two halves (atoms a and a + 13 mod 26 in these files) are swapped by
a C2 rotation g at symmetric geometries, where a readout that is rotation-equivariant and
permutation-invariant gives d_{pi(a)} = g d_a, while S0/S1 (A/B) couplings have
d_{pi(a)} = -g d_a. Per structure: the RMSD of the best O(3) map onto the swapped structure,
the share of |d|^2 in the representable (symmetric) part, and on the test split the MAE of
predicting that part (the best an equivariant readout can do at exactly symmetric geometries).

    python benchmarks/couplings_r2.py DATA.h5 [--epochs 20] [--w-nacs 100] [--channels 16]
        [--out benchmarks/results/couplings_r2_cpu.json] [--work /tmp/couplings_r2]

Use one thread on a shared CPU (``OMP_NUM_THREADS=1``; the script sets torch's threads to 1).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from fusionff.train.config import TrainConfig
from fusionff.train.data import file_sha256
from fusionff.train.trainer import Trainer


def variant_config(args, name: str, head: str, w_nacs: float) -> TrainConfig:
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
        model["couplings"] = True
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


def symmetry_analysis(data_path: Path, test_rows: list[int]) -> dict:
    """The representable share of the couplings (module docstring); ``test_rows``: the test
    split's rows of the file (``split.json``)."""
    import numpy as np

    from fusionff.train.data import load_training_data
    from fusionff.train.metrics import coupling_metrics

    data = load_training_data([data_path], 4.5)
    rows = np.flatnonzero(data.nac_mask)
    rmsd, share, dets, sym_pred = [], [], [], {}
    for i in rows:
        atoms = slice(data.atom_offsets[i], data.atom_offsets[i + 1])
        x, z, d = data.positions[atoms], data.numbers[atoms], data.nacs[atoms, 0, 1]
        perm = (np.arange(len(z)) + len(z) // 2) % len(z)
        if len(z) % 2 or not np.array_equal(z[perm], z):
            raise ValueError(f"{data.describe(i)}: atoms are not in two matching halves")
        x = x - x.mean(0)
        u, _, vt = np.linalg.svd(x[perm].T @ x)
        g = u @ vt  # x[perm] ~ x @ g.T
        rmsd.append(float(np.sqrt(((x[perm] - x @ g.T) ** 2).sum(1).mean())))
        dets.append(float(np.linalg.det(g)))
        sym = 0.5 * (d + d[perm] @ g)  # the part with d_pi(a) = g d_a
        share.append(float((sym**2).sum() / (d**2).sum()))
        sym_pred[int(i)] = sym
    rmsd, share = np.array(rmsd), np.array(share)
    near = rmsd < 0.2
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--w-nacs", type=float, default=100.0)
    parser.add_argument("--channels", type=int, default=16)
    parser.add_argument("--only", default=None, help="comma-separated variant names")
    default_out = Path("benchmarks/results/couplings_r2_cpu.json")
    parser.add_argument("--out", type=Path, default=default_out)
    parser.add_argument("--work", default="/tmp/couplings_r2")
    parser.add_argument("--symmetry", action="store_true", help="only (re)do the symmetry part")
    args = parser.parse_args()
    torch.set_num_threads(1)
    variants = [
        ("adiabatic_couplings_w0", "adiabatic", 0.0),
        ("adiabatic_couplings_w", "adiabatic", args.w_nacs),
        ("diabatic_w0", "diabatic", 0.0),
        ("diabatic_w", "diabatic", args.w_nacs),
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
            "channels": args.channels,
        }
    )
    runs = results.setdefault("runs", {})
    for name, head, w in variants:
        config = variant_config(args, name, head, w)
        start = time.perf_counter()
        trainer = Trainer(config, restart=True)
        result = trainer.fit()
        runs[name] = {
            "head": head,
            "learned_couplings": head == "adiabatic",
            "w_nacs": w,
            "n_parameters": trainer.model.num_parameters(),
            "split": {k: len(v) for k, v in trainer.split.items()},
            "epochs": result.epochs,
            "wall_s": time.perf_counter() - start,
            "test": summary(result.test_metrics),
            "validation": summary(result.validation_metrics),
        }
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


if __name__ == "__main__":
    main()
