"""SA-CASSCF through OpenMolcas as a reference backend: level R2 of the stilbene showcase.

R2 is SA-n-CASSCF(2,2) (PHYSICS.md section 5, issue "Stilbene that isomerises"): the ``n``
lowest singlets averaged with equal weights, two electrons in two active orbitals that are
the pi/pi* pair of a chosen C=C bond (``active_atoms``), STO-3G with exact integrals by
default. Per structure the backend returns the energies of every state, their analytic
gradients (OpenMolcas's MCLR + ALASKA) and, with ``couplings=True``, the non-adiabatic
coupling vectors between every pair of states.

Units and conventions at this interface (the dataset's): energies are absolute SA-CASSCF
energies in eV (Hartree x :data:`HARTREE_TO_EV`); forces eV/Angstrom; couplings
``nacs[a, i, j] = <S_i | d/dR_a S_j>`` in 1/Angstrom, antisymmetric in ``i, j``, with the
overall sign of each pair's vector fixed so that its component of largest magnitude is
positive (the phase of an electronic state is arbitrary; :data:`NAC_PHASE_CONVENTION`).

**Orbital following.** With an :class:`OrbitalStore`, each calculation starts from the
converged orbitals of the nearest structure already computed (smallest RMSD of the raw
Cartesian positions, no alignment: orbital coefficients refer to the molecule's frame), so
that the active space follows the same pi/pi* pair along a path. Without a stored neighbour
(or when the guided calculation fails its checks) the backend runs an RHF first and picks the
active pair itself: the highest occupied and the lowest virtual RHF orbital, within
``selection_window`` of the frontier, whose pi weight on the two ``active_atoms`` reaches
``select_pi_weight``. Measured at STO-3G: at trans-stilbene these are HOMO and LUMO
(weights 0.33/0.32); at the R1 cis minimum, whose phenyls are twisted, the four phenyl
orbitals on either side carry no weight on the bond and the ethylenic pair is HOMO-4/LUMO+4
(0.83/0.85). Taking the most pi-like orbital over a wide window instead picks HOMO-4/LUMO+4
at trans too, which converges to a wrong solution (a 14.7 eV "gap").

**Active-space guard.** After RASSCF: the state-averaged natural occupations of both active
orbitals must lie in ``[min_occupation, 2 - min_occupation]`` and each active orbital's pi
weight on the ``active_atoms`` (:func:`pi_weight`) must be at least ``min_pi_weight``;
otherwise the structure is recorded as failed (with the numbers in the message), never
stored with labels of another active space.

OpenMolcas runs through ``pymolcas`` under the system's own Python (``python``, default
``/usr/bin/python3``): a virtual environment's newer pyparsing breaks the driver.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from ase.data import chemical_symbols

from fusionff.labeling.backend import LabelResult, ReferenceBackend, check_geometry

HARTREE_TO_EV = 27.211386245988
"""eV per Hartree (CODATA 2018)."""
BOHR_TO_ANGSTROM = 0.529177210903
"""Angstrom per bohr (CODATA 2018)."""
NAC_PHASE_CONVENTION = (
    "nacs[a, i, j] = <S_i|d/dR_a S_j> in 1/Angstrom, antisymmetric; the sign of each pair's "
    "vector is chosen so that its component of largest magnitude is positive"
)
"""How the arbitrary sign of stored couplings is fixed (also written to dataset provenance)."""
RASSCF_THRESHOLDS = "1.0e-10 1.0e-6 1.0e-6"
"""RASSCF ``Thrs``: energy (Hartree), largest orbital rotation and largest orbital gradient
(BLB). Where RASSCF converges slowly (SA-2 ethylene twisted by 30 degrees), OpenMolcas's
defaults (1e-8, 0.1, 1e-4) stop early enough to leave the gradients off by 1e-2
eV/Angstrom (5 % of S1's along a random direction) and the couplings by 4 %; at these, the
labels agree with RASSCF converged to 1e-7 to 1e-3 eV/Angstrom and 1e-4 1/Angstrom
(tests/integration/test_labeling_molcas_backend.py). 1e-8 is below the noise floor, where
RASSCF stops converging."""
SCF_FALLBACK = ("Fermi = 1",)
"""SCF keywords of a fresh start's second RHF attempt, made only where OpenMolcas's default SCF
fails: Fermi aufbau (fractional occupations in the first iterations). At a twisted,
pyramidalised stilbene geometry at 6-31G the default SCF oscillated around a higher RHF
solution for 78 iterations and stopped ("inconsistency in gradient", exit 250); with Fermi
aufbau it converged in 26 iterations, 0.09 eV lower, and the fresh start from it reached the
lower SA-CASSCF solution that the stored label, resting on followed orbitals alone, had missed
(data/stilbene/r3/README.md, twenty-fifth session). The label's meta records it as ``"rhf":
"Fermi aufbau"``."""
MIN_DISTANCE = 0.1
"""Angstrom; closer atoms fail the structure. OpenMolcas drops the repulsion of coinciding
nuclei and returns finite labels for two atoms on one spot."""

_ROOT_ENERGY = re.compile(r"::\s+RASSCF root number\s+(\d+)\s+Total energy:\s+(\S+)")
_VERSION = re.compile(r"version:\s*(v?\d[\w.\-]*)", re.IGNORECASE)
_MODULE_END = re.compile(r"--- Stop Module:\s*(\w+).*?/rc=(\S+)\s*---")
_FIRST_ITERATION = re.compile(r"^\s+1\s+\d+\s+\d+\s+\d+\s+(-?\d+\.\d+)\s", re.MULTILINE)


def first_iteration_average(log: str) -> float:
    """The state-averaged energy (Hartree) of RASSCF's first macro-iteration in an OpenMolcas
    log (the start orbitals after one CI step), NaN when the iteration table is missing."""
    table = log.find("Iter CI   SX")
    match = _FIRST_ITERATION.search(log, table) if table >= 0 else None
    return float(match.group(1)) if match else float("nan")


def _kill_group(process: subprocess.Popen) -> None:
    """Kill ``process`` and every process in its group, then reap it."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(Exception):
        process.communicate(timeout=5)


SCREEN_TOLERANCE_EV = 1e-3
"""eV; with ``both_starts`` the gradient job restarts RASSCF from the chosen screened orbitals
and must reconverge to the same state average within this, else the structure fails (it would
otherwise carry gradients of another solution than the one chosen)."""

RICD_SCREEN_TOLERANCE_EV = 0.02
"""eV; with ``screen_integrals="ricd"`` the screens run on RICD integrals, whose energies differ
from the exact ones (stilbene, 6-31G: the state average by -0.20 eV, the gap by 12 meV), so the
exact gradient job cannot reproduce the screened average. It must instead stay on the screened
solution: its state average may fall by at most this from its first RASSCF iteration (the
RICD orbitals under exact integrals) to convergence (stilbene, 6-31G: 2-3 meV measured
2026-12-04, against 15 meV to 1 eV between distinct solutions)."""

AUDIT_TOLERANCE_EV = 0.01
"""eV; :meth:`MolcasCasscfBackend.audit` replaces a stored label whose state average lies more
than this above a fresh start's (also the default threshold of
data/stilbene/r2/recheck_labels.py)."""


class _AttemptFailed(Exception):
    """One start of one structure failed (OpenMolcas, parsing or the active-space guard)."""


def _how(orbitals) -> str:
    return "followed orbitals" if orbitals is not None else "fresh RHF start"


def _start_meta(orbitals, rmsd: float) -> dict:
    """A label's ``meta`` on its start: fresh, or followed with the neighbour's RMSD (A)."""
    if orbitals is None:
        return {"start": "fresh"}
    return {"start": "followed", "follow_rmsd": round(rmsd, 4)}


class MolcasError(RuntimeError):
    """OpenMolcas did not produce what a label needs; the message says what and where."""


def find_pymolcas(executable: str = "pymolcas") -> str | None:
    """Path of the OpenMolcas driver, or None when it is not installed."""
    return shutil.which(executable)


def pi_axis(positions: np.ndarray, atom: int) -> np.ndarray:
    """Unit normal (3,) of the plane through the three atoms nearest to ``atom``: the
    direction of its p-pi orbital (for an sp2 carbon; also when pyramidalised or twisted)."""
    distances = np.linalg.norm(positions - positions[atom], axis=1)
    distances[atom] = np.inf
    a, b, c = positions[np.argsort(distances)[:3]]
    normal = np.cross(b - a, c - a)
    return normal / np.linalg.norm(normal)


def pi_weight(
    coefficients: np.ndarray, basis_ids: np.ndarray, positions: np.ndarray, atoms: tuple[int, int]
) -> float:
    """Share of an orbital in the p-pi functions of ``atoms``.

    Args:
        coefficients: (n_basis,) orbital coefficients in OpenMolcas's AO order.
        basis_ids: (n_basis, 4) OpenMolcas ``BASIS_FUNCTION_IDS``: centre (1-based), shell,
            l, m (for p: m = 1, -1, 0 are x, y, z).
        positions: (N, 3) Angstrom, the structure.
        atoms: the two atoms of the C=C bond (0-based).

    Returns:
        sum over the two atoms and their p shells of (p . n)^2, n the atom's :func:`pi_axis`,
        divided by the sum of all squared coefficients: near 1 for an ethylene-like pi
        orbital of the bond, near 0 for sigma orbitals or orbitals elsewhere.
    """
    c = np.asarray(coefficients, dtype=float)
    axis = {1: 0, -1: 1, 0: 2}
    weight = 0.0
    for atom in atoms:
        normal = pi_axis(positions, atom)
        rows = np.flatnonzero((basis_ids[:, 0] == atom + 1) & (basis_ids[:, 2] == 1))
        for shell in np.unique(basis_ids[rows, 1]):
            p = np.zeros(3)
            for row in rows[basis_ids[rows, 1] == shell]:
                p[axis[int(basis_ids[row, 3])]] = c[row]
            weight += float(p @ normal) ** 2
    return weight / float(c @ c)


def _fix_sign(vector: np.ndarray) -> np.ndarray:
    """``vector`` times the sign of its component of largest magnitude."""
    flat = vector.reshape(-1)
    sign = np.sign(flat[np.argmax(np.abs(flat))]) or 1.0
    return vector * sign


@dataclass(frozen=True)
class CasscfOutput:
    """What one OpenMolcas SA-CASSCF job gave, in its own units (``first_average``: the
    state-averaged energy of the first RASSCF iteration, Hartree, NaN when not printed).

    Attributes:
        energies: (S,) Hartree.
        gradients: (S, N, 3) Hartree/bohr.
        nacs: {(i, j): (N, 3) 1/bohr} for i < j, OpenMolcas's ``NAC = i+1 j+1`` vector, which
            is ``<S_j|d/dR S_i>`` for the CI phases of its ``job.rasscf.h5`` (finite differences
            of overlaps, tests/integration); empty without couplings.
        occupations: (2,) state-averaged natural occupations of the active orbitals.
        pi_weights: (2,) :func:`pi_weight` of the active orbitals.
        iterations: RASSCF macro-iterations.
        rhf: "" or, for a fresh start whose default SCF failed, how its RHF was obtained
            (``"Fermi aufbau"``, :data:`SCF_FALLBACK`).
    """

    energies: np.ndarray
    gradients: np.ndarray
    nacs: dict
    occupations: np.ndarray
    pi_weights: np.ndarray
    iterations: int
    first_average: float = float("nan")
    rhf: str = ""


def parse_log(
    text: str, n_atoms: int, n_states: int, couplings: bool, gradients: bool = True
) -> tuple:
    """Energies (S,) Hartree, gradients (S, N, 3) Hartree/bohr and couplings {(i, j): (N, 3)
    1/bohr} from an OpenMolcas log of the job written by :func:`job_input` (with
    ``gradients=False``, a RASSCF-only job: gradients (0,) and no couplings).

    Raises:
        MolcasError: a module that did not end well, or a missing or short block (the message
            names it).
    """
    for module, rc in _MODULE_END.findall(text):
        if rc not in ("_RC_ALL_IS_WELL_", "_RC_INVOKED_OTHER_MODULE_"):
            raise MolcasError(f"OpenMolcas module {module} ended with {rc}")
    roots = {int(k): float(e) for k, e in _ROOT_ENERGY.findall(text)}
    missing = [k for k in range(1, n_states + 1) if k not in roots]
    if missing:
        raise MolcasError(f"no RASSCF energy for root(s) {missing} in the OpenMolcas output")
    energies = np.array([roots[k] for k in range(1, n_states + 1)])
    if not gradients:
        return energies, np.zeros(0), {}
    position = 0
    blocks = []
    for _ in range(n_states):
        block, position = _block(text, "Molecular gradients", position, n_atoms)
        blocks.append(block)
    nacs = {}
    if couplings:
        for i in range(n_states):
            for j in range(i + 1, n_states):
                nacs[(i, j)], position = _block(
                    text, "Total derivative coupling", position, n_atoms
                )
    return energies, np.array(blocks), nacs


def _block(text: str, title: str, start: int, n_atoms: int) -> tuple[np.ndarray, int]:
    """The (N, 3) rows ``LABEL x y z`` printed after the next ``title`` at or after ``start``,
    and the position just after that title."""
    where = text.find(title, start)
    if where < 0:
        raise MolcasError(f"no {title!r} block in the OpenMolcas output")
    rows = []
    for line in text[where:].splitlines()[1:]:
        parts = line.split()
        if len(parts) == 4 and re.fullmatch(r"[A-Za-z]+\d+", parts[0]):
            rows.append([float(x) for x in parts[1:]])
            if len(rows) == n_atoms:
                break
        elif rows:
            break
    if len(rows) != n_atoms:
        raise MolcasError(f"the {title!r} block has {len(rows)} atom rows, expected {n_atoms}")
    return np.array(rows), where + len(title)


def integrals_input(xyz: str, basis: str, ricd: bool = False) -> str:
    """GATEWAY and SEWARD alone: the one-electron and two-electron integrals of a geometry
    (file ``xyz``, Angstrom), exact (or, with ``ricd``, OpenMolcas's RICD approximation, for
    screening only), without symmetry."""
    gateway = ["&GATEWAY", f"  Coord = {xyz}", f"  Basis = {basis}", "  Group = NoSym"]
    return "\n".join([*gateway, *(["  RICD"] if ricd else []), "&SEWARD", ""])


def job_input(
    xyz: str,
    basis: str,
    n_states: int,
    n_inactive: int,
    *,
    couplings: bool,
    orbitals: str | None = None,
    alter: tuple[tuple[int, int], ...] = (),
    scf_only: bool = False,
    gradients: bool = True,
    integrals: bool = True,
    scf_keywords: tuple[str, ...] = (),
) -> str:
    """An OpenMolcas input: SA-``n_states``-CASSCF(2,2) gradients of every root (and couplings).

    Args:
        xyz: name of the geometry file (xyz, Angstrom) in the job's directory.
        basis: basis set name (e.g. ``STO-3G``), exact integrals, no symmetry.
        n_states: roots averaged with equal weights, and states labelled.
        n_inactive: doubly occupied orbitals outside the active space.
        couplings: add an ALASKA ``NAC`` step for every pair of roots.
        orbitals: starting orbitals (an INPORB file in the job's directory); None: after an
            SCF in the same job.
        alter: pairs of 1-based orbital indices to swap in the starting orbitals.
        scf_only: only the integrals (as ``integrals`` says) and SCF (the first step of a
            fresh start).
        gradients: False: RASSCF energies only (no ALASKA steps; ``couplings`` ignored), the
            screening job of :class:`MolcasCasscfBackend` with ``both_starts``.
        integrals: False: no GATEWAY and SEWARD steps, for a work directory that already
            holds this geometry's integrals (:func:`integrals_input`, copied in).
        scf_keywords: lines added to the SCF step (e.g. :data:`SCF_FALLBACK`).
    """
    lines = integrals_input(xyz, basis).splitlines() if integrals else []
    scf = ["&SCF", *(f"  {k}" for k in scf_keywords)]
    if scf_only:
        return "\n".join([*lines, *scf, ""])
    if orbitals is None:
        lines += scf
    lines += [
        "&RASSCF",
        "  Spin = 1",
        "  Nactel = 2 0 0",
        f"  Inactive = {n_inactive}",
        "  Ras2 = 2",
        f"  CIRoot = {n_states} {n_states} 1",
        f"  Thrs = {RASSCF_THRESHOLDS}",
    ]
    if orbitals is not None:
        lines.append(f"  FileOrb = {orbitals}")
    if alter:
        lines.append("  Alter = " + "; ".join([str(len(alter))] + [f"1 {a} {b}" for a, b in alter]))
    if not gradients:
        return "\n".join([*lines, ""])
    for root in range(1, n_states + 1):
        lines += ["&ALASKA", f"  Root = {root}"]
    if couplings:
        for i in range(1, n_states + 1):
            for j in range(i + 1, n_states + 1):
                lines += ["&ALASKA", f"  NAC = {i} {j}"]
    return "\n".join([*lines, ""])


class OrbitalStore:
    """Converged orbitals of computed structures, shared by worker processes through a folder.

    Each entry is ``KEY.RasOrb`` (OpenMolcas INPORB text) and ``KEY.npz`` (atomic numbers and
    positions, Angstrom), the latter written last, so a listed entry is always complete.
    """

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._known: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def __len__(self) -> int:
        self._refresh()
        return len(self._known)

    def _refresh(self) -> None:
        for index in self.folder.glob("*.npz"):
            if index.stem not in self._known:
                with np.load(index) as entry:
                    self._known[index.stem] = (entry["numbers"], entry["positions"])

    def nearest(
        self, numbers: np.ndarray, positions: np.ndarray, skip: np.ndarray | None = None
    ) -> tuple[Path, float] | None:
        """The orbital file of the stored structure with the same atoms nearest to
        ``positions`` (RMSD of raw positions, Angstrom) and that RMSD; None if there is none.
        A structure at exactly the positions ``skip`` is passed over."""
        self._refresh()
        best = None
        for key, (stored_numbers, stored_positions) in self._known.items():
            if not np.array_equal(stored_numbers, numbers):
                continue
            if skip is not None and np.array_equal(stored_positions, skip):
                continue
            rmsd = _rmsd(stored_positions, positions)
            if best is None or rmsd < best[1]:
                best = (self.folder / f"{key}.RasOrb", rmsd)
        return best

    def positions_of(self, orbitals: Path) -> np.ndarray | None:
        """Positions (Angstrom) of the structure whose orbital file is ``orbitals``."""
        self._refresh()
        if Path(orbitals).parent != self.folder or Path(orbitals).stem not in self._known:
            return None
        return self._known[Path(orbitals).stem][1]

    def save(self, numbers: np.ndarray, positions: np.ndarray, orbitals: Path) -> None:
        """Store ``orbitals`` (an INPORB file) as those of this structure."""
        digest = hashlib.sha256(
            np.asarray(numbers, np.int64).tobytes() + np.asarray(positions, np.float64).tobytes()
        ).hexdigest()[:20]
        target = self.folder / f"{digest}.RasOrb"
        tmp = self.folder / f".{digest}.{os.getpid()}.tmp"
        shutil.copyfile(orbitals, tmp)
        os.replace(tmp, target)
        with open(tmp, "wb") as handle:
            np.savez(
                handle,
                numbers=np.asarray(numbers, np.int64),
                positions=np.asarray(positions, np.float64),
            )
        os.replace(tmp, self.folder / f"{digest}.npz")


class RecentOrbitals:
    """The converged orbitals of the last ``capacity`` structures, in memory and a temporary
    folder: the orbital following of one process (labelling with one worker, direct
    dynamics).

    Copies made with ``copy.deepcopy`` share it (the threads of
    :class:`fusionff.dynamics.protocol.ASECalculatorStructure` each deep-copy the calculator,
    and a trajectory's next step should find its own previous orbitals whichever copy
    computes it); a pickled copy (a worker process) starts empty.
    """

    def __init__(self, capacity: int = 256) -> None:
        self.capacity = capacity
        self._entries: list[tuple[np.ndarray, np.ndarray, Path]] = []
        self._lock = threading.Lock()
        self._folder: Path | None = None

    def __deepcopy__(self, memo: dict) -> RecentOrbitals:
        return self

    def __getstate__(self) -> dict:
        return {"capacity": self.capacity}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["capacity"])

    def nearest(
        self, numbers: np.ndarray, positions: np.ndarray, skip: np.ndarray | None = None
    ) -> tuple[Path, float] | None:
        """Orbital file and RMSD (Angstrom) of the nearest remembered structure, or None;
        a structure at exactly the positions ``skip`` is passed over."""
        with self._lock:
            best = None
            for stored_numbers, stored_positions, path in self._entries:
                if skip is not None and np.array_equal(stored_positions, skip):
                    continue
                if np.array_equal(stored_numbers, numbers):
                    rmsd = _rmsd(stored_positions, positions)
                    if best is None or rmsd < best[1]:
                        best = (path, rmsd)
            return best

    def positions_of(self, orbitals: Path) -> np.ndarray | None:
        """Positions (Angstrom) of the remembered structure whose orbital file is
        ``orbitals``."""
        with self._lock:
            for _, stored_positions, path in self._entries:
                if path == Path(orbitals):
                    return stored_positions
        return None

    def save(self, numbers: np.ndarray, positions: np.ndarray, orbitals: Path) -> None:
        """Remember ``orbitals`` for this structure, forgetting the oldest beyond capacity."""
        with self._lock:
            if self._folder is None:
                self._folder = Path(tempfile.mkdtemp(prefix="fusionff-orbitals-"))
                weakref.finalize(self, shutil.rmtree, str(self._folder), True)
            handle, name = tempfile.mkstemp(suffix=".RasOrb", dir=self._folder)
            os.close(handle)
            shutil.copyfile(orbitals, name)
            self._entries.append((np.array(numbers), np.array(positions), Path(name)))
            while len(self._entries) > self.capacity:
                self._entries.pop(0)[2].unlink(missing_ok=True)


