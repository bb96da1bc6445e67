"""Interrupting a training job at a chosen step, the same on a fast machine as on a slow one.

The epoch loop polls `Run.cancel_requested` once before every step (pof.training.loop.fit).
These helpers run `python -m pof ...` in a child whose poll is replaced: at the chosen poll the
job either kills itself (SIGKILL: no handler runs, as with the OOM killer) or holds still until
its cancel file appears, so a test acts on a job that is exactly there, however fast it trains.
"""

import os
import subprocess
import sys
import time
from pathlib import Path

from conftest import ROOT

_CHILD = """
import os, signal, sys, time
from pathlib import Path
from pof.cli import main
from pof.runs.run import Run

action, at, marker = sys.argv[1], int(sys.argv[2]), sys.argv[3]
polls = 0
on_disk = Run.cancel_requested

def cancel_requested(run):
    global polls
    polls += 1
    if polls == at and action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if polls == at and action == "hold":
        Path(marker).touch()
        while not on_disk(run):
            time.sleep(0.01)
    return on_disk(run)

Run.cancel_requested = cancel_requested
sys.exit(main(sys.argv[4:]))
"""


def _child(action: str, step: int, marker: Path, argv) -> list[str]:
    return [sys.executable, "-c", _CHILD, action, str(step), str(marker), *map(str, argv)]


def killed_before_step(step: int, *argv, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run `python -m pof *argv` and SIGKILL it just before its `step`-th step (1-based, counted
    over the whole run); returns the finished process."""
    return subprocess.run(
        _child("kill", step, Path(os.devnull), argv),
        cwd=ROOT,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def held_before_step(step: int, marker: Path, *argv) -> subprocess.Popen:
    """Start `python -m pof *argv`; just before its `step`-th step it creates `marker` and waits
    until a cancel is requested (then it stops as a cancelled job does)."""
    return subprocess.Popen(
        _child("hold", step, marker, argv),
        cwd=ROOT,
        env=dict(os.environ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_file(path: Path, proc: subprocess.Popen, timeout: float = 180) -> None:
    t0 = time.time()
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.time() - t0 < timeout, "timed out"
        time.sleep(0.02)
