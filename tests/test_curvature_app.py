"""Curvature over time in the app: the figure builders on a real tracked series, the Post-train
form's "Track curvature" starting a tracked job, and the Runs page drawing (or not) a run's series.
"""

import json
import shutil

import pytest
from conftest import ROOT, run_cli, wait_for_state
from streamlit.testing.v1 import AppTest

from app.curvature_view import TRACK_LABELS, in_field_labels
from app.figures.curvature import (
    captions,
    has_last_layer,
    last_layer_figure,
    layer_heatmap,
    top_eigenvalue_figure,
)
from pof.config import TrackConfig
from pof.curvature.tracker import stability_threshold
from pof.runs.run import Run
from pof.validate import ConfigError


@pytest.fixture(scope="module")
def tracked(tmp_path_factory):
    """A real tracked pre-training: the MLP on moons, one epoch on a cosine schedule (so η and the
    threshold move), a point every 2 steps on 64 examples with 4 probe vectors (about 10 s)."""
    out = tmp_path_factory.mktemp("tracked") / "moons-tracked"
    run_cli(
        *("pretrain", "--model", "mlp", "--dataset", "moons", "--epochs", "1"),
        *("--schedule", "cosine", "--track", "--track-every", "2"),
        *("--track-samples", "64", "--track-probes", "4", "--out", out, "--quiet"),
        check=0,
    )
    run = Run(out)
    return run, run.curvature(), run.curvature_setup()


def test_the_top_eigenvalue_figure_carries_the_series_its_residuals_and_the_threshold(tracked):
    _, points, setup = tracked
    assert len(points) >= 4 and setup["samples"] == 64
    fig = top_eigenvalue_figure(points, setup)
    lam, threshold = fig.data
    assert list(lam.x) == [p["epoch"] for p in points]
    assert list(lam.y) == [p["top_eigenvalue"] for p in points]
    assert list(lam.error_y.array) == [p["top_residual"] for p in points]  # each ± its own
    assert setup["threshold_rule"] in threshold.name
    assert list(threshold.y) == [p["threshold"] for p in points]
    # the line follows the schedule: each point's threshold is the rule at that point's η
    for p in points:
        expected = stability_threshold(p["lr"], setup["momentum"], True, setup["weight_decay"])
        assert p["threshold"] == pytest.approx(expected)
    assert threshold.y[-1] > 5 * threshold.y[0]  # cosine annealing raises it
    assert fig.layout.yaxis.type == "log"  # ... by more than a decade over λ_max
    assert fig.layout.xaxis.title.text == "epoch"


def test_the_last_layer_figure_and_the_layer_map_carry_the_real_numbers(tracked):
    _, points, setup = tracked
    assert has_last_layer(points, setup)
    ll = last_layer_figure(points, setup).data[0]
    assert list(ll.y) == [p["last_layer_top"] for p in points]
    heat = layer_heatmap(points, setup)
    names = [layer["name"] for layer in points[0]["layers"]]
    trace = heat.data[0]
    assert list(trace.y) == names and names[-1] == "classifier"  # network order
    assert heat.layout.yaxis.type == "category" and list(heat.layout.yaxis.categoryarray) == names
    for j, p in enumerate(points):
        for i, layer in enumerate(p["layers"]):
            assert trace.z[i][j] == layer["trace"]
            assert trace.customdata[i][j][0] == layer["trace_stderr"]  # ± in the hover
    assert "± %{customdata[0]" in trace.hovertemplate
    per = layer_heatmap(points, setup, "trace_per_param").data[0]
    first = points[0]["layers"][0]
    assert per.z[0][0] == pytest.approx(first["trace"] / first["n_params"])