def _rmsd(a: np.ndarray, b: np.ndarray) -> float:
    """Root-mean-square distance of two (N, 3) position arrays, no alignment."""
    return float(np.sqrt(np.mean(np.sum((a - b) ** 2, axis=1))))


def _write_xyz(path: Path, numbers: np.ndarray, positions: np.ndarray) -> None:
    """A geometry as an xyz file (Angstrom, 10 decimals), OpenMolcas's ``Coord`` input."""
    symbols = [chemical_symbols[z] for z in numbers]
    xyz = "".join(
        f"{s} {x:.10f} {y:.10f} {z:.10f}\n" for s, (x, y, z) in zip(symbols, positions, strict=True)
    )
    path.write_text(f"{len(numbers)}\n\n{xyz}")


class Integrals:
    """The integrals of one structure, shared by all its jobs (starts, screening, gradients).

    Every OpenMolcas job of a structure needs the same GATEWAY and SEWARD steps; run once and
    copied into each job's work directory they cost one job's share instead of three or four
    (about 5 of the 10-20 CPU seconds of a RASSCF-only stilbene job, measured 2026-12-03;
    results are bit for bit those of the full inputs). Made lazily, by the first job that
    needs them, so that a failure there is that job's failure; ``close`` removes them.
    """

    def __init__(self, ricd: bool = False) -> None:
        self.folder: Path | None = None
        self.ricd = ricd

    def work(self, backend: MolcasCasscfBackend, numbers, positions) -> Path:
        """The work directory holding the integrals (computed on the first call)."""
        if self.folder is None:
            folder = Path(tempfile.mkdtemp(prefix="fusionff-molcas-integrals-"))
            try:
                _write_xyz(folder / "geom.xyz", numbers, positions)
                (folder / "integrals.input").write_text(
                    integrals_input("geom.xyz", backend.basis, self.ricd)
                )
                backend._run(folder, "integrals.input")
            except BaseException:
                shutil.rmtree(folder, ignore_errors=True)
                raise
            self.folder = folder
        return self.folder / "work"

    def close(self) -> None:
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None


