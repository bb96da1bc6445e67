import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


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


# --- the app in a real browser (tests/test_browser*.py) ------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(tmp_path):
    """`streamlit run app/main.py` on a free port with its own runs folder: (url, runs folder)."""
    port = _free_port()
    env = {**os.environ, "POF_RUNS": str(tmp_path / "runs")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app/main.py", "--server.port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://localhost:{port}"
    for _ in range(120):
        try:
            urllib.request.urlopen(url + "/_stcore/health", timeout=1)
            break
        except OSError:
            time.sleep(0.5)
    else:
        proc.kill()
        raise RuntimeError("streamlit did not start")
    yield url, tmp_path / "runs"
    os.killpg(proc.pid, 15)
    proc.wait(timeout=30)


@pytest.fixture
def page(tmp_path):
    """A page of headless Chromium, driven by Playwright."""
    from playwright.sync_api import sync_playwright

    if not os.path.exists(CHROMIUM):
        pytest.fail(
            "Chromium is not installed: run `apt-get install -y chromium` (as .ci/run does)."
        )
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        pg = browser.new_page(viewport={"width": 1300, "height": 1200})
        yield pg
        browser.close()
