"""Surface hopping as an ASE dynamics class: one trajectory on any multi-state ASE calculator.

:class:`SurfaceHopping` drives a single trajectory the way ``ase.md.verlet.VelocityVerlet``
drives an adiabatic one (``dyn.run(steps)``, ``dyn.attach(observer)``, trajectory files and a
log file), with every state of a multi-state calculator that fills ``results["energies"]`` and
``results["state_forces"]`` (:class:`~fusionff.calculator.FusionCalculator`,
:class:`~fusionff.labeling.MopacCalculator`). It owns no physics: the calculator is wrapped as a
batch of one (:class:`~fusionff.dynamics.protocol.ASECalculatorStructure`) and every step is the
engine's :func:`~fusionff.dynamics.engine.step`, so a trajectory run here equals trajectory
``trajectory_index`` of an engine ensemble with the same master seed and settings.

With a committee calculator (``FusionCalculator(["a.fff", "b.fff"])``, which fills
``results["energies_std"]`` and ``["forces_std"]``) the ``committee`` option sets limits on
its spread as ``dynamics.committee`` does for ``fusionff run``
(:mod:`fusionff.dynamics.spread`): ``action: "flag"`` records the first step above them
(``flag``, ``flag_time``; a ``RuntimeWarning`` says why) and runs on, ``"stop"`` raises.

Units: ASE's at the interface (``timestep`` in ASE time units, momenta in ASE units), the
engine's inside (eV, Angstrom, fs, amu); ``1 fs = ase.units.fs``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from ase import Atoms, units
from ase.md.md import MolecularDynamics

from fusionff.dynamics.engine import SurfaceHoppingConfig, initial_state, step, total_energy
from fusionff.dynamics.integrator import kinetic_energy
from fusionff.dynamics.protocol import ASECalculatorStructure
from fusionff.dynamics.rng import trajectory_seeds
from fusionff.dynamics.spread import spread_reason
from fusionff.dynamics.state import Status, SurfaceHoppingState

__all__ = ["HopEvent", "SurfaceHopping"]


@dataclass(frozen=True)
class HopEvent:
    """A successful hop: at the end of ``step`` (time in fs) from state ``source`` to ``target``."""

    step: int
    time: float
    source: int
    target: int


class SurfaceHopping(MolecularDynamics):
    """Non-adiabatic surface hopping of ``atoms`` on the states of ``atoms.calc``.

    Args:
        atoms: the molecule, with a multi-state calculator attached and momenta set (zero
            momenta if none); constraints are not supported.
        timestep: ASE time units (``0.5 * ase.units.fs`` is 0.5 fs).
        state: initial active state (0 = ground state).
        n_states: number of states S; by default ``calc.n_states``, else the length of
            ``calc.results["energies"]``.
        algorithm: ``"kappa-tsh"`` (energies and forces only), ``"fssh"`` (needs
            ``results["nacs"]``) or ``"lz"``.
        seed: master seed; the trajectory draws from the stream of trajectory
            ``trajectory_index`` of an ensemble with this seed.
        trajectory: ASE trajectory file or writer (a frame every ``loginterval`` steps).
        logfile: file name, open file or ``"-"`` (stdout): one line every ``loginterval`` steps
            with time, active state, energies of all states, kinetic and total energy.
        loginterval: steps between log lines and trajectory frames.
        trajectory_index: index of this trajectory in the seeded ensemble.
        **config_options: further :class:`SurfaceHoppingConfig` fields (``n_substeps``,
            ``decoherence``, ``rescale``, ...); the time step comes from ``timestep`` only.
            ``committee={"max_energy_std": eV, "max_force_std": eV/Angstrom, "action":
            "flag" | "stop"}`` needs a committee calculator (``results["energies_std"]``).

    Attributes:
        state: the engine's :class:`SurfaceHoppingState` (batch of one), the authoritative copy;
            ``atoms`` (positions, momenta) and the calculator's ``state`` (where it has one)
            mirror it after every step, so writers and observers see the active surface.
        structure: the wrapped calculator. config: the engine settings.
        hops: the :class:`HopEvent` of every successful hop so far.
        flag: why the committee limits flagged the trajectory
            (:func:`~fusionff.dynamics.spread.spread_reason`), or None.
        flag_time: fs, when they did, or None.
    """

    def __init__(
        self,
        atoms: Atoms,
        timestep: float = 0.5 * units.fs,
        state: int = 1,
        n_states: int | None = None,
        algorithm: str = "kappa-tsh",
        seed: int = 0,
        trajectory=None,
        logfile=None,
        loginterval: int = 1,
        trajectory_index: int = 0,
        **config_options: Any,
    ) -> None:
        if "dt" in config_options:
            raise TypeError("give the time step as timestep (ASE time units), not dt")
        calc = atoms.calc
        if calc is None:
            raise ValueError("atoms have no calculator; attach a multi-state ASE calculator")
        if atoms.constraints:
            raise ValueError("SurfaceHopping does not support constraints on atoms")
        self.config = SurfaceHoppingConfig.from_dict(
            {"dt": float(timestep / units.fs), "algorithm": algorithm, **config_options}
        )
        super().__init__(
            atoms, timestep, trajectory=trajectory, logfile=None, loginterval=loginterval
        )
        atoms.get_potential_energy()
        if "energies" not in calc.results:
            raise ValueError(
                f"calculator {type(calc).__name__} did not fill results['energies']; "
                "SurfaceHopping needs a multi-state calculator"
            )
        if n_states is None:
            n_states = getattr(calc, "n_states", len(calc.results["energies"]))
        if not 0 <= state < n_states:
            raise ValueError(f"state {state} out of range for {n_states} states")
        if hasattr(calc, "state"):
            calc.state = state  # the active surface of energy/forces, from the stored results
        provides_spread = "energies_std" in calc.results and "forces_std" in calc.results
        if self.config.committee is not None and not provides_spread:
            raise ValueError(
                "committee: limits on a committee's spread need a committee calculator that "
                "fills results['energies_std'] and results['forces_std'] (e.g. "
                f"FusionCalculator(['a.fff', 'b.fff'])); {type(calc).__name__} does not"
            )
        self.structure = ASECalculatorStructure(
            calc,
            atoms,
            n_states,
            provides_nacs="nacs" in calc.results,
            provides_spread=provides_spread,
        )
        positions = torch.tensor(atoms.positions, dtype=torch.float64)[None]
        self.state: SurfaceHoppingState = initial_state(
            self.structure,
            positions,
            torch.tensor(atoms.get_velocities() * units.fs, dtype=torch.float64)[None],
            torch.tensor(atoms.get_masses(), dtype=torch.float64),
            active=torch.tensor([state]),
            seeds=trajectory_seeds(seed, torch.tensor([trajectory_index])),
            config=self.config,
        )
        self.hops: list[HopEvent] = []
        self.flag: str | None = None
        self.flag_time: float | None = None
        self._mirrored = (atoms.positions.copy(), atoms.get_momenta())
        self._check_status()
        if logfile is not None:
            self._log = self.openfile(file=logfile, comm=self.comm)
            self._log.write(self._log_header())
            self.attach(self._write_log_line, interval=loginterval)

    # -- the step ------------------------------------------------------------------------

    def step(self) -> None:
        """One engine step; then ``atoms`` and the calculator's active state follow it."""
        self._check_atoms_unchanged()
        before = int(self.state.active[0])
        self.state = step(self.state, self.structure, self.config)
        after = int(self.state.active[0])
        if after != before:
            self.hops.append(
                HopEvent(int(self.state.step[0]), float(self.state.time[0]), before, after)
            )
        self._mirror_to_atoms()
        self._check_status()

    def _check_status(self) -> None:
        """Note a new committee-spread flag (a warning unless it stops the trajectory); raise
        if the engine stopped the trajectory."""
        s = self.state
        if self.flag is None and s.flag_time is not None and not torch.isnan(s.flag_time[0]):
            active = int(s.active[0])
            self.flag_time = float(s.flag_time[0])
            force = float(s.force_spread[0, active])
            self.flag = spread_reason(s.energy_spread[0].tolist(), force, active, self.flag_time)
            if not self.config.committee.stops:
                warnings.warn(self.flag, RuntimeWarning, stacklevel=3)
        status = Status(int(s.status[0]))
        if status == Status.COMMITTEE_SPREAD:
            raise RuntimeError(
                f"trajectory stopped at step {int(s.step[0])}: {status.name} ({self.flag})"
            )
        if status == Status.STATE_ORDER:
            energies = ", ".join(f"{e:.4f}" for e in s.energies[0].tolist())
            raise RuntimeError(
                f"trajectory stopped at step {int(s.step[0])}: {status.name} (energies "
                f"{energies} eV out of order by more than max_state_inversion "
                f"{self.config.max_state_inversion} eV)"
            )
        if status == Status.OUT_OF_DOMAIN:
            domain = self.config.domain
            apart = (
                f", or an atom farther than {domain.dissociation_distance} Angstrom from all others"
                if domain.dissociation_distance is not None
                else ""
            )
            raise RuntimeError(
                f"trajectory stopped at step {int(s.step[0])}: {status.name} (an atom pair of "
                f"{domain.pairs} closer than {domain.min_distance} Angstrom{apart}: "
                f"{domain.description or 'outside the reference domain'})"
            )
        if status != Status.RUNNING:
            drift = float(total_energy(s)[0] - s.reference_energy[0])
            raise RuntimeError(
                f"trajectory stopped at step {int(s.step[0])}: {status.name} "
                f"(total-energy change {drift:.4g} eV, max_energy_drift "
                f"{self.config.max_energy_drift} eV)"
            )

    def _mirror_to_atoms(self) -> None:
        atoms = self.atoms
        atoms.set_positions(self.state.positions[0].numpy(), apply_constraint=False)
        velocities = self.state.velocities[0].numpy() / units.fs
        atoms.set_momenta(self.masses * velocities, apply_constraint=False)
        calc = self.structure.calculator
        if hasattr(calc, "state"):
            calc.state = self.active_state
        self._mirrored = (atoms.positions.copy(), atoms.get_momenta())

    def _check_atoms_unchanged(self) -> None:
        positions, momenta = self._mirrored
        atoms = self.atoms
        if not (
            np.array_equal(atoms.positions, positions)
            and np.array_equal(atoms.get_momenta(), momenta)
        ):
            raise ValueError(
                "atoms positions or momenta were changed outside SurfaceHopping, which owns the "
                "trajectory (its amplitudes and gap histories); start a new SurfaceHopping"
            )

    # -- what observers read ---------------------------------------------------------------

    @property
    def active_state(self) -> int:
        """Index of the active adiabatic state."""
        return int(self.state.active[0])

    @property
    def populations(self) -> np.ndarray:
        """(S,) electronic populations |c_j|^2."""
        return self.state.populations[0].numpy()

    @property
    def energies(self) -> np.ndarray:
        """(S,) eV adiabatic energies at the current positions."""
        return self.state.energies[0].numpy()

    @property
    def n_frustrated(self) -> int:
        """Number of frustrated hops so far."""
        return int(self.state.n_frustrated[0])

    def get_total_energy(self) -> float:
        """eV: kinetic energy plus the energy of the active state."""
        return float(total_energy(self.state)[0])

    def todict(self) -> dict[str, Any]:
        return super().todict() | {"surface_hopping": self.config.as_dict()}

    # -- log file --------------------------------------------------------------------------

    def _log_header(self) -> str:
        states = "".join(f"{f'E{j}[eV]':>13s}" for j in range(self.state.n_states))
        return f"{'Time[fs]':>10s}{'State':>6s}{states}{'Ekin[eV]':>12s}{'Etot[eV]':>13s}\n"

    def _write_log_line(self) -> None:
        s = self.state
        kinetic = float(kinetic_energy(s.velocities, s.masses)[0])
        energies = "".join(f"{e:13.6f}" for e in self.energies)
        self._log.write(
            f"{float(s.time[0]):10.3f}{self.active_state:6d}{energies}{kinetic:12.6f}"
            f"{self.get_total_energy():13.6f}\n"
        )
