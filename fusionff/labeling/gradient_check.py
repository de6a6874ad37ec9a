"""Check a reference program's forces against its own energies, structure by structure.

Semi-empirical configuration-interaction gradients are not always the derivative of the
energy they come with: at R1 about 2% of the stilbene structures carry a wrong gradient, some
off by several eV/Angstrom (``data/stilbene/README.md``). :class:`GradientCheckedBackend` wraps
any backend and, after each calculation, computes the energies once more at ``x + h u`` and
``x - h u`` for one random unit direction u of the 3N-dimensional configuration space. The
central difference ``D = (E(x + h u) - E(x - h u)) / 2h`` is the energy's slope along u, which
the forces predict as ``-F . u``. A state whose ``|D + F . u|`` exceeds ``tolerance`` (or whose
displaced calculations failed) keeps its energy but has its forces rejected: the dataset entry
gets a False force mask for that state and an ``error`` message that says why, with both
numbers. The check triples the cost of a structure.

The direction depends only on the geometry and ``seed``, so a resumed or repeated job draws
the same direction for the same structure. For errors spread evenly over the 3N components
``|D + F . u|`` is about the per-component error of the forces; an error confined to one atom
is seen, on average, at ``1/sqrt(3N)`` of its size.
"""

from __future__ import annotations

import hashlib
import time

import numpy as np

from fusionff.labeling.backend import LabelResult, ReferenceBackend, check_geometry


class GradientCheckedBackend(ReferenceBackend):
    """``backend`` with every successful state's forces checked along one random direction.

    Args:
        backend: the reference program.
        step: displacement h along the unit direction, Angstrom.
        tolerance: largest accepted ``|D + F . u|``, eV/Angstrom.
        seed: mixed with the geometry into the direction's random stream.
    """

    def __init__(
        self, backend: ReferenceBackend, step: float = 0.005, tolerance: float = 0.05, seed: int = 0
    ) -> None:
        if step <= 0 or tolerance <= 0:
            raise ValueError(f"step and tolerance must be positive, got {step}, {tolerance}")
        self.backend, self.step, self.tolerance, self.seed = backend, step, tolerance, seed

    def direction(self, numbers: np.ndarray, positions: np.ndarray) -> np.ndarray:
        """(N, 3) unit vector drawn from the geometry's bytes and the seed."""
        digest = hashlib.sha256(
            np.ascontiguousarray(numbers, dtype=np.int64).tobytes()
            + np.ascontiguousarray(positions, dtype=np.float64).tobytes()
        ).digest()
        rng = np.random.default_rng([self.seed, int.from_bytes(digest[:8], "little")])
        u = rng.normal(size=positions.shape)
        return u / np.linalg.norm(u)

    def compute(self, numbers: np.ndarray, positions: np.ndarray, n_states: int) -> LabelResult:
        """The backend's labels, with the forces of states that fail the check rejected."""
        start = time.perf_counter()
        numbers, positions = check_geometry(numbers, positions)
        result = self.backend.compute(numbers, positions, n_states)
        success = np.asarray(result.success, dtype=bool)
        if not success.any():
            return result
        u = self.direction(numbers, positions)
        plus = self.backend.compute(numbers, positions + self.step * u, n_states)
        minus = self.backend.compute(numbers, positions - self.step * u, n_states)
        slope = (plus.energies - minus.energies) / (2 * self.step)
        predicted = -np.einsum("ask,ak->s", np.nan_to_num(result.forces), u)
        deviation = slope - predicted
        force_success = success.copy()
        messages = [result.error] if result.error else []
        for s in np.flatnonzero(success):
            if not (plus.success[s] and minus.success[s] and np.isfinite(slope[s])):
                force_success[s] = False
                messages.append(
                    f"S{s}: forces rejected, the gradient check's displaced calculations failed"
                )
            elif abs(deviation[s]) > self.tolerance:
                force_success[s] = False
                messages.append(
                    f"S{s}: forces rejected by the gradient check: energy slope "
                    f"{slope[s]:.4f} eV/A along a random direction, forces give "
                    f"{predicted[s]:.4f} (tolerance {self.tolerance})"
                )
        return LabelResult(
            energies=result.energies,
            forces=result.forces,
            success=success,
            error="; ".join(messages),
            seconds=time.perf_counter() - start,
            force_success=force_success,
            nacs=result.nacs,
            meta=result.meta,
        )

    def provenance(self) -> dict:
        """The backend's provenance and the check's settings under ``gradient_check``."""
        return {
            **self.backend.provenance(),
            "gradient_check": {
                "step_angstrom": self.step,
                "tolerance_eV_per_angstrom": self.tolerance,
                "seed": self.seed,
            },
        }
