"""The masked multi-state loss.

``L = sum_s w_s [ w_E <((E_s - E_s^ref) / N)^2> + w_F <|F_s - F_s^ref|^2> ]``

where ``<.>`` averages over the labelled entries of state s only: structures whose energy of
state s is labelled, atoms of structures whose forces of state s are labelled. A state with no
labelled entry in the batch contributes nothing. Masked reference values (0, NaN or anything
else) never enter the value or the gradient.
"""

from __future__ import annotations

import torch

from fusionff.train.data import Labels


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-column mean of ``values`` (R, S) over the rows where ``mask`` (R, S) is True -> (S,).

    Columns without a True entry give 0.
    """
    mask = mask.to(values.dtype)
    return (values * mask).sum(dim=0) / mask.sum(dim=0).clamp(min=1.0)


def state_losses(
    energies: torch.Tensor, forces: torch.Tensor, labels: Labels
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-state mean squared errors: energy per atom (S,) eV^2 and forces (S,) (eV/Angstrom)^2.

    Args:
        energies: (B, S) eV predicted.
        forces: (n, S, 3) eV/Angstrom predicted.
        labels: the reference (see :class:`Labels`).
    """
    zero = torch.zeros((), dtype=energies.dtype, device=energies.device)
    e_ref = torch.where(labels.energy_mask, labels.energies, zero)
    e_err = torch.where(labels.energy_mask, (energies - e_ref) / labels.n_atoms[:, None], zero)
    f_mask = labels.force_mask[..., None]
    f_ref = torch.where(f_mask, labels.forces, zero)
    f_err = torch.where(f_mask, forces - f_ref, zero)
    return masked_mean(e_err**2, labels.energy_mask), masked_mean(
        (f_err**2).sum(dim=-1), labels.force_mask
    )


def multistate_loss(
    energies: torch.Tensor,
    forces: torch.Tensor,
    labels: Labels,
    energy_weight: float,
    force_weight: float,
    state_weights: torch.Tensor,
) -> torch.Tensor:
    """The scalar loss of the module docstring; ``state_weights`` (S,)."""
    e_mse, f_mse = state_losses(energies, forces, labels)
    return (state_weights * (energy_weight * e_mse + force_weight * f_mse)).sum()
