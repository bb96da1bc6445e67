"""Figure builders: pure functions, data in, Plotly figure out (testable without a browser)."""

from __future__ import annotations

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from analysis.results import as_result


def _typed(kind: str, reports: dict) -> dict:
    """{label: result} with each result of `kind`'s type (analysis.reports.KINDS); a dict in the
    result's to_dict() form (the Learn page's experiments) is read into that type."""
    from analysis.reports import KINDS

    return {label: as_result(KINDS[kind], r) for label, r in reports.items()}


def training_curves(epochs: list[dict], title: str = "") -> go.Figure:
    """Loss and accuracy per epoch, train and test, from a run's epoch records."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("loss", "accuracy"))
    # post-training also evaluates the whole training set with w0 each epoch: prefer it to the
    # running average
    train_key = "train_eval" if any("train_eval_loss" in r for r in epochs) else "train"
    for key, name, dash, color in (
        (train_key, "train", "dot", "#1f77b4"),
        ("test", "test", "solid", "#d62728"),
    ):
        rows = [r for r in epochs if f"{key}_loss" in r]
        xs = [r["epoch"] for r in rows]
        fig.add_trace(
            go.Scatter(
                x=xs,
                y=[r[f"{key}_loss"] for r in rows],
                name=f"{name} loss",
                line={"dash": dash, "color": color},
                mode="lines+markers",
            ),
            row=1,
            col=1,
        )
        fig.add_trace(
            go.Scatter(
                x=xs,
                y=[r[f"{key}_acc"] for r in rows],
                name=f"{name} accuracy",
                line={"dash": dash, "color": color},
                mode="lines+markers",
            ),
            row=1,
            col=2,
        )
    fig.update_xaxes(title_text="epoch")
    fig.update_layout(
        title=title,
        height=380,
        margin={"t": 80, "b": 40},
        legend={"orientation": "h", "y": 1.12, "yanchor": "bottom"},
    )
    return fig


COLORS = {"before": "#1f77b4", "after": "#d62728"}


def _color(label: str, i: int) -> str:
    return COLORS.get(label, ["#2ca02c", "#9467bd", "#8c564b"][i % 3])


def hessian_bars(reports: dict) -> go.Figure:
    """Top-k eigenvalues (whole network and exact last layer) and traces, side by side per label
    ({label: HessianReport}). Eigenvalues that did not converge are drawn hatched and named in the
    hover text."""
    reports = _typed("hessian", reports)
    fig = make_subplots(
        rows=1,
        cols=3,
        subplot_titles=(
            "top eigenvalues, whole network",
            "top eigenvalues, last layer (exact)",
            "trace",
        ),
        column_widths=[0.4, 0.4, 0.2],
    )
    for i, (label, r) in enumerate(reports.items()):
        top = r.top
        k = list(range(1, len(top.eigenvalues) + 1))
        fig.add_trace(
            go.Bar(
                x=k,
                y=top.eigenvalues,
                name=label,
                marker_color=_color(label, i),
                legendgroup=label,
                marker_pattern_shape=["" if c else "/" for c in top.converged],
                hovertext=[
                    f"residual {res:.2g}" + ("" if c else " (not converged)")
                    for res, c in zip(top.residuals, top.converged, strict=True)
                ],
            ),
            row=1,
            col=1,
        )
        # None for a model without a linear last layer (e.g. a torch.export program)
        ll = r.last_layer
        if ll:
            fig.add_trace(
                go.Bar(
                    x=list(range(1, len(ll.top_eigenvalues) + 1)),
                    y=ll.top_eigenvalues,
                    name=label,
                    marker_color=_color(label, i),
                    legendgroup=label,
                    showlegend=False,
                ),
                row=1,
                col=2,
            )
        fig.add_trace(
            go.Bar(
                x=["whole network", "last layer"][: 2 if ll else 1],
                y=[r.trace.trace] + ([ll.trace] if ll else []),
                name=label,
                marker_color=_color(label, i),
                legendgroup=label,
                showlegend=False,
                error_y={"type": "data", "array": [r.trace.stderr, 0.0]},
            ),
            row=1,
            col=3,
        )
    fig.update_xaxes(title_text="k", row=1, col=1)
    fig.update_xaxes(title_text="k", row=1, col=2)
    fig.update_layout(barmode="group", height=380, margin={"t": 60})
    return fig


def density_figure(reports: dict) -> go.Figure:
    """Eigenvalue density on a log scale: the whole network by stochastic Lanczos quadrature, and
    the last layer's exact spectrum as a histogram (when it was small enough to form densely)."""
    reports = _typed("hessian", reports)
    fig = make_subplots(
        rows=1,
        cols=2,
        subplot_titles=(
            "whole network (stochastic Lanczos quadrature)",
            "last layer, exact spectrum",
        ),
    )
    for i, (label, r) in enumerate(reports.items()):
        d = r.density
        fig.add_trace(
            go.Scatter(
                x=d.grid,
                y=[max(v, 1e-12) for v in d.density],
                name=label,
                legendgroup=label,
                line={"color": _color(label, i)},
            ),
            row=1,
            col=1,
        )
        spectrum = r.last_layer.spectrum if r.last_layer else None
        if spectrum:
            fig.add_trace(
                go.Histogram(
                    x=spectrum,
                    name=label,
                    legendgroup=label,
                    showlegend=False,
                    nbinsx=60,
                    histnorm="probability density",
                    opacity=0.6,
                    marker_color=_color(label, i),
                ),
                row=1,
                col=2,
            )
    fig.update_xaxes(title_text="eigenvalue")
    fig.update_yaxes(type="log", title_text="density", exponentformat="power")
    fig.update_layout(barmode="overlay", height=380, margin={"t": 60})
    return fig


