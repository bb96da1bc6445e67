import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _isolated_data_root(tmp_path, monkeypatch):
    """Caches and downloads go to a per-test folder, never the user's."""
    monkeypatch.setenv("POF_DATA", str(tmp_path / "data"))


@pytest.fixture
def runs_root(tmp_path, monkeypatch):
    """The app's runs folder ($POF_RUNS) for this test alone."""
    root = tmp_path / "runs"
    monkeypatch.setenv("POF_RUNS", str(root))
    return root


def run_cli(*args, check=None, timeout=300, **kw):
    """Run `python -m pof ...` as a real subprocess from the repository root."""
    env = dict(os.environ)
    proc = subprocess.run(
        [sys.executable, "-m", "pof", *map(str, args)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        **kw,
    )
    if check is not None:
        assert proc.returncode == check, (
            f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
        )
    return proc


def wait_for_state(run, states=("done",), timeout=180):
    """Poll a run folder until its state is one of `states`; returns the status."""
    t0 = time.time()
    while run.status().get("state") not in states:
        assert time.time() - t0 < timeout, run.status()
        time.sleep(0.2)
    return run.status()
