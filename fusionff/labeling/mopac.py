"""MOPAC as a reference backend, at the level R1 by default (docs: PHYSICS.md section 5).

R1 is AM1 with half-electron open-shell orbitals and a two-orbital CI,
``AM1 OPEN(2,2) C.I.=2 SINGLET 1SCF GRAD``, run once per state with ``ROOT=k`` (k = 1 for S0,
2 for S1, 3 for S2; OPEN(2,2) C.I.=2 has three singlet roots). The energy of a state is MOPAC's
heat of formation and its forces are minus MOPAC's analytic Cartesian gradient, both converted
from kcal/mol (per Angstrom) to eV (per Angstrom) with :data:`KCAL_PER_MOL_TO_EV`.

Numbers are read from the AUX file written with ``AUX(PRECISION=9)`` (about 14 significant
digits; the ``.out`` file prints the heat to 1e-5 kcal/mol and gradients to 1e-6 kcal/mol/A).
The ``.out`` file gives MOPAC's error messages and its rounded heat of formation, which must
agree with the AUX value: a run that disagrees or prints no final heat counts as failed.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from ase.data import chemical_symbols

from fusionff.labeling.backend import LabelResult, ReferenceBackend, check_geometry

KCAL_PER_MOL_TO_EV = 0.0433641
"""eV per kcal/mol, the factor of PHYSICS.md section 5."""

R1_KEYWORDS = "AM1 OPEN(2,2) C.I.=2 SINGLET 1SCF GRAD"
"""Keywords of the reference level R1, without the per-state ``ROOT=k``."""

_AUX_KEYWORD = "AUX(PRECISION=9)"
_REQUIRED = ("1SCF", "GRAD")
_RESERVED = ("ROOT", "AUX")

# One AUX entry: " NAME[:UNITS][[count]]=value", the value on the same line or the lines after.
_AUX_ENTRY = re.compile(r"^ ([A-Z][A-Z0-9_]*)(?::[^=\[]*)?(?:\[(\d+)\])?=(.*)$")
_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[EeDd][-+]?\d+)?")
_VERSION = re.compile(r"MOPAC\s+v(?:ersion\s+)?(\d[\w.]*)")
_FINAL_HEAT = re.compile(r"FINAL HEAT OF FORMATION\s*=\s*(\S+)\s+KCAL/MOL")
_ERROR_BOX_TITLE = "Error and normal termination messages reported in this calculation"


@dataclass(frozen=True)
class MopacAux:
    """What the labelling needs from a MOPAC AUX file (last values written).

    Attributes:
        version: MOPAC's version string, "" when absent.
        heat_of_formation: kcal/mol, None when absent.
        gradients: (N, 3) kcal/mol/Angstrom, None when absent or of the wrong length.
        coordinates: (N, 3) Angstrom, the geometry MOPAC used, None when absent.
    """

    version: str
    heat_of_formation: float | None
    gradients: np.ndarray | None
    coordinates: np.ndarray | None


@dataclass(frozen=True)
class MopacOut:
    """What the labelling needs from a MOPAC ``.out`` file.

    Attributes:
        version: MOPAC's version string, "" when absent.
        heat_of_formation: the FINAL HEAT OF FORMATION, kcal/mol (5 decimals), None when absent.
        errors: MOPAC's error messages, in order, without "JOB ENDED NORMALLY".
    """

    version: str
    heat_of_formation: float | None
    errors: list[str] = field(default_factory=list)


def _to_float(token: str) -> float:
    return float(token.replace("D", "E").replace("d", "e"))


def _aux_entries(text: str) -> dict[str, tuple[int | None, str]]:
    """Raw AUX entries: name -> (declared count or None, value text); the last one wins."""
    entries: dict[str, tuple[int | None, list[str]]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        match = _AUX_ENTRY.match(line)
        if match:
            name, count, rest = match.groups()
            current = [rest]
            entries[name] = (int(count) if count else None, current)
        elif line.lstrip().startswith("#") or not line.startswith(" "):
            current = None
        elif current is not None:
            current.append(line)
    return {name: (count, " ".join(parts)) for name, (count, parts) in entries.items()}


def _aux_array(entries: dict[str, tuple[int | None, str]], name: str) -> np.ndarray | None:
    """A numeric AUX array; None when absent, when a value overflowed (``***``) or when the
    number of values differs from the declared count."""
    if name not in entries:
        return None
    count, value = entries[name]
    if "*" in value:
        return None
    numbers = np.array([_to_float(t) for t in _NUMBER.findall(value)], dtype=np.float64)
    if count is not None and len(numbers) != count:
        return None
    return numbers


def parse_aux(text: str) -> MopacAux:
    """Parse a MOPAC AUX file (written with the ``AUX`` keyword)."""
    entries = _aux_entries(text)
    version = entries.get("MOPAC_VERSION", (None, ""))[1].strip()
    heat = _aux_array(entries, "HEAT_OF_FORMATION")
    gradients = _aux_array(entries, "GRADIENTS")
    coordinates = _aux_array(entries, "ATOM_X_OPT")
    if coordinates is None:
        coordinates = _aux_array(entries, "ATOM_X")
    return MopacAux(
        version=version,
        heat_of_formation=float(heat[0]) if heat is not None and len(heat) == 1 else None,
        gradients=gradients.reshape(-1, 3)
        if gradients is not None and gradients.size % 3 == 0
        else None,
        coordinates=coordinates.reshape(-1, 3)
        if coordinates is not None and coordinates.size % 3 == 0
        else None,
    )


def parse_out(text: str) -> MopacOut:
    """Parse a MOPAC ``.out`` file: version, final heat of formation and error messages."""
    version = _VERSION.search(text)
    heats = _FINAL_HEAT.findall(text)
    heat = None
    if heats:
        try:
            heat = float(heats[-1])
        except ValueError:  # an overflowed field such as "*********"
            heat = None
    errors: list[str] = []
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if _ERROR_BOX_TITLE in line:
            for box_line in lines[i + 1 :]:
                if box_line.strip().startswith("*" * 10):
                    break
                content = " ".join(box_line.strip().strip("*").split())
                if content and content != "JOB ENDED NORMALLY":
                    errors.append(content)
    return MopacOut(
        version=version.group(1) if version else "", heat_of_formation=heat, errors=errors
    )


def mopac_input(keywords: str, symbols: list[str], positions: np.ndarray, title: str) -> str:
    """The text of a MOPAC input file in Cartesian coordinates (Angstrom), all flagged 1 so
    that MOPAC prints the gradient of every coordinate."""
    lines = [keywords, title, ""]
    for symbol, (x, y, z) in zip(symbols, positions, strict=True):
        lines.append(f"{symbol:<2s} {x:17.10f} 1 {y:17.10f} 1 {z:17.10f} 1")
    return "\n".join(lines) + "\n"


def find_mopac(executable: str = "mopac") -> str | None:
    """Full path of the MOPAC executable, or None when it is not installed."""
    return shutil.which(executable)


class MopacBackend(ReferenceBackend):
    """MOPAC run once per state in a temporary directory.

    Args:
        keywords: MOPAC keywords without ``ROOT=`` and ``AUX`` (the backend adds both); must
            contain ``1SCF`` and ``GRAD``. Default: R1.
        timeout: wall-clock limit of one MOPAC run (one state), s; None for no limit.
        executable: name or path of the MOPAC program.

    Raises:
        FileNotFoundError: MOPAC is not installed.
        ValueError: keywords that contain ``ROOT``/``AUX`` or lack ``1SCF``/``GRAD``.
    """

    program = "MOPAC"

    def __init__(
        self, keywords: str = R1_KEYWORDS, timeout: float | None = 600.0, executable: str = "mopac"
    ) -> None:
        words = keywords.upper().split()
        for word in _REQUIRED:
            if word not in words:
                raise ValueError(f"MOPAC keywords must contain {word}: {keywords!r}")
        for word in words:
            if word.startswith(_RESERVED):
                raise ValueError(
                    f"MOPAC keyword {word!r} is set by the backend (ROOT per state, AUX for "
                    f"parsing); remove it from {keywords!r}"
                )
        path = find_mopac(executable)
        if path is None:
            raise FileNotFoundError(f"MOPAC executable {executable!r} not found on PATH")
        self.keywords = " ".join(keywords.split())
        self.timeout = timeout
        self.executable = path
        self._version: str | None = None

    def version(self) -> str:
        """MOPAC's version, from ``mopac -V`` (cached)."""
        if self._version is None:
            run = subprocess.run(
                [self.executable, "-V"], capture_output=True, text=True, timeout=60, check=False
            )
            match = re.search(r"version\s+(\S+)", run.stdout)
            self._version = match.group(1) if match else "unknown"
        return self._version

    def provenance(self) -> dict:
        """Program, version, keywords (without ROOT), states as ROOT=k and the method line."""
        return {
            "program": self.program,
            "version": self.version(),
            "keywords": self.keywords,
            "states": "state k (0-based) is ROOT=k+1",
            "method": f"{self.program} {self.keywords}",
        }

    def state_keywords(self, state: int) -> str:
        """The full keyword line of one state (0-based), as given to MOPAC."""
        return f"{self.keywords} ROOT={state + 1} {_AUX_KEYWORD}"

    def compute(self, numbers: np.ndarray, positions: np.ndarray, n_states: int) -> LabelResult:
        """Energies (S,) eV and forces (N, S, 3) eV/Angstrom of S0 .. S(n_states-1).

        A state that fails (MOPAC error, timeout, missing or non-finite output) is marked in
        ``success`` and named in ``error``; the other states are still computed.
        """
        start = time.perf_counter()
        numbers, positions = check_geometry(numbers, positions)
        n_atoms = len(numbers)
        if not np.all(np.isfinite(positions)):
            atom = int(np.argwhere(~np.isfinite(positions))[0, 0])
            return LabelResult.failure(
                n_atoms, n_states, f"non-finite position of atom {atom}: {positions[atom]}"
            )
        if np.any((numbers < 1) | (numbers >= len(chemical_symbols))):
            atom = int(np.argwhere((numbers < 1) | (numbers >= len(chemical_symbols)))[0, 0])
            return LabelResult.failure(
                n_atoms, n_states, f"atom {atom} has no element: atomic number {numbers[atom]}"
            )
        symbols = [chemical_symbols[z] for z in numbers]
        energies = np.full(n_states, np.nan)
        forces = np.full((n_atoms, n_states, 3), np.nan)
        success = np.zeros(n_states, dtype=bool)
        errors = []
        with tempfile.TemporaryDirectory(prefix="fusionff-mopac-") as workdir:
            for state in range(n_states):
                outcome = self._run_state(Path(workdir), state, symbols, positions)
                if isinstance(outcome, str):
                    errors.append(f"S{state}: {outcome}")
                    continue
                energies[state], forces[:, state] = outcome
                success[state] = True
        return LabelResult(
            energies=energies,
            forces=forces,
            success=success,
            error="; ".join(errors),
            seconds=time.perf_counter() - start,
        )

    def _run_state(
        self, workdir: Path, state: int, symbols: list[str], positions: np.ndarray
    ) -> tuple[float, np.ndarray] | str:
        """Run MOPAC for one state: (energy eV, forces (N, 3) eV/Angstrom) or an error."""
        stem = f"state{state}"
        text = mopac_input(self.state_keywords(state), symbols, positions, f"fusionff S{state}")
        (workdir / f"{stem}.mop").write_text(text)
        env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
        try:
            run = subprocess.run(
                [self.executable, f"{stem}.mop"],
                cwd=workdir,
                env=env,
                capture_output=True,
                text=True,
                timeout=self.timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return f"MOPAC timed out after {self.timeout} s"
        except OSError as exc:
            return f"MOPAC could not be started: {exc}"
        out_path, aux_path = workdir / f"{stem}.out", workdir / f"{stem}.aux"
        if not out_path.exists():
            tail = (run.stdout + run.stderr).strip()[-300:]
            return f"MOPAC wrote no output (exit status {run.returncode}): {tail}"
        out = parse_out(out_path.read_text(errors="replace"))
        if out.errors:
            return "MOPAC: " + " | ".join(out.errors)
        if run.returncode != 0:
            return f"MOPAC exit status {run.returncode}: {run.stderr.strip()[-300:]}"
        if not aux_path.exists():
            return "MOPAC wrote no AUX file"
        aux = parse_aux(aux_path.read_text(errors="replace"))
        return self._labels(out, aux, positions)

    @staticmethod
    def _labels(
        out: MopacOut, aux: MopacAux, positions: np.ndarray
    ) -> tuple[float, np.ndarray] | str:
        """Check parsed output against the input and convert it to (eV, eV/Angstrom)."""
        if out.heat_of_formation is None:
            return "no FINAL HEAT OF FORMATION in the MOPAC output"
        if aux.heat_of_formation is None or not np.isfinite(aux.heat_of_formation):
            return "no finite HEAT_OF_FORMATION in the AUX file"
        if abs(aux.heat_of_formation - out.heat_of_formation) > 1e-4:
            return (
                f"heat of formation in AUX ({aux.heat_of_formation} kcal/mol) differs from "
                f"the output ({out.heat_of_formation} kcal/mol)"
            )
        if aux.gradients is None or aux.gradients.shape != positions.shape:
            return f"no gradients of {len(positions)} atoms in the AUX file"
        if not np.all(np.isfinite(aux.gradients)):
            return "non-finite gradients in the AUX file"
        if aux.coordinates is not None and (
            aux.coordinates.shape != positions.shape
            or np.max(np.abs(aux.coordinates - positions)) > 1e-4
        ):
            return "MOPAC's coordinates differ from the input (reoriented or reordered)"
        energy = aux.heat_of_formation * KCAL_PER_MOL_TO_EV
        return energy, -aux.gradients * KCAL_PER_MOL_TO_EV
