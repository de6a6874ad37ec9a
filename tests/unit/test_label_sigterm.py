"""SIGTERM during a parallel ``label()`` run stops the workers and keeps what was finished.

A job script (in a subprocess) labels 20 H2 molecules with ``workers=2`` and a fake backend
that records the pid of every worker that computes, takes 0.2 s per molecule except for
molecules 5 and 6, where it runs a 60 s child process (standing in for a long MOPAC run)
and records that child's pid too. Once both slow calculations are in flight the test sends
SIGTERM to the job and checks that:

- the job exits within a few seconds with status 128 + SIGTERM and logs how to resume;
- every worker process and every child process they started is gone (or a zombie) within
  5 s, i.e. nothing is left running as an orphan;
- the output opens with ``MultiStateDataset.open`` (no repair needed) and holds exactly the
  molecules 0..4 that finished before the signal;
- calling ``label`` again on the same input (fast backend, ``workers=2``) labels only the
  other 15 molecules and leaves the process's SIGTERM handler as it was.
"""

import importlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from fusionff.data.dataset import MultiStateDataset
from fusionff.labeling.runner import SOURCE_INDEX, label

N_MOLECULES = 20
SLOW = (5, 6)
MODULE = "fake_sigterm_backend"

BACKEND = f'''
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from ase import Atoms

from fusionff.labeling.backend import LabelResult, ReferenceBackend


def molecules():
    """H2 molecules, number i centred at x = 10 i Angstrom."""
    return [
        Atoms("H2", positions=[[10.0 * i, 0, 0], [10.0 * i + 0.74, 0, 0]])
        for i in range({N_MOLECULES})
    ]


class SleepyBackend(ReferenceBackend):
    def __init__(self, pid_dir, slow=(), seconds=0.2):
        self.pid_dir, self.slow, self.seconds = str(pid_dir), tuple(slow), seconds

    def compute(self, numbers, positions, n_states):
        pid_dir = Path(self.pid_dir)
        (pid_dir / f"worker-{{os.getpid()}}").touch()
        index = int(round(positions[0, 0] / 10.0))
        if index in self.slow:
            child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
            (pid_dir / f"child-{{child.pid}}").touch()
            child.wait()
        else:
            time.sleep(self.seconds)
        energies = np.arange(n_states, dtype=float)
        forces = np.zeros((len(numbers), n_states, 3))
        return LabelResult(energies, forces, np.ones(n_states, dtype=bool))

    def provenance(self):
        return {{"program": "sleepy", "version": "1", "keywords": "", "method": "sleep"}}
'''

JOB = f"""
import logging
import sys

from {MODULE} import SleepyBackend, molecules
from fusionff.labeling.runner import label

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    label(molecules(), SleepyBackend(sys.argv[2], slow={SLOW!r}), 1, sys.argv[1], workers=2)
"""


def _alive(pid):
    """True if ``pid`` exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc: it exists
    return stat[stat.rindex(")") + 2] != "Z"


def _started_here(pid, tmp_path):
    """Whether ``pid`` is (still) one of this test's workers or slow children, judged by its
    command line, so that a reused pid is never killed."""
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return False
    return str(tmp_path) in command or "time.sleep(60)" in command


def _pids(pid_dir, kind):
    return {int(p.name.split("-")[1]) for p in pid_dir.glob(f"{kind}-*")}


def _wait_for(condition, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def _stop_job(job, pid_dir, log_path):
    """SIGTERM ``job`` once the slow calculations run; check its exit and its processes."""
    started = _wait_for(lambda: len(_pids(pid_dir, "child")) == len(SLOW), 20)
    assert started, f"slow calculations never started: {list(pid_dir.iterdir())}"
    time.sleep(0.5)  # let the job record molecules 0..4
    job.send_signal(signal.SIGTERM)
    try:
        job.wait(timeout=10)
    except subprocess.TimeoutExpired:
        raise AssertionError("the job did not exit within 10 s of SIGTERM") from None
    log = log_path.read_text()
    assert job.returncode == 128 + signal.SIGTERM, log
    assert "run the same command again" in log, log
    started_pids = _pids(pid_dir, "worker") | _pids(pid_dir, "child")
    assert len(_pids(pid_dir, "worker")) == 2
    gone = _wait_for(lambda: not any(_alive(pid) for pid in started_pids), 5)
    assert gone, f"still running after SIGTERM: {[p for p in started_pids if _alive(p)]}"


def test_sigterm_stops_workers_and_keeps_finished_entries(tmp_path):
    (tmp_path / f"{MODULE}.py").write_text(textwrap.dedent(BACKEND))
    (tmp_path / "job.py").write_text(textwrap.dedent(JOB))
    pid_dir = tmp_path / "pids"
    pid_dir.mkdir()
    output = tmp_path / "out.h5"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path])}
    log_path = tmp_path / "job.log"
    with open(log_path, "w") as log_file:  # a file, not a pipe that orphans could hold open
        job = subprocess.Popen(
            [sys.executable, str(tmp_path / "job.py"), str(output), str(pid_dir)],
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    try:
        _stop_job(job, pid_dir, log_path)
    finally:  # leave nothing running, whatever failed
        if job.poll() is None:
            job.kill()
            job.wait()
        for pid in _pids(pid_dir, "worker") | _pids(pid_dir, "child"):
            if _alive(pid) and _started_here(pid, tmp_path):
                os.kill(pid, signal.SIGKILL)

    with MultiStateDataset.open(output) as dataset:
        assert sorted(entry.meta[SOURCE_INDEX] for entry in dataset) == list(range(SLOW[0]))

    sys.path.insert(0, str(tmp_path))
    try:
        fake = importlib.import_module(MODULE)
        handler = signal.getsignal(signal.SIGTERM)
        summary = label(
            fake.molecules(), fake.SleepyBackend(pid_dir, seconds=0.0), 1, output, workers=2
        )
        assert signal.getsignal(signal.SIGTERM) is handler
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop(MODULE, None)
    assert (summary.already_done, summary.ok, summary.failed) == (SLOW[0], 15, 0)
    with MultiStateDataset.open(output) as dataset:
        indices = sorted(entry.meta[SOURCE_INDEX] for entry in dataset)
    assert indices == list(range(N_MOLECULES))
