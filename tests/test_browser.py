"""End to end in a real browser: Debian's Chromium driven by Playwright against `streamlit run`."""

import json
import os
import re
import shutil
import time


def _plot_traces(page) -> list[int]:
    """Traces in each Plotly chart on the page, read from the chart elements Plotly itself fills."""
    return page.evaluate(
        "[...document.querySelectorAll('.js-plotly-plot')].map(e => (e.data || []).length)"
    )


# the script run is over (Streamlit has removed what it no longer draws) and at least n charts are
# drawn, every one holding its data: only then is a count of the charts final
SETTLED_JS = """n => {
  const app = document.querySelector('[data-testid="stApp"]');
  const charts = [...document.querySelectorAll('.js-plotly-plot')];
  return app !== null && app.dataset.testScriptState === 'notRunning'
    && charts.length >= n && charts.every(e => (e.data || []).length > 0);
}"""


def _settled_traces(page, at_least: int, timeout: int = 60_000) -> list[int]:
    """_plot_traces once the page has settled with at least `at_least` charts drawn."""
    page.wait_for_function(SETTLED_JS, arg=at_least, timeout=timeout)
    return _plot_traces(page)


def _shot(page, tmp_path, name):
    """A screenshot of the whole page (Streamlit scrolls inside its own container, so grow the
    viewport)."""
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
    for field, value in (("Training samples", "200"), ("Test samples", "500")):  # fewer: faster
        box = page.get_by_role("spinbutton", name=re.compile(field))
        box.fill(value)
        box.press("Enter")
    page.get_by_text(re.compile(r"Per layer: about .* for each of 2 checkpoints")).wait_for()
    _shot(page, tmp_path, "4-settings")  # the fields, the per-layer estimate, the button
    page.get_by_role("button", name="Compute 5 analyses").click()
    page.get_by_text(re.compile(r"Hessian spectra: ")).wait_for(timeout=30_000)
    _shot(page, tmp_path, "4-analysing")
    t0 = time.time()
    # curves, per layer, Hessian bars, density, slices, contours, interpolation
    while len(_plot_traces(page)) < 7:
        assert time.time() - t0 < 600, f"charts so far: {_plot_traces(page)}"
        assert not page.get_by_text(re.compile(r"failed:")).count(), page.content()[:2000]
        page.wait_for_timeout(2000)  # a poll, not a settle: the loop re-checks the condition
    page.get_by_role("tab", name="3-D surfaces").click()  # drawn only when opened
    traces = _settled_traces(page, 8)
    assert len(traces) == 8 and all(n >= 2 for n in traces), traces
    for part in ("layers", "hessian", "landscape-1d", "landscape-2d", "interpolation"):
        assert (run / "analysis" / part / "result.json").exists()
        config = json.loads((run / "analysis" / part / "config.json").read_text())["config"]
        assert (config["samples"], config["eval_samples"]) == (200, 500), part
    _shot(page, tmp_path, "5-compare")
    page.reload()  # cached: every chart at once, nothing to compute
    page.get_by_text("Hessian", exact=True).wait_for(timeout=30_000)
    assert (
        len(_settled_traces(page, 7, timeout=30_000)) == 7
        and not page.get_by_role("button", name=re.compile(r"Compute \d+ analys")).count()
    )
