"""The masked multi-state loss.

``L = sum_s w_s [ w_E <rho_E((E_s - E_s^ref) / N)> + w_F <sum_xyz rho_F(F_s - F_s^ref)> ]``

where ``<.>`` averages over the labelled entries of state s only: structures whose energy of
state s is labelled, atoms of structures whose forces of state s are labelled. A state with no
labelled entry in the batch contributes nothing. Masked reference values (0, NaN or anything
else) never enter the value or the gradient.

``rho`` is the square (``kind="mse"``) or a Huber function scaled to agree with the square
below its threshold ``delta`` and to grow linearly above it (``kind="huber"``)::

    rho(x) = x^2                    |x| <= delta
           = delta (2 |x| - delta)  |x| >  delta

so that a few structures with errors far above the rest (strained geometries, an unreliable
reference gradient) pull on the weights like large errors, not like squared ones. ``delta``
is in eV per atom for energies and eV/Angstrom per force component.
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


def robust_square(x: torch.Tensor, delta: float | None) -> torch.Tensor:
    """``x^2`` where ``|x| <= delta``, ``delta (2|x| - delta)`` beyond (``delta=None``: ``x^2``).

    Twice the Huber function: equal to the square below ``delta``, linear above, with a
    continuous first derivative.
    """
    if delta is None:
        return x**2
    return 2.0 * torch.nn.functional.huber_loss(
        x, torch.zeros_like(x), reduction="none", delta=delta
    )


def state_losses(
    energies: torch.Tensor,
    forces: torch.Tensor,
    labels: Labels,
    delta_energy: float | None = None,
    delta_forces: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-state mean errors: energy per atom (S,) eV^2 and forces (S,) (eV/Angstrom)^2.

    Squared errors by default (mean squared errors); with ``delta_energy`` (eV per atom) or
    ``delta_forces`` (eV/Angstrom per component), :func:`robust_square` of the errors.

    Args:
        energies: (B, S) eV predicted.
        forces: (n, S, 3) eV/Angstrom predicted.
        labels: the reference (see :class:`Labels`).
        delta_energy, delta_forces: Huber thresholds, or None for squares.
    """
    zero = torch.zeros((), dtype=energies.dtype, device=energies.device)
    e_ref = torch.where(labels.energy_mask, labels.energies, zero)
    e_err = torch.where(labels.energy_mask, (energies - e_ref) / labels.n_atoms[:, None], zero)
    f_mask = labels.force_mask[..., None]
    f_ref = torch.where(f_mask, labels.forces, zero)
    f_err = torch.where(f_mask, forces - f_ref, zero)
    return masked_mean(robust_square(e_err, delta_energy), labels.energy_mask), masked_mean(
        robust_square(f_err, delta_forces).sum(dim=-1), labels.force_mask
    )


def multistate_loss(
    energies: torch.Tensor,
    forces: torch.Tensor,
    labels: Labels,
    energy_weight: float,
    force_weight: float,
    state_weights: torch.Tensor,
    delta_energy: float | None = None,
    delta_forces: float | None = None,
) -> torch.Tensor:
    """The scalar loss of the module docstring; ``state_weights`` (S,); Huber thresholds
    ``delta_energy`` (eV per atom) and ``delta_forces`` (eV/Angstrom), None for squares."""
    e_mse, f_mse = state_losses(energies, forces, labels, delta_energy, delta_forces)
    return (state_weights * (energy_weight * e_mse + force_weight * f_mse)).sum()
