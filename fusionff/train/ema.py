"""Exponential moving average of a model's weights (the weights validated and kept)."""

from __future__ import annotations

from typing import Any

import torch

from fusionff.models.multistate_mace import MultiStateMACE


class ExponentialMovingAverage:
    """A copy of ``model`` whose parameters follow ``p_ema <- d p_ema + (1 - d) p``.

    The decay ``d = min(decay, (1 + k) / (10 + k))`` after k updates ramps up from 0.1 so that
    the average forgets the random initial weights quickly. ``decay = 0`` makes the copy equal
    to the model after every update (no averaging).
    """

    def __init__(self, model: MultiStateMACE, decay: float):
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        self.decay = decay
        self.n_updates = 0
        self.model = MultiStateMACE(config=model.config).to(model.device)
        self.model.load_state_dict(model.state_dict())
        self.model.eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: MultiStateMACE) -> None:
        """Move the average towards ``model``'s current parameters."""
        d = min(self.decay, (1 + self.n_updates) / (10 + self.n_updates))
        for p_ema, p in zip(self.model.parameters(), model.parameters(), strict=True):
            p_ema.mul_(d).add_(p.detach(), alpha=1.0 - d)
        self.n_updates += 1

    def state_dict(self) -> dict[str, Any]:
        return {"weights": self.model.state_dict(), "n_updates": self.n_updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["weights"])
        self.n_updates = int(state["n_updates"])
