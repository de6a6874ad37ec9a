"""An electronic structure that crashes mid-run, for the resume tests."""

from __future__ import annotations

from fusionff.dynamics import TullyModel


class Interrupted(Exception):
    pass


class FailAfter:
    """Tully model 1 that raises after ``calls`` evaluations (a crash mid-run)."""

    n_states, provides_nacs = 2, True
    mass_amu = TullyModel.mass_amu

    def __init__(self, calls: int) -> None:
        self.model, self.calls = TullyModel("simple"), calls

    def evaluate(self, positions):
        self.calls -= 1
        if self.calls < 0:
            raise Interrupted
        return self.model.evaluate(positions)
