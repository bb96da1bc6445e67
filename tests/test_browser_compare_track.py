"""Curvature over time on the Compare page, in a real browser: a PoF run tracked live beside an
untracked control of the same checkpoint, whose series the page computes from its checkpoints in
a background job (python -m analysis track) and then draws with the other."""

import shutil

import pytest
from conftest import run_cli
from test_browser import _settled_traces, _shot

TOP_NAMES_JS = """() => {
  const charts = [...document.querySelectorAll('.js-plotly-plot')];
  return charts.map(e => (e.data || []).map(t => t.name || ''));
}"""


@pytest.fixture(scope="module")
def made_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("made")
    run_cli(
        "pretrain", "--dataset", "digits", "--epochs", "1", "--arch-arg", "width=8",
        "--save-every", "1", "--out", root / "base", "--quiet", check=0,
    )  # fmt: skip
    ckpt = root / "base/checkpoints/final.safetensors"
    for method, extra in (
        ("pof", ("--track", "--track-samples", "64", "--track-probes", "4")),
        ("finetune-frozen", ()),
    ):
        run_cli(
            "post-train", ckpt, "--epochs", "3", "--lr", "0.05", "--method", method,
            "--save-every", "1", *extra, "--out", root / method, "--quiet", check=0,
        )  # fmt: skip
    return root


def test_compare_page_draws_curvature_over_time_and_computes_the_control_s(
    made_runs, server, page, tmp_path
):
    url, runs = server
    for name in ("pof", "finetune-frozen"):
        shutil.copytree(made_runs / name, runs / name)
    page.goto(f"{url}/compare?run=pof")
    page.get_by_text("Curvature over the post-training").wait_for(timeout=60_000)
    button = page.get_by_role("button", name="Compute curvature over time (1 run)")
    button.wait_for(timeout=30_000)
    # the curves, λ_max, the ratios, their heatmap and the traces: PoF's live series alone so far
    _settled_traces(page, 5)
    _shot(page, tmp_path, "track-1-live-only")
    button.click()
    page.wait_for_function(
        "() => [...document.querySelectorAll('.js-plotly-plot')].some(e => (e.data || [])"
        ".some(t => (t.name || '').startsWith('finetune-frozen (finetune-frozen): λ_max')))",
        timeout=300_000,
    )
    traces = _settled_traces(page, 5)
    assert len(traces) == 5, traces
    names = page.evaluate(TOP_NAMES_JS)
    top = next(n for n in names if "pof (pof): λ_max" in n)
    assert {"pof (pof): threshold", "finetune-frozen (finetune-frozen): threshold"} <= set(top)
    heat = names[3]
    assert sorted(heat) == ["finetune-frozen (finetune-frozen)", "pof (pof)"], names
    assert not page.get_by_role("button", name="Compute curvature over time (1 run)").count()
    assert (runs / "finetune-frozen/analysis/track/curvature.jsonl").exists()
    # computed on a probe subset of the live series' size, with as many probes
    page.get_by_text("from its 4 checkpoints, 64 probe examples, 4 probes").first.wait_for()
    _shot(page, tmp_path, "track-2-both")