def slices_1d(landscapes: dict) -> go.Figure:
    """Loss and accuracy along one direction, one line per label ({label: Landscape})."""
    landscapes = _typed("landscape", landscapes)
    fig = make_subplots(rows=1, cols=2, subplot_titles=("loss", "accuracy"))
    for i, (label, r) in enumerate(landscapes.items()):
        fig.add_trace(
            go.Scatter(
                x=r.axes[0],
                y=r.loss,
                name=label,
                line={"color": _color(label, i)},
                legendgroup=label,
            ),
            row=1,
            col=1,
        )
        fig.add_trace(
            go.Scatter(
                x=r.axes[0],
                y=r.accuracy,
                name=label,
                line={"color": _color(label, i)},
                legendgroup=label,
                showlegend=False,
            ),
            row=1,
            col=2,
        )
    fig.update_xaxes(title_text="distance along the filter-normalized direction")
    fig.update_yaxes(type="log", row=1, col=1)
    fig.update_layout(height=360, margin={"t": 60})
    return fig


def _log_loss(r):
    """A 2-D landscape's loss as an array, and its log10 (clipped above 0) for the colour scale."""
    import numpy as np

    loss = np.array(r.loss, dtype=float)
    return loss, np.log10(np.clip(loss, 1e-12, None))


def _log_range(landscapes: dict) -> tuple[float, float]:
    import math

    values = [v for r in landscapes.values() for row in r.loss for v in row if v == v and v > 0]
    return math.log10(min(values)), math.log10(max(values))


def surfaces_3d(landscapes: dict) -> go.Figure:
    """One 3-D surface of log10(loss) per label, side by side, on a shared colour scale."""
    landscapes = _typed("landscape", landscapes)
    lo, hi = _log_range(landscapes)
    fig = make_subplots(
        rows=1,
        cols=len(landscapes),
        specs=[[{"type": "scene"}] * len(landscapes)],
        subplot_titles=list(landscapes),
    )
    for i, r in enumerate(landscapes.values()):
        _, z = _log_loss(r)
        fig.add_trace(
            go.Surface(
                x=r.axes[0],
                y=r.axes[1],
                z=z.T,
                cmin=lo,
                cmax=hi,
                colorscale="Viridis",
                showscale=i == 0,
                colorbar={"title": "log10 loss"},
            ),
            row=1,
            col=i + 1,
        )
    fig.update_scenes(zaxis_title="log10 loss", xaxis_title="d1", yaxis_title="d2")
    fig.update_layout(height=480, margin={"t": 40})
    return fig