class MolcasCasscfBackend(ReferenceBackend):
    """SA-CASSCF(2,2) energies, gradients and couplings of S0 .. S(n-1) with OpenMolcas.

    Args:
        active_atoms: the two atoms (0-based) whose C=C pi/pi* pair is the active space
            (stilbene: ``fusionff.data.stilbene.C1, C2``; ethylene: 0, 1).
        basis: basis set (default STO-3G, level R2), exact integrals.
        couplings: also compute the non-adiabatic couplings of every pair of states.
        orbital_store: folder of converged orbitals to start from (orbital following);
            None: only the structures this process computed recently are followed
            (:class:`RecentOrbitals`).
        max_follow_rmsd: Angstrom; a stored structure farther than this is not followed.
        selection_window: how many frontier RHF orbitals on each side may become active.
        select_pi_weight: a fresh start takes the highest occupied and the lowest virtual
            orbital of the window whose :func:`pi_weight` reaches this (else the most
            pi-like of the window).
        min_occupation: the active natural occupations must lie in [this, 2 - this].
        min_pi_weight: the active orbitals' :func:`pi_weight` must be at least this.
        timeout: s, wall-clock limit of one OpenMolcas job.
        executable: the OpenMolcas driver; python: the interpreter that runs it.
        memory_mb: OpenMolcas's work memory per job (``MOLCAS_MEM``).
        keep_failed: a folder where the logs of failed jobs are copied, or None.
        both_starts: for every structure that has followed orbitals, converge RASSCF alone
            from them and from a fresh RHF start, keep the solution of lower state-averaged
            energy (SA-CASSCF's own objective), and compute gradients and couplings from its
            orbitals (about 1.3-1.5x the cost of one start): where two solutions coexist, a
            followed start can land on either; on stilbene it landed 1.7 eV too high in the
            average (S1 3.4 eV too high) while passing the guard (data/stilbene/r2/README.md).
            meta records both averages (eV); the gradient job must reproduce the chosen
            average to :data:`SCREEN_TOLERANCE_EV`. When one of the two starts fails (an
            RHF that crashes, a guard failure), the orbitals of the next-nearest stored
            neighbour are screened as well (meta start ``"second neighbour"``), so that the
            label still rests on two starts: a followed start alone landed on a solution
            0.67 eV too high in the average (S1 1.32 eV) at a stilbene geometry whose fresh
            start crashed (data/stilbene/r3/README.md, twenty-second session).
        screen_integrals: ``"exact"``, or ``"ricd"``: the screening jobs (RASSCF alone, from
            both starts) run on OpenMolcas's RICD integrals, about 4x cheaper for stilbene at
            6-31G, and the exact gradient job starts from the orbitals of the lower RICD state
            average (stilbene, 6-31G: 1.3-1.5x fewer CPU seconds per label; at STO-3G, where
            exact RASSCF is cheap, no gain: 103 against 101 s; the labels are those of exact
            integrals either way, the screen only chooses the start). The gradient job must
            then stay on that solution to :data:`RICD_SCREEN_TOLERANCE_EV`; the screened
            averages are in meta as ``screen_state_averages_eV`` (RICD, eV) instead of
            ``state_averages_eV``.
        screen_above_rmsd: Angstrom; without ``both_starts``, screen both starts (as
            ``both_starts`` does) whenever the followed orbitals belong to a structure
            farther than this, and follow alone only closer. Direct dynamics sets it: a
            trajectory's consecutive steps are 0.01-0.03 A apart, but its first step (or the
            first after a resume) would otherwise follow another trajectory's orbitals,
            which on stilbene put one start on the higher solution (S1 2.6 eV too high).
            None: never (labelling screens every structure with ``both_starts``).
    """

    def __init__(
        self,
        active_atoms: tuple[int, int] = (0, 1),
        *,
        basis: str = "STO-3G",
        couplings: bool = True,
        orbital_store: str | Path | None = None,
        max_follow_rmsd: float = 1.0,
        selection_window: int = 6,
        select_pi_weight: float = 0.2,
        min_occupation: float = 0.05,
        min_pi_weight: float = 0.1,
        timeout: float = 1800.0,
        executable: str = "pymolcas",
        python: str = "/usr/bin/python3",
        memory_mb: int = 1000,
        keep_failed: str | Path | None = None,
        both_starts: bool = False,
        screen_above_rmsd: float | None = None,
        screen_integrals: str = "exact",
    ) -> None:
        if screen_above_rmsd is not None and not screen_above_rmsd >= 0:
            raise ValueError(f"screen_above_rmsd must be >= 0 Angstrom, got {screen_above_rmsd}")
        if screen_integrals not in ("exact", "ricd"):
            raise ValueError(
                f"screen_integrals must be 'exact' or 'ricd', got {screen_integrals!r}"
            )
        self.screen_integrals = screen_integrals
        self.active_atoms = (int(active_atoms[0]), int(active_atoms[1]))
        self.basis = basis
        self.couplings = couplings
        self.store_folder = None if orbital_store is None else str(orbital_store)
        self.max_follow_rmsd = max_follow_rmsd
        self.selection_window = selection_window
        self.select_pi_weight = select_pi_weight
        self.min_occupation = min_occupation
        self.min_pi_weight = min_pi_weight
        self.timeout = timeout
        self.executable = executable
        self.python = python
        self.memory_mb = memory_mb
        self.keep_failed = None if keep_failed is None else str(keep_failed)
        self.both_starts = both_starts
        self.screen_above_rmsd = screen_above_rmsd
        self._store: OrbitalStore | None = None
        self._recent = RecentOrbitals()
        self._version: str | None = None
        self._failed_jobs = 0

    def __getstate__(self) -> dict:  # worker processes get the settings, not the caches
        state = dict(self.__dict__)
        state.update(_store=None)
        return state

    # -- description ------------------------------------------------------------------
    def keywords(self, n_states: int | None = None) -> str:
        """One line naming the level (stored as provenance ``keywords``)."""
        roots = "n" if n_states is None else str(n_states)
        return (
            f"SA-{roots}-CASSCF(2,2)/{self.basis} exact integrals, NoSym, equal weights, "
            f"singlets, active pi/pi* of atoms {self.active_atoms[0]}-{self.active_atoms[1]}, "
            f"RASSCF Thrs {RASSCF_THRESHOLDS}" + (", NACs" if self.couplings else "")
        )

    def provenance(self) -> dict:
        return {
            "program": "OpenMolcas",
            "version": self.version,
            "keywords": self.keywords(),
            "method": f"SA-CASSCF(2,2)/{self.basis}",
            "nac_convention": NAC_PHASE_CONVENTION if self.couplings else "",
            "active_space_guard": (
                f"natural occupations in [{self.min_occupation}, {2 - self.min_occupation}], "
                f"pi weight on atoms {self.active_atoms} >= {self.min_pi_weight}"
            ),
            "energy_unit": "eV (absolute, Hartree x 27.211386245988)",
            "starts": self._starts_description(),
        }

    def _starts_description(self) -> str:
        screened = (
            "followed and fresh RASSCF (the next-nearest neighbour's too when one of them "
            "fails), the lowest state average kept and its gradients"
        )
        if self.screen_integrals == "ricd":
            screened += " (screens on RICD integrals, gradients exact)"
        if self.both_starts:
            return screened
        followed = "followed (fresh when no neighbour or the followed one fails)"
        if self.screen_above_rmsd is None:
            return followed
        return f"{followed}; {screened} where the neighbour is over {self.screen_above_rmsd} A away"

    def _screens(self, start: Path | None, rmsd: float) -> bool:
        """Whether a structure whose followed orbitals are ``start`` at ``rmsd`` Angstrom is
        screened from both starts."""
        if start is None:
            return False
        if self.both_starts:
            return True
        return self.screen_above_rmsd is not None and rmsd > self.screen_above_rmsd

    @property
    def version(self) -> str:
        """OpenMolcas's version (from a tiny job, run once), "" when it cannot run."""
        if self._version is None:
            self._version = ""
            with tempfile.TemporaryDirectory(prefix="fusionff-molcas-") as tmp:
                (Path(tmp) / "h.xyz").write_text("1\n\nH 0 0 0\n")
                (Path(tmp) / "job.input").write_text(
                    "&GATEWAY\n  Coord = h.xyz\n  Basis = STO-3G\n  Group = NoSym\n"
                )
                try:
                    log = self._run(Path(tmp), "job.input")
                    match = _VERSION.search(log)
                    self._version = match.group(1) if match else ""
                except (MolcasError, OSError):
                    pass
        return self._version

    # -- running ----------------------------------------------------------------------
    def _run(self, folder: Path, input_name: str) -> str:
        """Run OpenMolcas on ``input_name`` in ``folder`` (project ``job``); returns the log."""
        driver = shutil.which(self.executable)
        if driver is None:
            raise MolcasError(f"OpenMolcas driver {self.executable!r} not found on PATH")
        (folder / "work").mkdir(exist_ok=True)
        env = dict(os.environ)
        env.update(
            MOLCAS_WORKDIR=str(folder / "work"),
            MOLCAS_PROJECT="job",
            MOLCAS_MEM=str(self.memory_mb),
            MOLCAS_PRINT="normal",
            OMP_NUM_THREADS=env.get("OMP_NUM_THREADS", "1"),
        )
        env.pop("PYTHONPATH", None)
        env.pop("VIRTUAL_ENV", None)
        command = [self.python, driver, input_name] if self.python else [driver, input_name]
        # its own process group, so that a timeout or an interruption (Ctrl-C, the labelling
        # runner's SIGTERM) ends the driver and the programs it started, not the driver alone
        process = subprocess.Popen(
            command,
            cwd=folder,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        try:
            log, stderr = process.communicate(timeout=self.timeout)
        except subprocess.TimeoutExpired as exc:
            _kill_group(process)
            raise MolcasError(f"OpenMolcas ran past the {self.timeout:g} s timeout") from exc
        except BaseException:
            _kill_group(process)
            raise
        (folder / f"{Path(input_name).stem}.log").write_text(log + stderr)
        if process.returncode != 0:
            errors = [
                line.strip()
                for line in (log + stderr).splitlines()
                if "error" in line.lower() or "_RC_" in line and "ALL_IS_WELL" not in line
            ]
            raise MolcasError(
                f"OpenMolcas exited with {process.returncode}: " + " | ".join(errors[-4:])
            )
        return log

    def _start_orbitals(
        self, numbers, positions, skip: np.ndarray | None = None
    ) -> tuple[Path | None, float]:
        """The nearest followed orbitals (store or recent structures) and their RMSD,
        passing over a structure at exactly the positions ``skip``."""
        candidates = []
        if self.store_folder is not None:
            if self._store is None:
                self._store = OrbitalStore(self.store_folder)
            found = self._store.nearest(numbers, positions, skip)
            if found is not None:
                candidates.append(found)
        found = self._recent.nearest(numbers, positions, skip)
        if found is not None:
            candidates.append(found)
        candidates = [c for c in candidates if c[0].exists() and c[1] <= self.max_follow_rmsd]
        return min(candidates, key=lambda c: c[1]) if candidates else (None, float("inf"))

    def _neighbour_positions(self, orbitals: Path) -> np.ndarray | None:
        """Positions of the structure (store or recent) whose orbital file is ``orbitals``."""
        found = self._store.positions_of(orbitals) if self._store is not None else None
        return found if found is not None else self._recent.positions_of(orbitals)

    def _select_active(self, folder: Path, n_inactive: int, positions: np.ndarray):
        """Swaps (1-based) that bring the most pi-like frontier RHF orbitals to positions
        HOMO and LUMO, read from the SCF job's HDF5 file."""
        import h5py

        with h5py.File(folder / "job.scf.h5", "r") as f:
            n_basis = int(np.asarray(f.attrs["NBAS"]).sum())
            vectors = np.asarray(f["MO_VECTORS"]).reshape(n_basis, n_basis)
            ids = np.asarray(f["BASIS_FUNCTION_IDS"])
        homo = n_inactive  # 0-based index of the HOMO is n_inactive
        window = self.selection_window
        occupied = range(max(0, homo - window + 1), homo + 1)
        virtual = range(homo + 1, min(n_basis, homo + 1 + window))
        weight = {
            k: pi_weight(vectors[k], ids, positions, self.active_atoms)
            for k in [*occupied, *virtual]
        }
        # the frontier-most orbital with clear pi character on the bond (the most pi-like
        # overall picks deeper orbitals at trans-stilbene that converge to a wrong solution)
        best_occ = next(
            (k for k in reversed(occupied) if weight[k] >= self.select_pi_weight),
            max(occupied, key=weight.get),
        )
        best_vir = next(
            (k for k in virtual if weight[k] >= self.select_pi_weight), max(virtual, key=weight.get)
        )
        swaps = []
        if best_occ != homo:
            swaps.append((best_occ + 1, homo + 1))
        if best_vir != homo + 1:
            swaps.append((best_vir + 1, homo + 2))
        return tuple(swaps)

    def _guard(self, folder: Path, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Natural occupations (2,) and pi weights (2,) of the active orbitals."""
        import h5py

        with h5py.File(folder / "job.rasscf.h5", "r") as f:
            n_basis = int(np.asarray(f.attrs["NBAS"]).sum())
            vectors = np.asarray(f["MO_VECTORS"]).reshape(n_basis, n_basis)
            ids = np.asarray(f["BASIS_FUNCTION_IDS"])
            occupations = np.asarray(f["MO_OCCUPATIONS"])
            types = [t.decode().strip() for t in np.asarray(f["MO_TYPEINDICES"])]
        active = [k for k, t in enumerate(types) if t == "2"]
        weights = np.array(
            [pi_weight(vectors[k], ids, positions, self.active_atoms) for k in active]
        )
        return occupations[active], weights

    def _job(
        self,
        folder: Path,
        numbers,
        positions,
        n_states,
        start: Path | None,
        gradients=True,
        integrals: Integrals | None = None,
    ) -> CasscfOutput:
        """One SA-CASSCF calculation in ``folder``: from ``start`` orbitals, or fresh; with
        ``gradients=False`` RASSCF only (energies and the guard's numbers; the converged
        orbitals are left in ``folder / "job.RasOrb"``). With ``integrals``, the structure's
        integrals are computed once (the first job) and copied into this job's work
        directory, whose inputs then skip GATEWAY and SEWARD."""
        n_electrons = int(np.sum(numbers))
        if n_electrons % 2:
            raise MolcasError(f"{n_electrons} electrons: a closed-shell reference needs even")
        n_inactive = (n_electrons - 2) // 2
        _write_xyz(folder / "geom.xyz", numbers, positions)
        options = {
            "couplings": self.couplings,
            "gradients": gradients,
            "integrals": integrals is None,
        }

        def fresh_work() -> None:  # the work directory as before any job (integrals only)
            shutil.rmtree(folder / "work", ignore_errors=True)
            if integrals is not None:
                shutil.copytree(integrals.work(self, numbers, positions), folder / "work")

        fresh_work()
        rhf = ""
        if start is None:
            rhf = self._fresh_scf(folder, n_states, n_inactive, integrals is None, fresh_work)
            alter = self._select_active(folder, n_inactive, positions)
            shutil.copyfile(folder / "job.ScfOrb", folder / "start.orb")
        else:
            alter = ()
            shutil.copyfile(start, folder / "start.orb")
        (folder / "job.input").write_text(
            job_input(
                "geom.xyz",
                self.basis,
                n_states,
                n_inactive,
                orbitals="start.orb",
                alter=alter,
                **options,
            )
        )
        log = self._run(folder, "job.input")
        energies, grads, nacs = parse_log(log, len(numbers), n_states, self.couplings, gradients)
        occupations, weights = self._guard(folder, positions)
        match = re.search(r"Convergence after\s*(\d+)\s+iterations", log)
        return CasscfOutput(
            energies,
            grads,
            nacs,
            occupations,
            weights,
            int(match.group(1)) if match else -1,
            first_iteration_average(log),
            rhf,
        )

    def _fresh_scf(
        self,
        folder: Path,
        n_states: int,
        n_inactive: int,
        integrals: bool,
        fresh_work: Callable[[], None] = lambda: None,
    ) -> str:
        """The RHF of a fresh start (``folder / "job.ScfOrb"``): OpenMolcas's default SCF, and
        where that fails, once more with :data:`SCF_FALLBACK` after ``fresh_work()`` has reset
        the work directory (at stilbene the retry failed again in the failed SCF's work
        directory and converged in a reset one). Returns "" or "Fermi aufbau"; raises
        :class:`MolcasError` with both reasons when both fail."""
        errors = []
        for keywords, name in (((), ""), (SCF_FALLBACK, "Fermi aufbau")):
            if keywords:
                fresh_work()
            (folder / "scf.input").write_text(
                job_input(
                    "geom.xyz",
                    self.basis,
                    n_states,
                    n_inactive,
                    scf_only=True,
                    couplings=False,
                    integrals=integrals,
                    scf_keywords=keywords,
                )
            )
            try:
                self._run(folder, "scf.input")
                return name
            except MolcasError as exc:
                errors.append(f"{name or 'default'} SCF: {exc}")
        raise MolcasError("; ".join(errors))

    def _guard_problem(self, out: CasscfOutput) -> str:
        """Why the active space is not the intended one, "" when it is."""
        low, high = self.min_occupation, 2.0 - self.min_occupation
        problems = []
        if np.any(out.occupations < low) or np.any(out.occupations > high):
            problems.append(
                f"active natural occupations {np.round(out.occupations, 4).tolist()} outside "
                f"[{low}, {high}]"
            )
        if np.any(out.pi_weights < self.min_pi_weight):
            problems.append(
                f"active orbitals' pi weight on atoms {self.active_atoms} "
                f"{np.round(out.pi_weights, 3).tolist()} below {self.min_pi_weight}"
            )
        return "; ".join(problems)

    def compute(self, numbers: np.ndarray, positions: np.ndarray, n_states: int) -> LabelResult:
        """Energies (eV), forces (eV/Angstrom) and, with ``couplings``, non-adiabatic couplings
        (1/Angstrom) of S0 .. S(n_states-1); failures are returned, never raised."""
        numbers, positions = check_geometry(numbers, positions)
        begin = time.perf_counter()
        n_atoms = len(numbers)
        if not 1 <= n_states <= 3:
            return LabelResult.failure(
                n_atoms, n_states, f"SA-CASSCF(2,2) has 3 singlet roots; asked for {n_states}"
            )
        for atom in self.active_atoms:
            if not 0 <= atom < n_atoms:
                return LabelResult.failure(
                    n_atoms, n_states, f"active atom {atom} is outside the {n_atoms} atoms"
                )
        first, second = np.triu_indices(n_atoms, 1)
        distances = np.linalg.norm(positions[first] - positions[second], axis=1)
        if np.any(distances < MIN_DISTANCE):
            k = int(np.argmin(distances))
            return LabelResult.failure(
                n_atoms,
                n_states,
                f"atoms {first[k]} and {second[k]} are {distances[k]:.4f} "
                f"Angstrom apart (< {MIN_DISTANCE})",
            )
        integrals = Integrals()
        try:
            return self._label(numbers, positions, n_states, begin, integrals)
        finally:
            integrals.close()

    def _label(self, numbers, positions, n_states, begin, integrals) -> LabelResult:
        n_atoms = len(numbers)
        start, rmsd = self._start_orbitals(numbers, positions)
        if self._screens(start, rmsd):
            return self._screened(numbers, positions, n_states, start, rmsd, begin, integrals)
        messages: list[str] = []
        starts = [start, None] if start is not None else [None]
        runs = self._runs(numbers, positions, n_states, starts, rmsd, True, messages, integrals)
        found = next(runs, None)
        if found is None:
            return self._failure(n_atoms, n_states, messages, begin)
        out, how, folder = found
        if messages:
            how["retried_after"] = messages[0]
        self._remember(numbers, positions, folder / "job.RasOrb")
        shutil.rmtree(folder, ignore_errors=True)
        return self._result(out, n_atoms, n_states, time.perf_counter() - begin, how)

    def _runs(self, numbers, positions, n_states, starts, rmsd, gradients, messages, integrals):
        """For each start in turn (followed orbitals, or None: fresh) that succeeds:
        (output, its meta, folder); each failure appends its reason to ``messages``."""
        for orbitals in starts:
            try:
                out, folder = self._attempt(
                    numbers, positions, n_states, orbitals, gradients, integrals
                )
            except _AttemptFailed as exc:
                messages.append(f"{_how(orbitals)}: {exc}")
                continue
            how = _start_meta(orbitals, rmsd)
            if out.rhf:
                how["rhf"] = out.rhf
            yield out, how, folder

    def _attempt(self, numbers, positions, n_states, orbitals, gradients, integrals):
        """One job in a fresh temporary folder, checked by the guard: (output, folder); a
        failure keeps the logs (``keep_failed``), removes the folder and raises
        :class:`_AttemptFailed`."""
        folder = Path(tempfile.mkdtemp(prefix="fusionff-molcas-"))
        try:
            out = self._job(folder, numbers, positions, n_states, orbitals, gradients, integrals)
            problem = self._guard_problem(out)
            if problem:
                raise MolcasError(problem)
        except (MolcasError, OSError, ValueError, KeyError) as exc:
            self._keep(folder, self._failed_jobs)
            self._failed_jobs += 1
            shutil.rmtree(folder, ignore_errors=True)
            raise _AttemptFailed(str(exc)) from exc
        return out, folder

    def _screened(self, numbers, positions, n_states, start, rmsd, begin, integrals) -> LabelResult:
        """``both_starts``: RASSCF alone from the followed and from a fresh start (and from
        the next-nearest neighbour's orbitals when one of the two fails), then the
        gradients and couplings from the converged orbitals of the lowest state average (the
        screens on RICD integrals with ``screen_integrals="ricd"``, the gradients always on
        exact ones)."""
        n_atoms = len(numbers)
        messages: list[str] = []
        ricd = self.screen_integrals == "ricd"
        screen_integrals = Integrals(ricd=True) if ricd else integrals
        try:
            screens = [
                (float(np.mean(out.energies)), how, folder)
                for out, how, folder in self._runs(
                    numbers,
                    positions,
                    n_states,
                    (start, None),
                    rmsd,
                    False,
                    messages,
                    screen_integrals,
                )
            ]
            first = self._neighbour_positions(start) if len(screens) == 1 else None
            if first is not None:  # one start failed: screen the next-nearest neighbour
                second, second_rmsd = self._start_orbitals(numbers, positions, skip=first)
                if second is not None:
                    for out, _, folder in self._runs(
                        numbers, positions, n_states, (second,), second_rmsd, False,
                        messages, screen_integrals,
                    ):  # fmt: skip
                        how = {"start": "second neighbour", "follow_rmsd": round(second_rmsd, 4)}
                        screens.append((float(np.mean(out.energies)), how, folder))
        finally:
            if ricd:
                screen_integrals.close()
        try:
            if not screens:
                return self._failure(n_atoms, n_states, messages, begin)
            average, how, chosen = min(screens, key=lambda item: item[0])
            averages = {h["start"]: a * HARTREE_TO_EV for a, h, _ in screens}
            how["screen_state_averages_eV" if ricd else "state_averages_eV"] = averages
            if messages:
                how["failed_start"] = messages[0]
            out, folder = self._gradients_from(
                numbers,
                positions,
                n_states,
                (chosen / "job.RasOrb", how["start"], None if ricd else average * HARTREE_TO_EV),
                messages,
                integrals,
            )
            if out is None:
                return self._failure(n_atoms, n_states, messages, begin)
            if ricd:
                how["exact_relaxation_eV"] = round(
                    (out.first_average - float(np.mean(out.energies))) * HARTREE_TO_EV, 6
                )
        finally:
            for *_, used in screens:
                shutil.rmtree(used, ignore_errors=True)
        self._remember(numbers, positions, folder / "job.RasOrb")
        shutil.rmtree(folder, ignore_errors=True)
        return self._result(out, n_atoms, n_states, time.perf_counter() - begin, how)

    def energies(
        self,
        numbers: np.ndarray,
        positions: np.ndarray,
        n_states: int,
        ricd: bool = False,
        orbitals: str | Path | None = None,
        save_orbitals: str | Path | None = None,
    ) -> tuple[np.ndarray, dict]:
        """SA-CASSCF energies (eV, absolute) of S0 .. S(n_states-1) at one geometry (Angstrom),
        RASSCF alone, checked by the active-space guard: no gradients, nothing followed
        automatically and nothing stored. Meant for comparing levels (another basis, RICD
        integrals with ``ricd``) at fixed geometries for a fraction of a label's cost, and
        for comparing starts: by default a fresh start (RHF orbitals, active pair chosen as
        for any fresh start); ``orbitals`` (an INPORB file, e.g. ``save_orbitals`` of a
        neighbouring geometry) starts RASSCF from those instead, as orbital following does.
        ``save_orbitals``: copy the converged orbitals to this path (to carry a solution
        along a path of geometries). Returns the energies and what the job saw
        (``occupations``, ``pi_weights``, ``iterations``). Raises :class:`MolcasError`
        naming the cause when the job or the guard fails."""
        numbers, positions = check_geometry(numbers, positions)
        if orbitals is not None and not Path(orbitals).is_file():
            raise MolcasError(f"start orbitals {orbitals}: no such file")
        start = None if orbitals is None else Path(orbitals)
        integrals = Integrals(ricd=ricd)
        try:
            out, folder = self._attempt(numbers, positions, n_states, start, False, integrals)
        except _AttemptFailed as exc:
            what = "fresh-start RASSCF" if start is None else f"RASSCF from {start}"
            raise MolcasError(f"{what} at {self.basis}: {exc}") from exc
        finally:
            integrals.close()
        try:
            if save_orbitals is not None:
                shutil.copyfile(folder / "job.RasOrb", save_orbitals)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        seen = {
            "occupations": np.round(out.occupations, 6).tolist(),
            "pi_weights": np.round(out.pi_weights, 6).tolist(),
            "iterations": out.iterations,
        }
        return np.asarray(out.energies, dtype=np.float64) * HARTREE_TO_EV, seen

    def audit(
        self,
        numbers: np.ndarray,
        positions: np.ndarray,
        old: LabelResult,
        tolerance: float = AUDIT_TOLERANCE_EV,
    ) -> LabelResult:
        """Check a stored label against a fresh start, at about a third of a label's cost.

        SA-CASSCF minimises the state average, so a fresh-start solution (RHF orbitals, active
        pair chosen as for any fresh start) whose state average lies more than ``tolerance``
        eV below that of ``old`` (energies eV, forces eV/Angstrom, couplings 1/Angstrom, as
        stored) shows that the stored label is a higher solution: the label is then replaced
        by the fresh solution's (gradients and couplings from its orbitals; meta ``audit``:
        ``"replaced"``). Otherwise ``old`` is returned unchanged (``"confirmed"``): it is the
        lower of the two, the criterion of ``both_starts``. Both averages are in the meta
        (eV). A failed fresh start or gradient job is a failed result (neither confirmed nor
        replaced). The orbital store is not touched."""
        numbers, positions = check_geometry(numbers, positions)
        begin = time.perf_counter()
        n_atoms, n_states = len(numbers), len(old.energies)
        if not old.ok or not np.all(np.isfinite(old.energies)):
            return LabelResult.failure(n_atoms, n_states, "audit: the stored label is not ok")
        old_average = float(np.mean(old.energies))
        integrals = Integrals()
        messages: list[str] = []
        try:
            screen = next(
                self._runs(numbers, positions, n_states, [None], 0.0, False, messages, integrals),
                None,
            )
            if screen is None:
                return self._failure(n_atoms, n_states, messages, begin)
            fresh, _, folder = screen
            fresh_average = float(np.mean(fresh.energies)) * HARTREE_TO_EV
            how = {
                "audit_state_averages_eV": {"stored": old_average, "fresh": fresh_average},
                "audit_tolerance_eV": tolerance,
            }
            try:
                if fresh_average >= old_average - tolerance:
                    return replace(
                        old,
                        seconds=time.perf_counter() - begin,
                        meta=dict(old.meta or {}) | how | {"audit": "confirmed"},
                    )
                out, gradient_folder = self._gradients_from(
                    numbers,
                    positions,
                    n_states,
                    (folder / "job.RasOrb", "fresh", fresh_average),
                    messages,
                    integrals,
                )
            finally:
                shutil.rmtree(folder, ignore_errors=True)
            if out is None:
                return self._failure(n_atoms, n_states, messages, begin)
            shutil.rmtree(gradient_folder, ignore_errors=True)
        finally:
            integrals.close()
        how |= {"audit": "replaced", "start": "fresh"}
        return self._result(out, n_atoms, n_states, time.perf_counter() - begin, how)

    def _gradients_from(self, numbers, positions, n_states, solution, messages, integrals):
        """The gradient (and coupling) job from a screened solution, ``solution`` = (its
        orbital file, its name, its state average in eV, or None for a screen on other
        integrals than the gradient job's): (output, folder), or (None, None) after appending
        to ``messages`` why it failed: the job itself, or a RASSCF that reconverged to a state
        average more than ``SCREEN_TOLERANCE_EV`` away (gradients of another solution than the
        one chosen); with ``average`` None, one whose state average fell by more than
        ``RICD_SCREEN_TOLERANCE_EV`` during its RASSCF."""
        orbitals, name, average = solution
        try:
            out, folder = self._attempt(numbers, positions, n_states, orbitals, True, integrals)
        except _AttemptFailed as exc:
            messages.append(f"gradients from the {name} solution: {exc}")
            return None, None
        final = float(np.mean(out.energies)) * HARTREE_TO_EV
        if average is None:
            reference, tolerance = out.first_average * HARTREE_TO_EV, RICD_SCREEN_TOLERANCE_EV
            what = "from its first RASSCF iteration (RICD-screened orbitals, exact integrals)"
        else:
            reference, tolerance, what = average, SCREEN_TOLERANCE_EV, "from the screen"
        moved = final - reference
        if not abs(moved) <= tolerance:  # NaN (no iteration table) fails too
            shutil.rmtree(folder, ignore_errors=True)
            messages.append(
                f"the gradient job left the screened {name} solution: state average "
                f"moved by {moved:+.4f} eV {what} (> {tolerance} eV)"
            )
            return None, None
        return out, folder

    def _failure(self, n_atoms, n_states, messages, begin) -> LabelResult:
        error = "; ".join(
            f"S{k}: SA-CASSCF failed ({' / '.join(messages)})" for k in range(n_states)
        )
        return LabelResult.failure(n_atoms, n_states, error, time.perf_counter() - begin)

    def _remember(self, numbers, positions, orbitals: Path) -> None:
        """Keep the converged orbitals for the next structures (store and this process)."""
        if self.store_folder is not None:
            if self._store is None:
                self._store = OrbitalStore(self.store_folder)
            self._store.save(numbers, positions, orbitals)
        self._recent.save(numbers, positions, orbitals)

    def _keep(self, folder: Path, attempt: int) -> None:
        """Copy a failed job's logs to ``keep_failed``."""
        if self.keep_failed is None:
            return
        target = Path(self.keep_failed) / f"{folder.name}-{attempt}"
        target.mkdir(parents=True, exist_ok=True)
        for name in ("geom.xyz", "scf.input", "scf.log", "job.input", "job.log", "start.orb"):
            if (folder / name).exists():
                shutil.copyfile(folder / name, target / name)

    def _result(
        self, out: CasscfOutput, n_atoms: int, n_states: int, seconds: float, how: dict
    ) -> LabelResult:
        """The labels in the dataset's units and layout."""
        forces = -out.gradients * (HARTREE_TO_EV / BOHR_TO_ANGSTROM)  # (S, N, 3)
        nacs = None
        if self.couplings:
            nacs = np.zeros((n_atoms, n_states, n_states, 3))
            for (i, j), vector in out.nacs.items():
                d = _fix_sign(vector / BOHR_TO_ANGSTROM)
                nacs[:, i, j] = d
                nacs[:, j, i] = -d
        return LabelResult(
            energies=out.energies * HARTREE_TO_EV,
            forces=np.ascontiguousarray(forces.transpose(1, 0, 2)),
            success=np.ones(n_states, dtype=bool),
            seconds=seconds,
            nacs=nacs,
            meta=how
            | {
                "rasscf_iterations": out.iterations,
                "active_occupations": np.round(out.occupations, 5).tolist(),
                "active_pi_weights": np.round(out.pi_weights, 4).tolist(),
            },
        )
