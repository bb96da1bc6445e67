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


def _plot_traces(page) -> list[int]:
    """Traces in each Plotly chart on the page, read from the chart elements Plotly itself fills."""
    return page.evaluate(
        "[...document.querySelectorAll('.js-plotly-plot')].map(e => (e.data || []).length)"
    )


def _shot(page, tmp_path, name):
    """A screenshot of the whole page (Streamlit scrolls inside its own container, so grow the viewport)."""
    height = page.evaluate("document.querySelector('[data-testid=\"stMain\"]').scrollHeight")
    page.set_viewport_size({"width": 1300, "height": max(1200, min(height + 200, 16000))})
    page.screenshot(path=str(tmp_path / f"{name}.png"))
    if os.environ.get("POF_SCREENSHOTS"):
        shutil.copy(
            tmp_path / f"{name}.png", os.path.join(os.environ["POF_SCREENSHOTS"], f"{name}.png")
        )
    page.set_viewport_size({"width": 1300, "height": 1200})


def test_default_model_post_trained_watched_reloaded_and_compared(server, page, tmp_path):
    url, runs = server
    page.goto(url)
    page.get_by_text("Post-train a model with PoF").wait_for(timeout=60_000)
    page.get_by_text("94,186").wait_for()  # the model card of the default, bundled model
    assert page.get_by_label("Pretrained model").input_value().startswith("digits-cnn-small-sgd:")
    page.get_by_role("spinbutton", name="Epochs").fill("20")
    _shot(page, tmp_path, "1-choose")
    page.get_by_role("button", name="Start").click()
    page.get_by_text(re.compile(r"running: epoch \d+/20")).wait_for(timeout=60_000)
    _shot(page, tmp_path, "2-running")
    page.reload()  # the job lives on disk, not in the page; the URL names the run being watched
    page.get_by_text(re.compile(r"running: epoch \d+/20")).wait_for(timeout=30_000)
    first = page.get_by_text(re.compile(r"running: epoch")).inner_text()
    assert "step" in first
    page.get_by_text("eta*").wait_for()  # PoF's diagnostics
    page.get_by_text(re.compile(r"done in \d+ s")).wait_for(timeout=300_000)
    run = runs / "digits-cnn-small-sgd-pof-0"
    assert (run / "checkpoints" / "final.safetensors").exists()
    page.get_by_text(re.compile(r"running: epoch")).wait_for(state="detached", timeout=30_000)
    assert sum(_plot_traces(page)) >= 4  # loss and accuracy, train and test
    _shot(page, tmp_path, "3-done")

    page.get_by_role("link", name="Compare before and after").click()
    page.get_by_role("button", name="Compute 5 analyses").click()
    page.get_by_text(re.compile(r"Hessian spectra: ")).wait_for(timeout=30_000)
    _shot(page, tmp_path, "4-analysing")
    t0 = time.time()
    while (
        len(_plot_traces(page)) < 7
    ):  # curves, per layer, Hessian bars, density, slices, contours, interpolation
        assert time.time() - t0 < 600, f"charts so far: {_plot_traces(page)}"
        assert not page.get_by_text(re.compile(r"failed:")).count(), page.content()[:2000]
        time.sleep(2)
    page.get_by_role("tab", name="3-D surfaces").click()  # drawn only when opened
    page.wait_for_function(
        "[...document.querySelectorAll('.js-plotly-plot')].length >= 8", timeout=60_000
    )
    page.wait_for_timeout(1500)
    traces = _plot_traces(page)
    assert len(traces) == 8 and all(n >= 2 for n in traces), traces
    for part in ("layers", "hessian", "landscape-1d", "landscape-2d", "interpolation"):
        assert (run / "analysis" / part / "result.json").exists()
    _shot(page, tmp_path, "5-compare")
    page.reload()  # cached: every chart at once, nothing to compute
    page.get_by_text("Hessian", exact=True).wait_for(timeout=30_000)
    page.wait_for_timeout(1500)
    assert (
        len(_plot_traces(page)) == 7
        and not page.get_by_role("button", name=re.compile("Compute")).count()
    )
