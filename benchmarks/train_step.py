"""Time of one training step (energies, forces by autograd, loss, backward) on stilbene, with
the fusion vertices' channel-wise couplings as matrix products (fusionff.nn.channelwise, what
the models use) against the same model with e3nn's TensorProduct doing those couplings (the
baseline), in the same process. The plain model has no fusion vertices (ratio 1 up to
noise). Also checks that both give the same loss. Writes
benchmarks/results/train_step_<device>.json.

    python benchmarks/train_step.py [--model potentials/stilbene-r1.fff] [--batch 8] [--device cuda]
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
from pathlib import Path

import numpy as np
import torch
from model_eval import best_time  # benchmarks/ is on sys.path when this script runs
from torch import nn

from fusionff.models.io import load_model
from fusionff.nn.fusion import FusionBlock
from fusionff.train.data import load_training_data


class _E3nnCall(nn.Module):
    """Calls the e3nn module with ChannelwiseCG's signature (the baseline)."""

    def __init__(self, tp):
        super().__init__()
        self.tp = tp

    def forward(self, x1, x2, weight):
        return self.tp(x1, x2) if self.tp.internal_weights else self.tp(x1, x2, weight)


def with_e3nn_couplings(model):
    """A copy of ``model`` whose channel-wise couplings run through e3nn."""
    model = copy.deepcopy(model)
    for module in model.modules():
        if isinstance(module, FusionBlock):
            for k, tp in enumerate(module.couplings):
                module.vertex_products[k] = _E3nnCall(tp)
    return model


def step_fn(model, graph):
    params = [p for p in model.parameters()]

    def step():
        out = model(graph, compute_forces=True, training=True)
        loss = out["energies"].pow(2).mean() + out["forces"].pow(2).mean()
        for p in params:
            p.grad = None
        loss.backward()
        return float(loss.detach())

    return step


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="potentials/stilbene-r1.fff")
    ap.add_argument("--data", default="data/stilbene/stilbene-r1.h5")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    machine = platform.processor() or platform.machine()
    if device.type == "cuda":
        machine = torch.cuda.get_device_name()
    results = {"machine": machine, "device": args.device, "threads": args.threads}
    results |= {"dtype": args.dtype, "batch": args.batch, "models": {}}
    for path in (args.model, args.model.replace(".fff", "-plain.fff")):
        if not Path(path).exists():
            continue
        model = load_model(path).to(device=device, dtype=dtype).train()
        for p in model.parameters():
            p.requires_grad_(True)
        data = load_training_data([args.data], model.config.r_max)
        graph = data.graph(np.arange(args.batch), dtype, device)
        base = with_e3nn_couplings(model)
        fast_step, base_step = step_fn(model, graph), step_fn(base, graph)
        loss_fast, loss_base = fast_step(), base_step()
        t_base = best_time(base_step, args.repeat, sync)
        t_fast = best_time(fast_step, args.repeat, sync)
        row = {
            "e3nn_ms": 1e3 * t_base,
            "matmul_ms": 1e3 * t_fast,
            "speedup": t_base / t_fast,
            "loss_rel_diff": abs(loss_fast - loss_base) / abs(loss_base),
        }
        results["models"][path] = row
        print(
            f"{path}: training step on {args.device}, batch {args.batch}, {args.dtype}: "
            f"e3nn couplings {row['e3nn_ms']:.0f} ms, matrix products {row['matmul_ms']:.0f} ms, "
            f"speed-up {row['speedup']:.2f}x (loss rel. diff {row['loss_rel_diff']:.1e})"
        )
    out = Path(__file__).parent / "results" / f"train_step_{args.device}.json"
    out.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
