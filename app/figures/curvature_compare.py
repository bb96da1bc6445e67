"""Curvature over time, several runs side by side (the Compare page): post-trainings of one
checkpoint (PoF and its controls), each with its curvature series ({label: [point, ...]}, points as
pof.curvature.tracker.CurvaturePoint.to_dict() writes them, live or from checkpoints).

- layer_trace_panels: one small panel per layer, its Hessian block trace over epochs per run, with
  ± one standard error as a band;
- layer_ratio_panels: the same as ratios to the starting point (trace at epoch e / at epoch 0);
- ratio_heatmaps: those ratios as one heatmap per run (layers x epochs), the error in each cell;
- top_eigenvalue_over_time: the whole network's λ_max per run (error bar: its Lanczos residual),
  the exact last layer's, and the stability threshold of each run's rate.

Pure functions: data in, figure out.
"""

from __future__ import annotations

import math

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from analysis.uncertainty import ratio

RUN_COLORS = ("#d62728", "#2ca02c", "#9467bd", "#8c564b", "#ff7f0e", "#17becf")  # method_curves'
MAX_COLS = 4


def run_color(i: int) -> str:
    return RUN_COLORS[i % len(RUN_COLORS)]


def _rgba(hex_color: str, alpha: float) -> str:
    r, g, b = (int(hex_color[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def _num(v) -> float | None:
    return float(v) if isinstance(v, (int, float)) and math.isfinite(v) else None


def layer_names(runs: dict[str, list[dict]]) -> list[str]:
    """Every layer in network order: the first run's, then any that only later runs have (runs of
    different models may be compared)."""
    names: list[str] = []
    for points in runs.values():
        for p in points:
            names += [x["name"] for x in p.get("layers", []) if x.get("name") not in names]
    return names


def layer_series(points: list[dict], name: str) -> tuple[list, list, list]:
    """(epochs, traces, standard errors) of one layer over a run's points."""
    xs, ts, ses = [], [], []
    for p in points:
        row = next((x for x in p.get("layers", []) if x.get("name") == name), None)
        if row is None:
            continue
        xs.append(p["epoch"])
        ts.append(_num(row.get("trace")))
        ses.append(_num(row.get("trace_stderr")) or 0.0)
    return xs, ts, ses


def trace_ratios(points: list[dict], name: str) -> tuple[list, list, list]:
    """(epochs, trace(e) / trace(0), its standard error) of one layer. The error propagates both
    standard errors (independent probes at each point); a layer whose starting trace is not
    clearly positive (below two standard errors) has no ratio: None."""
    xs, ts, ses = layer_series(points, name)
    if not ts or ratio(ts[0], ses[0], ts[0], ses[0]) is None:
        return xs, [None] * len(xs), [None] * len(xs)
    found = [ratio(ts[0], ses[0], t, se) for t, se in zip(ts, ses, strict=True)]
    return xs, [r and r.value for r in found], [r and r.error for r in found]


def _grid(n: int) -> tuple[int, int]:
    cols = max(1, min(MAX_COLS, n))
    return -(-n // cols), cols


def _band(fig, xs, ys, errs, color, label, row, col) -> None:
    """A ± error band around a line (drawn as one closed polygon, not in the legend)."""
    pts = [(x, y, e) for x, y, e in zip(xs, ys, errs, strict=True) if y is not None and e]
    if len(pts) < 2:
        return
    upper = [y + e for _, y, e in pts]
    lower = [y - e for _, y, e in pts]
    px = [x for x, _, _ in pts]
    fig.add_trace(
        go.Scatter(
            x=px + px[::-1],
            y=upper + lower[::-1],
            fill="toself",
            fillcolor=_rgba(color, 0.18),
            mode="lines",
            line={"width": 0},
            hoverinfo="skip",
            legendgroup=label,
            showlegend=False,
            name=f"{label} ± se",
        ),
        row=row,
        col=col,
    )


def _panels(runs: dict[str, list[dict]], values, y_title: str, unit_line: float | None):
    names = layer_names(runs)
    rows, cols = _grid(len(names))
    titles = [
        name
        if any(v is not None for pts in runs.values() for v in values(pts, name)[1])
        else f"{name} (no value)"
        for name in names
    ]
    fig = make_subplots(
        rows=rows,
        cols=cols,
        subplot_titles=titles or ["no layers"],
        horizontal_spacing=0.06,
        vertical_spacing=min(0.12, 0.5 / max(rows, 1)),
    )
    for i, (label, points) in enumerate(runs.items()):
        color = run_color(i)
        for j, name in enumerate(names):
            row, col = j // cols + 1, j % cols + 1
            xs, ys, errs = values(points, name)
            if not xs:
                continue
            _band(fig, xs, ys, errs, color, label, row, col)
            fig.add_trace(
                go.Scatter(
                    x=xs,
                    y=ys,
                    mode="lines+markers",
                    line={"color": color},
                    marker={"size": 5},
                    name=label,
                    legendgroup=label,
                    showlegend=j == 0,
                    customdata=[e if e is not None else float("nan") for e in errs],
                    hovertemplate=f"{label}, {name}<br>epoch %{{x:g}}: %{{y:.4g}} ± "
                    "%{customdata:.2g}<extra></extra>",
                ),
                row=row,
                col=col,
            )
    if unit_line is not None:
        for j in range(len(names)):
            fig.add_hline(
                y=unit_line,
                line={"dash": "dot", "color": "#888", "width": 1},
                row=j // cols + 1,
                col=j % cols + 1,
            )
    fig.update_xaxes(title_text="epoch", row=rows)
    fig.update_yaxes(title_text=y_title, col=1)
    fig.update_layout(
        height=max(300, 230 * rows + 90),
        margin={"t": 80, "b": 40},
        legend={"orientation": "h", "y": 1.02 + 0.1 / rows, "yanchor": "bottom"},
    )
    return fig


def layer_trace_panels(runs: dict[str, list[dict]]) -> go.Figure:
    """One panel per layer: its Hessian block trace over epochs for each run, ± one standard
    error (Hutchinson) as a band."""
    return _panels(runs, layer_series, "block trace", None)


def layer_ratio_panels(runs: dict[str, list[dict]]) -> go.Figure:
    """One panel per layer: trace at epoch e / trace at epoch 0 for each run, ± its propagated
    standard error; the dotted line is 1 (unchanged). Below 1 the layer became flatter."""
    return _panels(runs, trace_ratios, "trace / trace at epoch 0", 1.0)


def ratio_heatmaps(runs: dict[str, list[dict]]) -> go.Figure:
    """One heatmap per run, layers (rows, network order) by epochs (columns), coloured by log2 of
    trace(e) / trace(0) on one shared diverging scale (blue: flatter, red: sharper); each cell says
    the ratio ± its standard error, and a blank cell has no ratio (a starting trace not clearly
    positive)."""
    runs = {label: points for label, points in runs.items() if points}
    names = layer_names(runs)
    labels = list(runs)
    fig = make_subplots(
        rows=1, cols=max(1, len(labels)), subplot_titles=labels or ["no runs"], shared_yaxes=True
    )
    for i, label in enumerate(labels):
        epochs = sorted({p["epoch"] for p in runs[label]})
        z, text = [], []
        for name in names:
            xs, rs, es = trace_ratios(runs[label], name)
            by_epoch = dict(zip(xs, zip(rs, es, strict=True), strict=True))
            zrow, trow = [], []
            for e in epochs:
                r, err = by_epoch.get(e, (None, None))
                zrow.append(math.log2(r) if r is not None and r > 0 else None)
                trow.append(f"{r:.2f} ± {err:.2f}" if r is not None else "")
            z.append(zrow)
            text.append(trow)
        fig.add_trace(
            go.Heatmap(
                z=z,
                x=[f"{e:g}" for e in epochs],
                y=names,
                text=text,
                texttemplate="%{text}",
                coloraxis="coloraxis",
                hovertemplate=f"{label}<br>%{{y}}, epoch %{{x}}: %{{text}}<extra></extra>",
                name=label,
            ),
            row=1,
            col=i + 1,
        )
        fig.update_xaxes(title_text="epoch", type="category", row=1, col=i + 1)
    # layer names are categories, even when they read as numbers ("1", "3" of an nn.Sequential)
    fig.update_yaxes(
        autorange="reversed", type="category", categoryorder="array", categoryarray=names
    )
    fig.update_layout(
        coloraxis={
            "colorscale": "RdBu_r",
            "cmid": 0.0,
            "colorbar": {
                "title": "trace ratio",
                "tickvals": [-2, -1, 0, 1, 2],
                "ticktext": ["¼", "½", "1", "2", "4"],
            },
        },
        height=max(300, 28 * len(names) + 160),
        margin={"t": 60, "b": 40},
    )
    return fig


def top_eigenvalue_over_time(
    runs: dict[str, list[dict]], thresholds: bool = True, last_layer: bool = True
) -> go.Figure:
    """λ_max of the whole network over epochs per run (solid; error bar: the Lanczos residual
    |Hv − λv|, which bounds the error of λ), the exact last layer's top eigenvalue (dotted) and the
    stability threshold of each run's learning rate (dashed). Log scale: the threshold is often
    orders of magnitude above λ_max in post-training."""
    fig = go.Figure()
    positive = True
    shown: list[float] = []
    for i, (label, points) in enumerate(runs.items()):
        color = run_color(i)
        pts = [p for p in points if _num(p.get("top_eigenvalue")) is not None]
        if not pts:
            continue  # a run without a series keeps its colour (its index) for the others
        xs = [p["epoch"] for p in pts]
        ys = [p["top_eigenvalue"] for p in pts]
        positive = positive and all(y > 0 for y in ys)
        shown += ys
        fig.add_trace(
            go.Scatter(
                x=xs,
                y=ys,
                mode="lines+markers",
                name=f"{label}: λ_max",
                legendgroup=label,
                line={"color": color},
                error_y={
                    "type": "data",
                    "array": [_num(p.get("top_residual")) or 0.0 for p in pts],
                    "visible": True,
                },
                marker={
                    "symbol": [
                        "circle" if p.get("top_converged", True) else "circle-open" for p in pts
                    ]
                },
                hovertemplate=f"{label}<br>epoch %{{x:g}}: λ_max %{{y:.5g}}<extra></extra>",
            )
        )
        last = [(p["epoch"], _num(p.get("last_layer_top"))) for p in points]
        last = [(x, y) for x, y in last if y is not None]
        if last_layer and last:
            fig.add_trace(
                go.Scatter(
                    x=[x for x, _ in last],
                    y=[y for _, y in last],
                    mode="lines+markers",
                    name=f"{label}: last layer (exact)",
                    legendgroup=label,
                    line={"color": color, "dash": "dot"},
                    marker={"symbol": "diamond", "size": 6},
                )
            )
            positive = positive and all(y > 0 for _, y in last)
            shown += [y for _, y in last]
        th = [(p["epoch"], _num(p.get("threshold"))) for p in points]
        th = [(x, y) for x, y in th if y is not None]
        if thresholds and th:
            fig.add_trace(
                go.Scatter(
                    x=[x for x, _ in th],
                    y=[y for _, y in th],
                    mode="lines",
                    name=f"{label}: threshold",
                    legendgroup=label,
                    line={"color": color, "dash": "dash", "width": 1},
                )
            )
            positive = positive and all(y > 0 for _, y in th)
            shown += [y for _, y in th]
    fig.update_xaxes(title_text="epoch (0 = the starting checkpoint)")
    if positive and shown:
        ticks = _ticks_125(min(shown), max(shown))
        fig.update_yaxes(
            title_text="eigenvalue", type="log", tickvals=ticks, ticktext=[f"{t:g}" for t in ticks]
        )
    else:
        fig.update_yaxes(title_text="eigenvalue")
    fig.update_layout(
        height=420,
        margin={"t": 60, "b": 40},
        legend={"orientation": "h", "y": 1.02, "yanchor": "bottom"},
    )
    return fig


def _ticks_125(lo: float, hi: float) -> list[float]:
    """1-2-5 ticks covering [lo, hi] on a log axis, each labelled with its value."""
    out = []
    for k in range(math.floor(math.log10(lo)) - 1, math.ceil(math.log10(hi)) + 1):
        out += [m * 10.0**k for m in (1, 2, 5) if lo / 1.5 <= m * 10.0**k <= hi * 1.5]
    return out
