"""Curvature over time in a real browser: tick "Track curvature" on the Post-train page, start a
post-training of the bundled moons MLP, watch its three curvature figures fill in while it runs,
then find the same figures on the Runs page."""

import re

from test_browser import _shot

from pof.runs.run import Run

FIGURES = ("curvature-top", "curvature-last", "curvature-layers")

# what one curvature chart shows: its traces' x values and names, and its y axis's type
CHART_JS = """key => {
  const e = document.querySelector(`.st-key-${key} .js-plotly-plot`);
  if (!e || !e.data || !e._fullLayout) return null;
  return {xs: e.data.map(t => (t.x || []).length), names: e.data.map(t => t.name || ''),
          yaxis: e._fullLayout.yaxis.type, ys: e.data.map(t => [...(t.y || [])].map(String))};
}"""


def _chart(page, key):
    return page.evaluate(CHART_JS, key)


def _wait_for_points(page, n, timeout=90_000):
    """Until every curvature figure is drawn and the λ_max chart holds at least n points."""
    page.wait_for_function(
        """([keys, n]) => keys.every(k => {
             const e = document.querySelector(`.st-key-${k} .js-plotly-plot`);
             return e && e.data && e.data.length > 0;
           }) && document.querySelector('.st-key-curvature-top .js-plotly-plot').data[0].x.length
                >= n""",
        arg=[list(FIGURES), n],
        timeout=timeout,
    )


def test_tracked_post_training_draws_its_curvature_live_on_both_pages(server, page, tmp_path):
    url, runs = server
    page.goto(url)
    page.get_by_text("Post-train a model with PoF").wait_for(timeout=60_000)
    page.get_by_label("Pretrained model").click()
    page.get_by_role("option", name=re.compile("^moons-mlp")).click()
    page.get_by_text("Not offered: digits").wait_for()  # the moons model's datasets
    page.get_by_text("Track curvature").click()
    page.get_by_role("spinbutton", name="Probe subset").fill("64")  # shown once ticked
    page.get_by_role("spinbutton", name="Steps between points").fill("2")
    page.get_by_role("spinbutton", name="Probe vectors").fill("4")
    page.get_by_role("spinbutton", name="Epochs").fill("6")
    _shot(page, tmp_path, "curvature-1-form")
    page.get_by_role("button", name="Start").click()

    run = Run(runs / "moons-mlp-pof-0")
    _wait_for_points(page, 2)  # drawn while the job runs, polled from its folder
    assert run.status().get("state") in ("queued", "running", "done")
    page.get_by_text(re.compile(r"done in \d+ s")).wait_for(timeout=120_000)
    points = run.curvature()
    assert run.config()["config"]["tracking"]["track"] and len(points) >= 6
    assert all(p["step"] % 2 == 0 for p in points)
    _wait_for_points(page, len(points), timeout=30_000)  # the last poll brought every point
    top = _chart(page, "curvature-top")
    assert top["xs"] == [len(points), len(points)] and "stability threshold" in top["names"][1]
    assert top["ys"][0] == [str(p["top_eigenvalue"]) for p in points]
    layers = _chart(page, "curvature-layers")
    assert layers["yaxis"] == "category"
    assert layers["ys"][0] == [lay["name"] for lay in points[0]["layers"]]
    page.get_by_text("with minibatches λ_max usually stays below it").first.wait_for()
    _shot(page, tmp_path, "curvature-2-posttrain")

    page.get_by_role("link", name="Runs").click()
    page.get_by_role("heading", name="Curvature over training").wait_for(timeout=60_000)
    _wait_for_points(page, len(points), timeout=60_000)
    assert _chart(page, "curvature-last")["xs"][0] == len(points)
    _shot(page, tmp_path, "curvature-3-runs")
