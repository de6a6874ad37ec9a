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

Gaps (``loss.gap > 0``) add ``w_gap * L_gap``, :func:`gap_loss`: summed over states s >= 1,
the mean of ``rho((E_s - E_0) - (E_s^ref - E_0^ref))`` in eV (not per atom) over the
structures where both energies are labelled. Surface hopping turns on the gap, and a loss on
per-state energies spends most of its pull on the part the states share. With
``loss.gap_seam_weight`` = a > 0 each structure's gap error is weighted by
``1 + a exp(-|E_s^ref - E_0^ref| / loss.gap_seam_scale)``: hops happen where the gap is small,
and a few per cent of the structures lie there.

Couplings (``loss.nacs > 0``, data with couplings, a model that gives them) add
``w_nacs * L_nacs``, :func:`coupling_loss`: a reference coupling d_ij is defined up to its sign
(the phase of each state is arbitrary), so each structure and pair i < j counts the error
against the nearer of +d_ij and -d_ij. Models with ``couplings: outer`` predict the sign-free
D = d d^T instead, and their loss is :func:`outer_coupling_loss`, the error of D against
d_ref d_ref^T.
"""

from __future__ import annotations

import torch

from fusionff.models.multistate_mace import MultiStateMACE
from fusionff.nn.outer_couplings import structure_pairs
from fusionff.train.data import Labels, TrainingData


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


def gap_loss(
    energies: torch.Tensor,
    labels: Labels,
    delta: float | None = None,
    seam_weight: float = 0.0,
    seam_scale: float = 0.5,
) -> torch.Tensor:
    """Error of the gaps E_s - E_0, eV^2: per state s >= 1 the mean over the structures where
    E_0 and E_s are labelled, summed over s; 0 for one state or where no pair is labelled.

    Args:
        energies: (B, S) eV predicted.
        labels: the reference; a gap counts where the energies of states 0 and s are labelled.
        delta: Huber threshold (eV), or None for squares.
        seam_weight: a >= 0; each error is weighted by ``1 + a exp(-|g_ref| / seam_scale)``
            with g_ref the reference gap (0: the plain mean). The mean still divides by the
            number of structures, so a = 0 and structures far from the seam are unchanged.
        seam_scale: eV, the reference gap over which that extra weight decays.
    """
    if energies.shape[1] < 2:
        return energies.new_zeros(())
    mask = labels.energy_mask[:, 1:] & labels.energy_mask[:, :1]
    zero = torch.zeros((), dtype=energies.dtype, device=energies.device)
    ref = torch.where(labels.energy_mask, labels.energies, zero)
    gap_ref = ref[:, 1:] - ref[:, :1]
    err = torch.where(mask, (energies[:, 1:] - energies[:, :1]) - gap_ref, zero)
    rho = robust_square(err, delta)
    if seam_weight > 0:
        rho = rho * (1.0 + seam_weight * torch.exp(-gap_ref.abs() / seam_scale))
    per_state = masked_mean(rho, mask)
    return per_state.sum()


def coupling_loss(nacs: torch.Tensor, labels: Labels, delta: float | None = None) -> torch.Tensor:
    """Phase-free mean error of the couplings, (1/Angstrom)^2; 0 without labelled couplings.

    For every structure b with labelled couplings and every pair i < j::

        L_bij = min over s in {+1, -1} of  < rho(d_ij - s d_ij^ref) >_{atoms of b, xyz}

    and the loss is the mean of L_bij over those structures and pairs: it does not change when
    the sign of any reference coupling (one structure, one pair) flips, and it is zero exactly
    when every predicted d_ij equals +d_ij^ref or -d_ij^ref. ``rho`` is the square, or with
    ``delta`` (1/Angstrom per component) :func:`robust_square`. Couplings grow as 1/gap near an
    intersection (d_ij = <i|grad H|j> / (E_j - E_i)), so a few near-degenerate structures can
    dominate squared errors: a Huber ``delta`` (``loss.kind: huber``, ``huber_delta_nacs``)
    bounds their pull.

    Args:
        nacs: (n, S, S, 3) 1/Angstrom predicted (only i < j is used).
        labels: the reference (``labels.nacs`` (n, S, S, 3), ``labels.nac_mask`` (B,)).
        delta: Huber threshold, or None for squares.
    """
    if labels.nacs is None or labels.nac_mask is None:
        raise ValueError("coupling_loss: the labels have no couplings")
    n_states = nacs.shape[1]
    rows, cols = torch.triu_indices(n_states, n_states, offset=1, device=nacs.device)
    counts = labels.n_atoms.to(torch.long)
    batch = torch.repeat_interleave(torch.arange(counts.shape[0], device=nacs.device), counts)
    atom_mask = labels.nac_mask[batch][:, None, None]
    zero = torch.zeros((), dtype=nacs.dtype, device=nacs.device)
    pred = nacs[:, rows, cols]  # (n, P, 3)
    ref = torch.where(atom_mask, labels.nacs[:, rows, cols], zero)
    per_sign = []
    for sign in (1.0, -1.0):
        err = torch.where(atom_mask, pred - sign * ref, zero)
        per_atom = robust_square(err, delta).sum(dim=-1)  # (n, P)
        total = per_atom.new_zeros(counts.shape[0], rows.shape[0]).index_add(0, batch, per_atom)
        per_sign.append(total / (3.0 * labels.n_atoms[:, None]))
    per_pair = torch.minimum(*per_sign)  # (B, P)
    mask = labels.nac_mask[:, None].expand_as(per_pair)
    return masked_mean(per_pair, mask).mean()


def outer_coupling_loss(
    outer: torch.Tensor, labels: Labels, delta: float | None = None
) -> torch.Tensor:
    """Sign-free error of the outer products D = d d^T, (1/Angstrom)^4; 0 without labelled
    couplings.

    For every structure b (N_b atoms) with labelled couplings and every pair i < j::

        L_bij = 1/N_b^2 sum_{a, c in b} sum_xyz,xyz rho(D_ac - d_a^ref (d_c^ref)^T)

    (with squares, ||D - d_ref d_ref^T||_F^2 / N_b^2 over the 3N_b x 3N_b matrix), and the loss
    is the mean of L_bij over those structures and pairs. d_ref d_ref^T does not change when
    the sign of a reference coupling flips, so neither does the loss. Scale: for D = (d + e)
    (d + e)^T with a small random error e, ||D - d d^T||_F^2 ~ 2 |d|^2 |e|^2, so that with the
    division by N_b^2, L_bij ~ 18 rms(d)^2 <e^2> (rms and mean over the 3 N_b components of
    the structure): the squared coupling error of :func:`coupling_loss`, weighted by the
    structure's squared coupling (18 rms(d)^2 = 0.22 (1/Angstrom)^2 for R2 stilbene's 0.11). ``rho``
    is the square, or with ``delta`` (1/Angstrom per coupling component, as for
    :func:`coupling_loss`) :func:`robust_square` of each entry with threshold ``delta**2``
    (an entry of D is a product of two components).

    Args:
        outer: (M, P, 3, 3) 1/Angstrom^2 predicted, the atom pairs of
            :func:`fusionff.nn.outer_couplings.structure_pairs` of ``labels.n_atoms``.
        labels: the reference (``labels.nacs`` (n, S, S, 3), ``labels.nac_mask`` (B,)).
        delta: Huber threshold, or None for squares.
    """
    if labels.nacs is None or labels.nac_mask is None:
        raise ValueError("outer_coupling_loss: the labels have no couplings")
    n_states = labels.nacs.shape[1]
    rows, cols = torch.triu_indices(n_states, n_states, offset=1, device=outer.device)
    first, second, owner = structure_pairs(labels.n_atoms.to(torch.long))
    labelled = labels.nac_mask[owner][:, None, None, None]
    zero = torch.zeros((), dtype=outer.dtype, device=outer.device)
    ref = labels.nacs[:, rows, cols]  # (n, P, 3)
    target = ref[first].unsqueeze(-1) * ref[second].unsqueeze(-2)  # (M, P, 3, 3)
    err = torch.where(labelled, outer - torch.where(labelled, target, zero), zero)
    per_entry = robust_square(err, None if delta is None else delta**2).sum(dim=(-1, -2))
    n_graphs = labels.n_atoms.shape[0]
    total = per_entry.new_zeros(n_graphs, rows.shape[0]).index_add(0, owner, per_entry)
    per_pair = total / labels.n_atoms[:, None] ** 2  # (B, P)
    mask = labels.nac_mask[:, None].expand_as(per_pair)
    return masked_mean(per_pair, mask).mean()


def trains_couplings(weight: float, data: TrainingData, model: MultiStateMACE) -> bool:
    """Whether training adds the coupling loss: ``weight`` (``loss.nacs``) > 0. Then the data
    must have couplings and the model must give them (ValueError saying which is missing)."""
    if weight <= 0:
        return False
    if not data.has_nacs:
        raise ValueError(
            f"loss.nacs is {weight} but {', '.join(data.paths)} have no labelled couplings"
        )
    if not model.provides_nacs:
        raise ValueError(
            f"loss.nacs is {weight} but the model gives no couplings: use head 'diabatic' or "
            "model.couplings: vector or outer"
        )
    return True