def contours_2d(landscapes: dict) -> go.Figure:
    """Contour maps of log10(loss) side by side, shared colour scale, the grid minimum marked."""
    import numpy as np

    landscapes = _typed("landscape", landscapes)
    lo, hi = _log_range(landscapes)
    fig = make_subplots(
        rows=1, cols=len(landscapes), subplot_titles=list(landscapes), shared_yaxes=True
    )
    for i, r in enumerate(landscapes.values()):
        loss, z = _log_loss(r)
        fig.add_trace(
            go.Contour(
                x=r.axes[0],
                y=r.axes[1],
                z=z.T,
                zmin=lo,
                zmax=hi,
                colorscale="Viridis",
                showscale=i == 0,
                colorbar={"title": "log10 loss"},
                ncontours=25,
            ),
            row=1,
            col=i + 1,
        )
        a, b = np.unravel_index(np.nanargmin(loss), loss.shape)
        fig.add_trace(
            go.Scatter(
                x=[r.axes[0][a]],
                y=[r.axes[1][b]],
                mode="markers",
                showlegend=False,
                marker={
                    "symbol": "star",
                    "size": 14,
                    "color": "white",
                    "line": {"color": "black", "width": 1},
                },
                hovertext=f"minimum {loss[a, b]:.4g}",
            ),
            row=1,
            col=i + 1,
        )
    fig.update_layout(height=440, margin={"t": 40})
    return fig


def interpolation_figure(results: dict) -> go.Figure:
    """Loss and accuracy along (1 - alpha) before + alpha after, one line per run."""
    results = _typed("interpolation", results)
    fig = make_subplots(rows=1, cols=2, subplot_titles=("loss", "accuracy"))
    for i, (label, r) in enumerate(results.items()):
        a = r.axes[0]
        fig.add_trace(
            go.Scatter(
                x=a,
                y=r.loss,
                name=label,
                mode="lines+markers",
                legendgroup=label,
                line={"color": _color(label, i)},
            ),
            row=1,
            col=1,
        )
        fig.add_trace(
            go.Scatter(
                x=a,
                y=r.accuracy,
                name=label,
                mode="lines+markers",
                legendgroup=label,
                line={"color": _color(label, i)},
                showlegend=False,
            ),
            row=1,
            col=2,
        )
    for x, text in ((0, "before"), (1, "after")):
        fig.add_vline(x=x, line_dash="dot", annotation_text=text)
    fig.update_xaxes(title_text="alpha: (1 - alpha) before + alpha after (BN statistics included)")
    fig.update_layout(height=360, margin={"t": 60})
    return fig


def method_curves(runs: dict[str, list[dict]]) -> go.Figure:
    """Test (solid) and train (dotted) loss and accuracy per epoch, one colour per post-training
    run."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("loss", "accuracy"))
    for i, (label, epochs) in enumerate(runs.items()):
        color = ["#d62728", "#2ca02c", "#9467bd", "#8c564b", "#ff7f0e", "#17becf"][i % 6]
        train_key = "train_eval" if any("train_eval_loss" in r for r in epochs) else "train"
        for key, dash, show in ((train_key, "dot", False), ("test", "solid", True)):
            rows = [r for r in epochs if f"{key}_loss" in r]
            xs = [r["epoch"] for r in rows]
            for col, metric in ((1, "loss"), (2, "acc")):
                fig.add_trace(
                    go.Scatter(
                        x=xs,
                        y=[r[f"{key}_{metric}"] for r in rows],
                        mode="lines+markers",
                        name=label,
                        legendgroup=label,
                        showlegend=show and col == 1,
                        line={"dash": dash, "color": color},
                        hovertemplate=f"{label} {key}: %{{y:.4f}}<extra></extra>",
                    ),
                    row=1,
                    col=col,
                )
    fig.update_xaxes(title_text="epoch (0 = before post-training)")
    fig.update_layout(
        height=380,
        margin={"t": 80, "b": 40},
        legend={"orientation": "h", "y": 1.12, "yanchor": "bottom"},
    )
    return fig


# --- per-layer sharpness (analysis.layers reports) --------------------------------------------

LAYER_METRICS = ("top_eigenvalue", "trace", "trace_per_param", "share_of_trace")


def _layer_order(reports: dict) -> list[str]:
    """Layer names in network order: the first report's, then any only later ones have."""
    names: list[str] = []
    for r in reports.values():
        names += [
            row.name for row in sorted(r.rows, key=lambda row: row.depth) if row.name not in names
        ]
    return names


def _ratio(a, b):
    return b / a if a not in (None, 0) and b is not None else None