def test_layer_names_that_look_like_numbers_stay_categories_in_network_order(tracked):
    _, points, setup = tracked
    renamed = json.loads(json.dumps(points))
    for p in renamed:
        for layer, name in zip(p["layers"], ["3", "1", "10"], strict=True):
            layer["name"] = name
    heat = layer_heatmap(renamed, setup)
    assert list(heat.data[0].y) == ["3", "1", "10"]
    assert heat.layout.yaxis.type == "category"
    assert list(heat.layout.yaxis.categoryarray) == ["3", "1", "10"]


def test_captions_say_what_is_drawn_and_why_a_last_layer_is_missing(tracked):
    _, points, setup = tracked
    text = captions(setup, points)
    assert "64 training examples" in text["top"] and setup["threshold_rule"] in text["top"]
    assert "full-batch" in text["top"] and "minibatches" in text["top"]
    assert "4 probe vectors" in text["layers"] and "standard error" in text["layers"]
    missing = {**setup, "missing_last_layer": "its output is not linear(features)"}
    assert not has_last_layer(points, missing)
    assert "its output is not linear(features)" in captions(missing, points)["last_layer"]


def test_a_config_error_names_the_form_fields_not_the_options():
    with pytest.raises(ConfigError) as e:
        TrackConfig(track=True, track_samples=10**6)
    text = in_field_labels(str(e.value), TRACK_LABELS)
    assert "'Probe subset'" in text and "track_samples" not in text


# --- the pages (AppTest) --------------------------------------------------------------------------


def _app():
    return AppTest.from_file(str(ROOT / "app" / "main.py"), default_timeout=60).run()


def test_track_curvature_on_the_post_train_form_starts_a_tracked_job(runs_root):
    at = _app()
    at.selectbox[0].set_value("moons-mlp").run()
    assert not [n for n in at.number_input if n.label == "Probe subset"]  # shown once ticked
    next(c for c in at.checkbox if c.label == "Track curvature").check().run()
    fields = {n.label: n for n in at.number_input}
    fields["Epochs"].set_value(1)
    fields["Steps between points"].set_value(3)
    fields["Probe subset"].set_value(48)
    fields["Probe vectors"].set_value(3)
    next(b for b in at.button if b.label == "Start").click().run()
    assert not at.exception and not at.error
    run = Run(runs_root / "moons-mlp-pof-0")
    wait_for_state(run)
    assert run.config()["config"]["tracking"] == {
        "track": True,
        "track_every": 3,
        "track_samples": 48,
        "track_probes": 3,
    }
    points = run.curvature()
    assert points and [p["step"] for p in points][:2] == [0, 3]
    at.run()  # the page watching the finished job draws its series
    assert any(s.value == "Curvature over training" for s in at.subheader)
    assert len(at.get("plotly_chart")) == 4  # training curves and the three curvature figures
    assert any("probe subset of 48 training examples" in c.value for c in at.caption)
    assert "classifier" in points[-1]["layers"][-1]["name"]  # frozen by PoF, measured all the same


def test_the_runs_page_draws_a_tracked_run_and_says_when_a_run_was_not_tracked(tracked, runs_root):
    run, points, _ = tracked
    shutil.copytree(run.path, runs_root / "tracked")
    at = _app().switch_page("views/runs.py").run()
    assert not at.exception
    assert any(s.value == "Curvature over training" for s in at.subheader)
    assert len(at.get("plotly_chart")) == 4
    assert any(f"{len(points)} points so far" in c.value for c in at.caption)

    untracked = runs_root / "untracked"
    shutil.copytree(run.path, untracked)
    for name in ("curvature.json", "curvature.jsonl"):
        (untracked / name).unlink()
    cfg = json.loads((untracked / "config.json").read_text())
    cfg["config"]["tracking"]["track"] = False
    (untracked / "config.json").write_text(json.dumps(cfg))
    at = _app().switch_page("views/runs.py").run()
    at.selectbox[-1].set_value(str(untracked)).run()
    assert not at.exception
    assert any("not tracked" in c.value for c in at.caption)
    assert len(at.get("plotly_chart")) == 1  # the training curves only
