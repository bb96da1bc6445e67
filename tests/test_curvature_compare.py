"""The Compare page's curvature-over-time figures, called directly on made-up series."""

import math

import pytest

from app.figures import (
    layer_ratio_panels,
    layer_trace_panels,
    ratio_heatmaps,
    top_eigenvalue_over_time,
)
from app.figures.curvature_compare import layer_names, trace_ratios


def _point(epoch, traces, top=2.0, last=1.0, threshold=100.0, converged=True):
    """A series point as CurvaturePoint.to_dict() writes it; traces: {layer: (trace, stderr)}."""
    return {
        "step": int(epoch * 10),
        "epoch": float(epoch),
        "lr": 0.01,
        "threshold": threshold,
        "top_eigenvalue": top,
        "top_residual": 0.01,
        "top_converged": converged,
        "trace": sum(t for t, _ in traces.values()),
        "trace_stderr": 0.1,
        "layers": [
            {"name": n, "kind": "linear", "n_params": 10, "trace": t, "trace_stderr": se}
            for n, (t, se) in traces.items()
        ],
        "last_layer_top": last,
        "last_layer_trace": 2 * last,
    }


POF = [
    _point(0, {"a": (10.0, 1.0), "b": (4.0, 0.5), "noisy": (0.1, 0.2)}, top=3.0),
    _point(1, {"a": (8.0, 1.0), "b": (4.0, 0.5), "noisy": (0.3, 0.2)}, top=2.5),
    _point(2, {"a": (5.0, 0.5), "b": (4.4, 0.5), "noisy": (0.0, 0.2)}, top=2.0, converged=False),
]
CONTROL = [  # a run that trained the classifier too: one more layer
    _point(0, {"a": (10.0, 1.0), "b": (4.0, 0.5), "classifier": (2.0, 0.1)}),
    _point(2, {"a": (11.0, 1.0), "b": (4.0, 0.5), "classifier": (1.0, 0.1)}),
]
RUNS = {"pof (pof)": POF, "ft (finetune)": CONTROL, "untracked (sam)": []}


def test_ratios_to_the_start_carry_their_propagated_standard_error():
    xs, rs, es = trace_ratios(POF, "a")
    assert xs == [0.0, 1.0, 2.0] and rs == pytest.approx([1.0, 0.8, 0.5])
    # se(r) = sqrt((se_e / t0)^2 + (r se_0 / t0)^2)
    assert es[1] == pytest.approx(math.sqrt(0.1**2 + (0.8 * 0.1) ** 2))
    # a starting trace within two standard errors of zero has no ratio
    assert trace_ratios(POF, "noisy")[1] == [None, None, None]
    assert layer_names(RUNS) == ["a", "b", "noisy", "classifier"]


def test_one_panel_per_layer_with_a_band_and_a_line_per_run():
    fig = layer_trace_panels(RUNS)
    titles = [a.text for a in fig.layout.annotations]
    assert titles == ["a", "b", "noisy", "classifier"]
    lines = [t for t in fig.data if t.mode == "lines+markers"]
    bands = [t for t in fig.data if t.fill == "toself"]
    # pof: 3 layers, the control: 3; each line with its ± se band
    assert len(lines) == 6 and len(bands) == 6
    a_pof = next(t for t in lines if t.name == "pof (pof)" and t.xaxis == "x")
    assert list(a_pof.y) == [10.0, 8.0, 5.0]
    band = next(t for t in bands if t.name == "pof (pof) ± se" and t.xaxis == "x")
    assert list(band.y) == [11.0, 9.0, 5.5, 4.5, 7.0, 9.0]  # upper, then lower reversed
    assert sum(t.showlegend is not False for t in lines) == 2  # one legend entry per run


def test_ratio_panels_show_one_at_the_start_and_a_unit_line():
    fig = layer_ratio_panels(RUNS)
    a_pof = next(t for t in fig.data if t.name == "pof (pof)" and t.xaxis == "x")
    assert list(a_pof.y) == pytest.approx([1.0, 0.8, 0.5])
    cls = next(t for t in fig.data if t.name == "ft (finetune)" and t.mode and t.xaxis == "x4")
    assert list(cls.y) == pytest.approx([1.0, 0.5])
    assert {s.y0 for s in fig.layout.shapes} == {1.0} and len(fig.layout.shapes) == 4
    titles = [a.text for a in fig.layout.annotations]
    assert titles == ["a", "b", "noisy (no value)", "classifier"]  # no ratio: said in its title


def test_heatmaps_per_run_share_one_log_scale_and_say_each_ratio_with_its_error():
    fig = ratio_heatmaps(RUNS)
    assert [t.name for t in fig.data] == ["pof (pof)", "ft (finetune)"]  # no empty heatmap
    pof = fig.data[0]
    assert list(pof.y) == ["a", "b", "noisy", "classifier"] and list(pof.x) == ["0", "1", "2"]
    assert pof.z[0] == pytest.approx([0.0, math.log2(0.8), -1.0])
    assert list(pof.z[2]) == [None, None, None] and list(pof.text[2]) == ["", "", ""]
    assert pof.text[0][2].startswith("0.50 ± ")
    assert fig.layout.coloraxis.cmid == 0 and fig.data[1].coloraxis == "coloraxis"
    # layer names are categories on every panel, even numbered ones ("1", "3")
    numbered = ratio_heatmaps({"seq": [_point(0, {"1": (2.0, 0.1)}), _point(1, {"1": (1.0, 0.1)})]})
    assert numbered.layout.yaxis.type == "category" and list(numbered.data[0].y) == ["1"]


def test_top_eigenvalue_over_time_with_threshold_last_layer_and_residuals():
    fig = top_eigenvalue_over_time(RUNS)
    names = [t.name for t in fig.data]
    assert names == [
        "pof (pof): λ_max",
        "pof (pof): last layer (exact)",
        "pof (pof): threshold",
        "ft (finetune): λ_max",
        "ft (finetune): last layer (exact)",
        "ft (finetune): threshold",
    ]
    top = fig.data[0]
    assert list(top.y) == [3.0, 2.5, 2.0] and list(top.error_y.array) == [0.01] * 3
    assert list(top.marker.symbol) == ["circle", "circle", "circle-open"]  # not converged
    assert fig.data[0].line.color != fig.data[3].line.color
    assert fig.layout.yaxis.type == "log"
    # the untracked run keeps its colour slot, so colours match the accuracy curves above
    assert fig.data[3].line.color == "#2ca02c"