def layer_rows(reports: dict) -> list[dict]:
    """One table row per layer (network order) of {label: LayerReport}: layer, kind, params,
    classifier, then for every label "LABEL METRIC" for each of LAYER_METRICS and trace_stderr
    (None where the label lacks the layer); with exactly two labels also "trace ratio" and
    "top_eigenvalue ratio" (second / first)."""
    reports = _typed("layers", reports)
    by_label = {label: {row.name: row for row in r.rows} for label, r in reports.items()}
    labels = list(reports)
    out = []
    for name in _layer_order(reports):
        first = next(rows[name] for rows in by_label.values() if name in rows)
        row = {
            "layer": name,
            "kind": first.kind,
            "params": first.n_params,
            "classifier": first.is_classifier,
        }
        for label in labels:
            mine = by_label[label].get(name)
            for metric in (*LAYER_METRICS, "trace_stderr"):
                row[f"{label} {metric}"] = getattr(mine, metric) if mine else None
        if len(labels) == 2:
            for metric in ("trace", "top_eigenvalue"):
                row[f"{metric} ratio"] = _ratio(
                    row[f"{labels[0]} {metric}"], row[f"{labels[1]} {metric}"]
                )
        out.append(row)
    return out


def _spans_decades(values, decades: float = 2.0) -> bool:
    positive = [v for v in values if v is not None and v > 0]
    return len(positive) > 1 and max(positive) / min(positive) > 10**decades


def layers_figure(reports: dict, metric: str = "top_eigenvalue") -> go.Figure:
    """`metric` along the depth of the network, one line per label, the classifier drawn as a star,
    error bars (one standard error) for the trace; a log axis when the positive values span more
    than two decades. With two labels a second panel shows second / first per layer."""
    if metric not in LAYER_METRICS:
        raise ValueError(f"metric must be one of {', '.join(LAYER_METRICS)}")
    reports = _typed("layers", reports)
    rows, labels = layer_rows(reports), list(reports)
    names = [r["layer"] for r in rows]
    two = len(labels) == 2
    fig = make_subplots(
        rows=2 if two else 1,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.08,
        row_heights=[0.65, 0.35] if two else None,
        subplot_titles=(metric.replace("_", " "), f"{labels[1]} / {labels[0]}") if two else None,
    )
    wholes = {  # for reference
        label: getattr(reports[label].whole, metric)
        for label in labels
        if metric in ("top_eigenvalue", "trace_per_param")
    }
    log = _spans_decades(
        [r[f"{label} {metric}"] for r in rows for label in labels] + list(wholes.values())
    )
    for i, label in enumerate(labels):
        ys = [r[f"{label} {metric}"] for r in rows]
        error = None
        if metric in (
            "trace",
            "trace_per_param",
        ):  # per param: the trace's error divided by the block's size
            scale = [1.0 if metric == "trace" else 1.0 / r["params"] for r in rows]
            error = {
                "type": "data",
                "array": [
                    None if r[f"{label} trace_stderr"] is None else r[f"{label} trace_stderr"] * s
                    for r, s in zip(rows, scale, strict=True)
                ],
            }
        fig.add_trace(
            go.Scatter(
                x=names,
                y=ys,
                name=label,
                mode="lines+markers",
                legendgroup=label,
                line={"color": _color(label, i)},
                error_y=error,
                marker={
                    "symbol": ["star" if r["classifier"] else "circle" for r in rows],
                    "size": [14 if r["classifier"] else 7 for r in rows],
                },
                hovertext=[
                    f"{r['kind']}, {r['params']} params"
                    + (", classifier" if r["classifier"] else "")
                    for r in rows
                ],
            ),
            row=1,
            col=1,
        )
        if wholes.get(label) is not None:
            # a trace, not add_hline: on a log axis Plotly places a shape's annotation in log10
            # units
            fig.add_trace(
                go.Scatter(
                    x=names,
                    y=[wholes[label]] * len(names),
                    mode="lines",
                    opacity=0.6,
                    name=f"{label}: whole network",
                    legendgroup=label,
                    line={"dash": "dash", "color": _color(label, i)},
                ),
                row=1,
                col=1,
            )
    fig.update_yaxes(title_text=metric.replace("_", " "), row=1, col=1)
    if log:
        fig.update_yaxes(type="log", exponentformat="power", row=1, col=1)
    if two:
        ratios = [_ratio(r[f"{labels[0]} {metric}"], r[f"{labels[1]} {metric}"]) for r in rows]
        fig.add_trace(
            go.Bar(
                x=names,
                y=ratios,
                name=f"{labels[1]} / {labels[0]}",
                marker_color="#7f7f7f",
                showlegend=False,
            ),
            row=2,
            col=1,
        )
        fig.add_hline(y=1.0, line_dash="dot", row=2, col=1)
    fig.update_xaxes(title_text="layer (input → output; ★ classifier)", row=2 if two else 1, col=1)
    fig.update_layout(height=520 if two else 380, margin={"t": 60})
    return fig


