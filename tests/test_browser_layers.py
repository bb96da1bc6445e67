"""The per-layer view in a real browser, on a model whose layers are named by number (an
nn.Sequential's "1" and "3"): the class-order placeholder and the cost estimate before Compute,
then a categorical layer axis and a table that shows every trace with its error and fits."""

import re
import textwrap
import time

import torch
from test_browser import _plot_traces, _shot
from torch import nn

SEQ_NET = textwrap.dedent("""
    import torch.nn as nn

    def build(num_classes=10):
        # an nn.Sequential: its layers are named "0", "1", "2", "3"
        return nn.Sequential(nn.Flatten(), nn.Linear(64, 12), nn.ReLU(), nn.Linear(12, num_classes))
""")


IDLE_JS = """() => {
  const app = document.querySelector('[data-testid="stApp"]');
  return app !== null && app.dataset.testScriptState === 'notRunning';
}"""


def _compute(page):
    """Click Compute once the page's script has finished (a click during a rerun can be lost)."""
    page.wait_for_function(IDLE_JS, timeout=60_000)
    page.get_by_role("button", name="Compute 1 analysis").click(timeout=60_000)
    started = page.get_by_text(re.compile(r"Per-layer sharpness: "))  # its progress, or done
    started.or_(page.get_by_text("Per layer: which layers are sharp")).first.wait_for(
        timeout=60_000
    )


def test_numbered_layers_are_categories_and_the_table_shows_errors(server, page, tmp_path):
    url, _ = server
    (tmp_path / "seqnet.py").write_text(SEQ_NET)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 12), nn.ReLU(), nn.Linear(12, 10))
    torch.save(model.state_dict(), tmp_path / "seq.pt")
    with torch.no_grad():
        model[3].weight.mul_(3.0)  # a sharper classifier: the second checkpoint
    torch.save(model.state_dict(), tmp_path / "sharper.pt")

    page.goto(url + "/inspect")
    page.get_by_text("Inspect checkpoints").wait_for(timeout=60_000)
    # on the bundled digits pair, the class-order example is digits' own class names
    box = page.get_by_role("textbox", name="Class order")
    box.wait_for(timeout=60_000)
    assert box.get_attribute("placeholder") == "0,1,2,3,…"

    page.get_by_text("a path on this server").first.click()
    path = page.get_by_role("textbox", name="Path of the model file")
    path.fill(str(tmp_path / "seq.pt"))
    path.press("Enter")
    arch = page.get_by_role("textbox", name="Architecture")
    arch.fill(f"{tmp_path / 'seqnet.py'}:build")
    arch.press("Enter")
    page.get_by_text("runs your own code").wait_for(timeout=30_000)
    samples = page.get_by_role("spinbutton", name=re.compile("Training samples"))
    samples.fill("200")
    samples.press("Enter")
    # before Compute: how long, as a range, from the products and a timed one
    estimate = page.get_by_text(re.compile(r"Per layer: about .+ to .+ Hessian-vector products"))
    estimate.wait_for(timeout=60_000)
    assert re.search(r"measured here on \d+ samples", estimate.inner_text())
    _compute(page)
    t0 = time.time()
    while len(_plot_traces(page)) < 1:
        assert time.time() - t0 < 300, page.content()[:2000]
        assert not page.get_by_text(re.compile(r"failed:")).count(), page.content()[:3000]
        time.sleep(1)
    page.get_by_text("Per layer: which layers are sharp").wait_for(timeout=30_000)
    layout = page.evaluate(
        "(() => { const l = document.querySelector('.js-plotly-plot').layout;"
        " return [l.xaxis.type, l.xaxis.categoryarray]; })()"
    )
    assert layout == ["category", ["1", "3"]], layout
    ticks = page.evaluate(
        "[...document.querySelectorAll('.js-plotly-plot .xtick text')].map(t => t.textContent)"
    )
    assert ticks == ["1", "3"], ticks  # not 1, 1.5, 2, 2.5, 3
    page.get_by_text("“≈ 0 (within noise)”: |trace| < 2 standard errors").wait_for()
    page.get_by_text("a negative Hutchinson estimate is noise").wait_for()
    # the table's cells: every trace with its standard error
    table = page.locator('[data-testid="stDataFrame"]')
    table.wait_for()
    cells = page.evaluate(
        "[...document.querySelectorAll('[data-testid=\"stDataFrame\"] td')].map(c => c.textContent)"
    )
    traces = [c for c in cells if " ± " in c]
    assert len(traces) == 2, cells
    _shot(page, tmp_path, "layers-numbered")

    # a second checkpoint: each ratio with its error bar, and the band where it is ≈ 1
    page.get_by_text("a path on this server").nth(1).click()
    second = page.get_by_role("textbox", name="Path of the model file").nth(1)
    second.fill(str(tmp_path / "sharper.pt"))
    second.press("Enter")
    _compute(page)
    page.wait_for_function(
        """() => {
            const plot = document.querySelector('.js-plotly-plot');
            return ((plot && plot.data) || []).some(t => t.name === 'sharper / seq');
        }""",
        timeout=300_000,
    )
    bar, band = page.evaluate(
        """(() => { const d = document.querySelector('.js-plotly-plot').data;
            return [d.find(t => t.name === 'sharper / seq'),
                    d.find(t => t.fill === 'tonexty')]; })()"""
    )
    assert len(bar["error_y"]["array"]) == 2 and all(e > 0 for e in bar["error_y"]["array"])
    assert band["name"] == "indistinguishable from 1 (± 2 se)"
    page.get_by_text("Ratios are second / first ± their error propagated from both").wait_for()
    # two traces and two ratios per layer, each with its error
    page.wait_for_function(
        "[...document.querySelectorAll('[data-testid=\"stDataFrame\"] td')]"
        ".filter(c => c.textContent.includes(' ± ')).length >= 6",
        timeout=30_000,
    )
    # it fits: no wider than the page's main column, and nothing to scroll sideways
    box = table.bounding_box()
    assert box["width"] <= page.locator('[data-testid="stMain"]').bounding_box()["width"]
    _shot(page, tmp_path, "layers-numbered-pair")
