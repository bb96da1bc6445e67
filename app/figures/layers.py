"""Per-layer sharpness (analysis.measures.layers reports): a table row per layer (layer_rows) and
one metric along the depth of the network, with the ratio of two labels (layers_figure)."""

from __future__ import annotations

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from app.figures.style import label_color, typed

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
    reports = typed("layers", reports)
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
    reports = typed("layers", reports)
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
                line={"color": label_color(label, i)},
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
                    line={"dash": "dash", "color": label_color(label, i)},
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