# --- the Learn page's experiments (analysis.learn results) ----------------------------------------

CLASS_COLORS = ("#1f77b4", "#ff7f0e")  # class 0, class 1 of a 2-D point set


def _boundary(m: dict, color: str, dash: str, name: str, show: bool) -> go.Contour:
    """Only the p = 0.5 line of a decision map, drawn as a line."""
    return go.Contour(
        x=m["x"],
        y=m["y"],
        z=m["p"],
        contours={"start": 0.5, "end": 0.5, "size": 1, "coloring": "lines"},
        line={"color": color, "dash": dash, "width": 3},
        showscale=False,
        name=name,
        showlegend=show,
        colorscale=[[0, color], [1, color]],
        hoverinfo="skip",
    )


def decision_maps(panels: dict[str, dict]) -> go.Figure:
    """One panel per label: P(class 1) as a background, the data on top and the boundary p = 0.5.
    A panel may add "boundaries" ({name: decision map}, drawn as dashed lines) and "highlight"
    (points drawn as open rings, e.g. a weak batch)."""
    fig = make_subplots(
        rows=1,
        cols=len(panels),
        subplot_titles=list(panels),
        shared_yaxes=True,
        horizontal_spacing=0.04,
    )
    names = list(dict.fromkeys(n for p in panels.values() for n in p.get("boundaries", {})))
    extra_colors = dict(
        zip(names, ["#d62728", "#2ca02c", "#9467bd", "#8c564b"] * 4, strict=False)
    )  # one colour per name
    for i, (_label, p) in enumerate(panels.items()):
        m = p["map"]
        fig.add_trace(
            go.Heatmap(
                x=m["x"],
                y=m["y"],
                z=m["p"],
                zmin=0,
                zmax=1,
                colorscale="RdBu_r",
                opacity=0.45,
                showscale=i == 0,
                colorbar={"title": "P(class 1)", "len": 0.8},
                hovertemplate="P(class 1) %{z:.2f}<extra></extra>",
            ),
            row=1,
            col=i + 1,
        )
        pts = p["points"]
        for c in (0, 1):
            idx = [k for k, lab in enumerate(pts["label"]) if lab == c]
            fig.add_trace(
                go.Scatter(
                    x=[pts["x"][k] for k in idx],
                    y=[pts["y"][k] for k in idx],
                    mode="markers",
                    marker={
                        "color": CLASS_COLORS[c],
                        "size": 5,
                        "line": {"width": 0.5, "color": "white"},
                    },
                    name=f"class {c}",
                    legendgroup=f"class {c}",
                    showlegend=i == 0,
                ),
                row=1,
                col=i + 1,
            )
        fig.add_trace(_boundary(m, "black", "solid", "boundary", i == 0), row=1, col=i + 1)
        for name, other in p.get("boundaries", {}).items():
            fig.add_trace(
                _boundary(other, extra_colors[name], "dash", name, True), row=1, col=i + 1
            )
        if p.get("highlight"):
            h = p["highlight"]
            fig.add_trace(
                go.Scatter(
                    x=h["x"],
                    y=h["y"],
                    mode="markers",
                    name=h.get("name", "highlighted"),
                    marker={
                        "symbol": "circle-open",
                        "size": 9,
                        "color": "black",
                        "line": {"width": 1.5},
                    },
                ),
                row=1,
                col=i + 1,
            )
    fig.update_xaxes(title_text="x1")
    fig.update_yaxes(title_text="x2", col=1)
    fig.update_layout(height=440, margin={"t": 60}, legend={"orientation": "h", "y": -0.22})
    return fig


