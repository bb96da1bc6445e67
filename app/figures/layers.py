"""Per-layer sharpness (analysis.measures.layers reports): a row of numbers per layer (layer_rows,
the CSV), the same as text with every estimate's error for the page's table (layer_table), and one
metric along the depth of the network, with the ratio of two labels ± its error (layers_figure).
Layer names are categories on every axis, also when they read as numbers ("1", "3")."""

from __future__ import annotations

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from analysis.uncertainty import NOISE_SIGMAS, format_ratio, ratio, within_noise
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


def _with_error(row, metric: str, whole) -> tuple:
    """(value, its error, unconverged) of a row's metric: a trace's standard error (per parameter:
    divided by the size; a share: both traces' relative errors), an eigenvalue's Lanczos residual
    (|Hv - λv| bounds its distance to an eigenvalue)."""
    if row is None:
        return None, None, False
    value = getattr(row, metric)
    if metric == "top_eigenvalue":
        return value, row.top_residual, row.top_converged is False
    rel = row.trace_stderr / abs(row.trace) if row.trace else None
    if metric == "share_of_trace" and rel is not None and whole.trace:
        rel = (rel**2 + (whole.trace_stderr / whole.trace) ** 2) ** 0.5
    return value, None if rel is None else abs(value) * rel, False


def layer_ratios(reports: dict, metric: str) -> list:
    """Per layer (network order), second / first of `metric` as analysis.uncertainty.Ratio (None
    where there is none: a layer missing, or a first value not clearly above zero)."""
    (a, ra), (b, rb) = list(typed("layers", reports).items())[:2]
    by_a, by_b = ({row.name: row for row in r.rows} for r in (ra, rb))
    out = []
    for name in _layer_order({a: ra, b: rb}):
        va, sa, ma = _with_error(by_a.get(name), metric, ra.whole)
        vb, sb, mb = _with_error(by_b.get(name), metric, rb.whole)
        out.append(ratio(va, sa, vb, sb, marked=ma or mb))
    return out


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
        out.append(row)
    if len(labels) == 2:  # second / first, with its propagated standard error
        for metric in ("trace", "top_eigenvalue"):
            for row, r in zip(out, layer_ratios(reports, metric), strict=True):
                row[f"{metric} ratio"] = r and r.value
                row[f"{metric} ratio se"] = r and r.error
    return out


def trace_text(value, stderr) -> str:
    """'71.6 ± 17', or with '≈ 0 (within noise)' when |value| < 2 standard errors."""
    if value is None:
        return "-"
    text = f"{value:.3g} ± {stderr:.2g}" if stderr is not None else f"{value:.3g}"
    return text + (" ≈ 0 (within noise)" if within_noise(value, stderr) else "")


def layer_table(reports: dict) -> list[dict]:
    """The page's table: one row of short texts per layer, every trace with its standard error
    and, with two labels, each ratio with its own (unconverged eigenvalues marked '?')."""
    reports = typed("layers", reports)
    by_label = {label: {row.name: row for row in r.rows} for label, r in reports.items()}
    labels = list(reports)
    two = len(labels) == 2
    ratios = {m: layer_ratios(reports, m) for m in ("trace", "top_eigenvalue")} if two else {}
    out = []
    for i, name in enumerate(_layer_order(reports)):
        first = next(rows[name] for rows in by_label.values() if name in rows)
        row = {
            "layer": name + (" ★" if first.is_classifier else ""),
            "kind": first.kind,
            "params": first.n_params,
        }
        for label in labels:
            mine = by_label[label].get(name)
            prefix = f"{label}: " if len(labels) > 1 else ""
            row[prefix + "trace"] = trace_text(mine.trace, mine.trace_stderr) if mine else "-"
            top = mine.top_eigenvalue if mine else None
            row[prefix + "top eig."] = (
                "-" if top is None else f"{top:.3g}" + ("?" if mine.top_converged is False else "")
            )
            if not two:
                row[prefix + "share"] = f"{100 * mine.share_of_trace:.1f} %" if mine else "-"
        for metric, title in (("trace", "trace ratio"), ("top_eigenvalue", "top eig. ratio")):
            if two:
                r = ratios[metric][i]
                same = r is not None and not r.differs_from_one
                row[title] = format_ratio(r) + (" ≈ 1" if same else "")
        out.append(row)
    return out


def _ratio_panel(fig, names: list[str], ratios: list, labels: list[str]) -> None:
    """second / first per layer, ± one standard error; the grey band is where a ratio cannot be
    told from 1 (within two of its standard errors); hatched bars hold an unconverged eigenvalue."""
    upper = [None if r is None else 1 + NOISE_SIGMAS * r.error for r in ratios]
    lower = [None if r is None else 1 - NOISE_SIGMAS * r.error for r in ratios]
    for ys, fill in ((upper, None), (lower, "tonexty")):
        fig.add_trace(
            go.Scatter(
                x=names,
                y=ys,
                mode="lines",
                line={"width": 0, "shape": "hvh"},
                fill=fill,
                fillcolor="rgba(127,127,127,0.25)",
                hoverinfo="skip",
                name="indistinguishable from 1 (± 2 se)",
                showlegend=fill is not None,
                legendgroup="band",
            ),
            row=2,
            col=1,
        )
    fig.add_trace(
        go.Bar(
            x=names,
            y=[r and r.value for r in ratios],
            error_y={"type": "data", "array": [r and r.error for r in ratios]},
            name=f"{labels[1]} / {labels[0]}",
            marker_color=[
                "#bbbbbb" if r is None or not r.differs_from_one else "#555555" for r in ratios
            ],
            marker_pattern_shape=["/" if r is not None and r.marked else "" for r in ratios],
            hovertext=[
                "no ratio: the first value is not clearly above zero"
                if r is None
                else format_ratio(r)
                + (" (unconverged eigenvalue: its residual as error)" if r.marked else "")
                + ("; within noise of 1" if not r.differs_from_one else "")
                for r in ratios
            ],
            showlegend=False,
        ),
        row=2,
        col=1,
    )
    fig.add_hline(y=1.0, line_dash="dot", row=2, col=1)


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
        _ratio_panel(fig, names, layer_ratios(reports, metric), labels)
    # layer names are categories: a Sequential's "1", "3" must not become a numeric axis
    fig.update_xaxes(type="category", categoryorder="array", categoryarray=names)
    fig.update_xaxes(title_text="layer (input → output; ★ classifier)", row=2 if two else 1, col=1)
    fig.update_layout(height=520 if two else 380, margin={"t": 60})
    return fig
