"""End to end in a real browser: Debian's Chromium driven by Playwright against `streamlit run`."""
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from conftest import ROOT

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(tmp_path):
    port = _free_port()
    env = {**os.environ, "POF_RUNS": str(tmp_path / "runs")}
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app/main.py", "--server.port", str(port)],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
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
    from playwright.sync_api import sync_playwright
    if not os.path.exists(CHROMIUM):
        pytest.fail("Chromium is not installed: run `apt-get install -y chromium` (as .ci/run does).")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])
        pg = browser.new_page(viewport={"width": 1300, "height": 1200})
        yield pg
        browser.close()


def test_start_watch_reload_and_see_the_curves(server, page, tmp_path):
    url, runs = server
    page.goto(url)
    page.get_by_text("No runs yet").wait_for(timeout=60_000)
    page.get_by_label("Epochs").fill("40")
    page.get_by_label("Run name").fill("e2e")
    page.get_by_role("button", name="Start").click()
    progress = page.get_by_text(re.compile(r"running: epoch \d+/40"))
    progress.wait_for(timeout=60_000)
    page.screenshot(path=str(tmp_path / "running.png"), full_page=True)
    page.reload()  # the job lives on disk, not in the page
    page.get_by_text(re.compile(r"running: epoch \d+/40")).wait_for(timeout=30_000)
    first = page.get_by_text(re.compile(r"running: epoch")).inner_text()
    page.get_by_text(re.compile(r"done in \d+ s")).wait_for(timeout=180_000)
    assert (runs / "e2e" / "checkpoints" / "final.safetensors").exists()
    plot = page.locator(".js-plotly-plot").first
    plot.wait_for(timeout=30_000)
    assert page.locator(".js-plotly-plot .scatterlayer .trace").count() >= 4
    assert "step" in first
    page.get_by_text(re.compile(r"running: epoch")).wait_for(state="detached", timeout=30_000)
    page.screenshot(path=str(tmp_path / "done.png"), full_page=True)
    shutil.copy(tmp_path / "done.png", os.environ.get("POF_SCREENSHOTS", tmp_path) + "/done.png") \
        if os.environ.get("POF_SCREENSHOTS") else None
