"""What a training run shows people: epoch records and progress lines, the history as JSON
lines, metrics as JSON, and the learning curve."""

from __future__ import annotations

import json
import os
from typing import Any

from fusionff.atomic_files import write_atomically


def write_history(history: list[dict[str, Any]], path: str | os.PathLike) -> None:
    """Write the epoch records, one JSON object per line (replacing the file)."""
    text = "".join(json.dumps(record) + "\n" for record in history)
    write_atomically(path, lambda tmp: tmp.write_text(text))


def write_json(value: Any, path: str | os.PathLike) -> None:
    """Write ``value`` as indented JSON (replacing the file atomically)."""
    text = json.dumps(value, indent=1) + "\n"
    write_atomically(path, lambda tmp: tmp.write_text(text))


def append_history(record: dict[str, Any], path: str | os.PathLike) -> None:
    """Append one epoch record to the JSON-lines history."""
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")


def stage_changes_text(changes: dict[str, list[Any]], quote: bool = True, sep: str = ", ") -> str:
    """A new stage's changed settings ``{key: [before, after]}`` as one line, ``sep`` between
    them: ``key before -> after`` (``repr`` of the values with ``quote``), the data list as the
    number of files and those added (+) and removed (-); "" without changes."""
    parts = []
    for key, (before, after) in changes.items():
        if key == "data":
            before, after = before or [], after or []
            files = [f"+{f}" for f in after if f not in before]
            files += [f"-{f}" for f in before if f not in after]
            parts.append(f"data {len(before)} -> {len(after)} files ({' '.join(files)})")
        elif quote:
            parts.append(f"{key} {before!r} -> {after!r}")
        else:
            parts.append(f"{key} {before} -> {after}")
    return sep.join(parts)


def epoch_record(
    epoch: int, train_loss: float, val_loss: float, lr: float, seconds: float, metrics: dict
) -> dict[str, Any]:
    """One epoch of the history: losses, lr, seconds, per-state validation MAEs (meV) and,
    where the metrics have couplings, the phase-free coupling MAE per pair (1/Angstrom)."""
    record = {
        "epoch": epoch,
        "train_loss": train_loss,
        "val_loss": val_loss,
        "lr": lr,
        "time_s": seconds,
        "val_energy_mae": [m["energy_mae"] for m in metrics["states"]],
        "val_force_mae": [m["force_mae"] for m in metrics["states"]],
        "val_gap_mae": [g["mae"] for g in metrics["gaps"]],
    }
    if "couplings" in metrics:
        record["val_nac_mae"] = [c["mae"] for c in metrics["couplings"]]
    return record


def progress_line(record: dict[str, Any], max_epochs: int, improved: bool) -> str:
    """The line printed after each epoch (``*`` marks a new lowest validation loss)."""
    f = lambda v: "-" if v is None else f"{v:.1f}"  # noqa: E731
    states = " | ".join(
        f"S{s} E {f(e)} F {f(fo)}"
        for s, (e, fo) in enumerate(
            zip(record["val_energy_mae"], record["val_force_mae"], strict=True)
        )
    )
    nacs = ""
    if "val_nac_mae" in record:
        g = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
        nacs = f" | d {' '.join(g(v) for v in record['val_nac_mae'])} (1/A)"
    return (
        f"epoch {record['epoch']:>4}/{max_epochs}  loss {record['train_loss']:.3e}  "
        f"val {record['val_loss']:.3e}{'*' if improved else ' '}  lr {record['lr']:.1e}  "
        f"val MAE {states} (meV, meV/A){nacs}  {record['time_s']:.1f} s"
    )


def plot_learning_curve(history: list[dict[str, Any]], path: str | os.PathLike) -> None:
    """PNG with the train/validation loss and the per-state validation MAEs against the epoch;
    dashed lines mark where a new training stage began.

    Uses matplotlib's object API with the Agg canvas (no display, no global pyplot state).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 3.4), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 3)
    epochs = [r["epoch"] for r in history]
    axes[0].plot(epochs, [r["train_loss"] for r in history], label="train")
    axes[0].plot(epochs, [r["val_loss"] for r in history], label="validation")
    axes[0].set_ylabel("loss")
    panels = (
        (axes[1], "val_energy_mae", "validation energy MAE (meV)"),
        (axes[2], "val_force_mae", "validation force MAE (meV/Å)"),
    )
    for ax, key, label in panels:
        n_states = len(history[0][key]) if history else 0
        for s in range(n_states):
            values = [r[key][s] for r in history]
            if any(v is not None for v in values):
                ax.plot(epochs, [float("nan") if v is None else v for v in values], label=f"S{s}")
        ax.set_ylabel(label)
    starts = [
        (r["epoch"], r["stage"])
        for prev, r in zip(history[:-1], history[1:], strict=True)
        if r.get("stage", 1) != prev.get("stage", 1)
    ]
    for ax in axes:
        for epoch, stage in starts:  # a new training stage (fusionff train --new-stage)
            ax.axvline(epoch - 0.5, color="0.6", linestyle="--", linewidth=0.8)
            ax.annotate(
                f"stage {stage}",
                (epoch - 0.5, 1.0),
                xycoords=("data", "axes fraction"),
                ha="left",
                va="top",
                fontsize=7,
                color="0.4",
            )
    for ax in axes:
        ax.set_xlabel("epoch")
        if ax.has_data():
            ax.set_yscale("log")
            ax.legend()
    fig.savefig(path, dpi=100)