def eigen_slices(slices: dict[str, dict]) -> go.Figure:
    """The loss along each model's unit top eigenvector (solid) and its quadratic model
    L(0) + L'(0) t + lambda t^2 / 2 (dashed): its curvature is the top eigenvalue."""
    fig = go.Figure()
    for i, (label, s) in enumerate(slices.items()):
        color = _color(label, i)
        fig.add_trace(
            go.Scatter(
                x=s["t"],
                y=s["loss"],
                name=f"{label}: loss",
                line={"color": color},
                legendgroup=label,
            )
        )
        fig.add_trace(
            go.Scatter(
                x=s["t"],
                y=s["quadratic"],
                name=f"{label}: L(0) + L'(0)t + λt²/2, λ = {s['lambda']:.3g}",
                line={"color": color, "dash": "dash"},
                legendgroup=label,
            )
        )
    top = max(max(s["loss"]) for s in slices.values())
    fig.update_yaxes(title_text="training loss", range=[0, top * 1.05])
    fig.update_xaxes(
        title_text="t: distance along the top eigenvector (unit length in parameter space)"
    )
    fig.update_layout(height=380, margin={"t": 40}, legend={"orientation": "h", "y": -0.25})
    return fig


def train_test_slices(slices: dict[str, dict], shift: float) -> go.Figure:
    """Per label: training loss (dotted), test loss (solid) along one direction, and the training
    curve moved by `shift` (dashed): what the test loss would be if the test landscape were the
    training landscape shifted (the picture of the PoF paper's first figure, from measured
    curves)."""
    fig = make_subplots(rows=1, cols=len(slices), subplot_titles=list(slices), shared_yaxes=True)
    for i, (_label, s) in enumerate(slices.items()):
        show = i == 0
        fig.add_trace(
            go.Scatter(
                x=s["t"],
                y=s["train"],
                name="training loss",
                line={"dash": "dot", "color": "#1f77b4"},
                legendgroup="train",
                showlegend=show,
            ),
            row=1,
            col=i + 1,
        )
        fig.add_trace(
            go.Scatter(
                x=s["t"],
                y=s["test"],
                name="test loss (measured)",
                line={"color": "#d62728"},
                legendgroup="test",
                showlegend=show,
            ),
            row=1,
            col=i + 1,
        )
        fig.add_trace(
            go.Scatter(
                x=[t + shift for t in s["t"]],
                y=s["train"],
                name=f"training loss shifted by {shift:g}",
                line={"dash": "dash", "color": "#7f7f7f"},
                legendgroup="shifted",
                showlegend=show,
            ),
            row=1,
            col=i + 1,
        )
        fig.add_vline(x=0, line_dash="dot", line_color="black", row=1, col=i + 1)
    fig.update_xaxes(title_text="t along a filter-normalized random direction")
    fig.update_yaxes(title_text="loss", col=1)
    fig.update_layout(height=380, margin={"t": 60}, legend={"orientation": "h", "y": -0.25})
    return fig


def line_search_figure(w: dict) -> go.Figure:
    """PoF's line search on the weak batch: the loss along -g, the doubling bracket, the grid of
    grid in (0, eta_max], eta_max and eta*, and the chosen step gamma eta*."""
    info = w["info"]
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=w["curve"]["eta"],
            y=w["curve"]["loss"],
            name="weak-batch loss along −g",
            line={"color": "#1f77b4"},
        )
    )
    fig.add_trace(
        go.Scatter(
            x=w["bracket"]["eta"],
            y=w["bracket"]["loss"],
            mode="markers",
            name="doubling bracket",
            marker={"symbol": "square", "size": 10, "color": "#ff7f0e"},
        )
    )
    fig.add_trace(
        go.Scatter(
            x=w["grid"]["eta"],
            y=w["grid"]["loss"],
            mode="markers",
            name=f"grid k·η_max/{len(w['grid']['eta'])}",
            marker={"size": 6, "color": "#2ca02c"},
        )
    )
    fig.add_hline(y=w["loss0"], line_dash="dot", line_color="#7f7f7f", annotation_text="L'(w0)")
    step = info["gamma"] * info["eta_star"]
    for x, text, color, where in (
        (info["eta_max"], "η_max", "#ff7f0e", "top"),
        (info["eta_star"], "η*", "#2ca02c", "top"),
        (step, f"γη* (γ = {info['gamma']:.2f})", "#d62728", "bottom right"),
    ):
        fig.add_vline(
            x=x, line_dash="dash", line_color=color, annotation_text=text, annotation_position=where
        )
    fig.update_xaxes(title_text="η: step along −g, the last layer's gradient on the weak batch")
    fig.update_yaxes(title_text="weak-batch loss")
    fig.update_layout(height=380, margin={"t": 50}, legend={"orientation": "h", "y": -0.25})
    return fig
