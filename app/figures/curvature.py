"""Curvature over time, one run: the points a tracked training job records (RUN/curvature.jsonl,
pof.curvature.tracker.CurvaturePoint.to_dict()) and how they were measured (RUN/curvature.json).

- top_eigenvalue_figure: the whole network's λ_max per point, its Lanczos residual as error bars,
  against the stability threshold at the learning rate in force;
- last_layer_figure: the last layer's exact top eigenvalue (has_last_layer says whether there is
  one);
- layer_heatmap: each layer's Hutchinson trace, layer × time, ± its standard error in the hover;
- captions: what each figure draws, in words, from the setup.
"""

from __future__ import annotations

import math

import plotly.graph_objects as go

LAMBDA_COLOR = "#d62728"
THRESHOLD_COLOR = "#444444"
LAST_LAYER_COLOR = "#1f77b4"


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _log_worthwhile(values: list[float]) -> bool:
    """A log axis when every value is positive and they span more than a decade (a threshold that
    grows as the learning rate anneals would otherwise flatten λ_max onto the floor)."""
    values = [v for v in values if _finite(v)]
    return bool(values) and min(values) > 0 and max(values) / min(values) > 10


def top_eigenvalue_figure(points: list[dict], setup: dict | None = None) -> go.Figure:
    """λ_max over training (x: epoch, fractional) with the Lanczos residual |Hv − λv| as error
    bars (open markers: not converged), and the stability threshold of each point's learning rate
    as a dashed line labelled with the setup's rule."""
    rule = (setup or {}).get("threshold_rule") or "2/η"
    shown = [p for p in points if _finite(p.get("top_eigenvalue"))]
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=[p["epoch"] for p in shown],
            y=[p["top_eigenvalue"] for p in shown],
            error_y={
                "type": "data",
                "array": [p.get("top_residual") or 0.0 for p in shown],
                "visible": True,
                "thickness": 1.5,
            },
            mode="lines+markers",
            name="λ_max (Lanczos)",
            line={"color": LAMBDA_COLOR},
            marker={
                "color": LAMBDA_COLOR,
                "size": 7,
                "symbol": ["circle" if p.get("top_converged") else "circle-open" for p in shown],
            },
            customdata=[
                [
                    p["step"],
                    p.get("top_residual") or 0.0,
                    p.get("lanczos_steps", "?"),
                    ("" if p.get("top_converged") else "not converged, ")
                    + ("warm start" if p.get("warm") else "cold start"),
                ]
                for p in shown
            ],
            hovertemplate="step %{customdata[0]} (epoch %{x:.2f})<br>λ_max %{y:.4g} "
            "± %{customdata[1]:.2g} (residual)<br>%{customdata[2]} Lanczos steps, "
            "%{customdata[3]}<extra></extra>",
        )
    )
    line = [p for p in points if _finite(p.get("threshold")) and p["threshold"] > 0]
    fig.add_trace(
        go.Scatter(
            x=[p["epoch"] for p in line],
            y=[p["threshold"] for p in line],
            mode="lines",
            name=f"stability threshold {rule}",
            line={"color": THRESHOLD_COLOR, "dash": "dash"},
            customdata=[p.get("lr") for p in line],
            hovertemplate="epoch %{x:.2f}<br>η = %{customdata:.4g}<br>threshold %{y:.4g}"
            "<extra></extra>",
        )
    )
    log = _log_worthwhile([p["top_eigenvalue"] for p in shown] + [p["threshold"] for p in line])
    fig.update_xaxes(title_text="epoch")
    fig.update_yaxes(title_text="top eigenvalue" + (" (log scale)" if log else ""))
    if log:
        fig.update_yaxes(type="log")
    fig.update_layout(
        title="λ_max of the whole network against the stability threshold",
        height=380,
        margin={"t": 90, "b": 40},
        legend={"orientation": "h", "y": 1.02, "yanchor": "bottom"},
    )
    return fig


def has_last_layer(points: list[dict], setup: dict | None = None) -> bool:
    """Whether the series holds the last layer's exact numbers (a model without a linear
    classifier has none; the setup's missing_last_layer says why)."""
    if (setup or {}).get("missing_last_layer"):
        return False
    return any(_finite(p.get("last_layer_top")) for p in points)


def last_layer_figure(points: list[dict], setup: dict | None = None) -> go.Figure:
    """The last layer's top eigenvalue over training, exact (closed form, nothing estimated), with
    the whole network's λ_max dotted for reference on its own axis at the right (the last layer's
    block of the same Hessian cannot exceed it, and is often far below it)."""
    classifier = (setup or {}).get("classifier") or "last layer"
    shown = [p for p in points if _finite(p.get("last_layer_top"))]
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=[p["epoch"] for p in shown],
            y=[p["last_layer_top"] for p in shown],
            mode="lines+markers",
            name=f"last layer ({classifier}), exact",
            line={"color": LAST_LAYER_COLOR},
            customdata=[
                [p["step"], p["last_layer_trace"] if _finite(p.get("last_layer_trace")) else None]
                for p in shown
            ],
            hovertemplate="step %{customdata[0]} (epoch %{x:.2f})<br>top eigenvalue %{y:.4g} "
            "(exact)<br>trace %{customdata[1]:.4g} (exact)<extra></extra>",
        )
    )
    whole = [p for p in points if _finite(p.get("top_eigenvalue"))]
    fig.add_trace(
        go.Scatter(
            x=[p["epoch"] for p in whole],
            y=[p["top_eigenvalue"] for p in whole],
            mode="lines",
            name="whole network λ_max (for reference)",
            line={"color": LAMBDA_COLOR, "dash": "dot", "width": 1},
            opacity=0.6,
            yaxis="y2",  # often 100x larger: on one axis it would flatten the last layer's curve
            hovertemplate="epoch %{x:.2f}<br>whole network λ_max %{y:.4g}<extra></extra>",
        )
    )
    fig.update_xaxes(title_text="epoch")
    fig.update_yaxes(title_text="last layer's top eigenvalue")
    fig.update_layout(
        yaxis2={
            "title": {"text": "whole network λ_max", "font": {"color": LAMBDA_COLOR}},
            "overlaying": "y",
            "side": "right",
            "showgrid": False,
            "tickfont": {"color": LAMBDA_COLOR},
        }
    )
    fig.update_layout(
        title=f"Top eigenvalue of the last layer ({classifier}), exact",
        height=340,
        margin={"t": 90, "b": 40},
        legend={"orientation": "h", "y": 1.02, "yanchor": "bottom"},
    )
    return fig


def layer_names(points: list[dict]) -> list[str]:
    """Every layer's name in network order (the order the points list them in), each once."""
    names: list[str] = []
    for p in points:
        for layer in p.get("layers") or []:
            name = str(layer.get("name"))
            if name not in names:
                names.append(name)
    return names


def layer_heatmap(points: list[dict], setup: dict | None = None, value: str = "trace") -> go.Figure:
    """Layer × time: each layer's Hutchinson trace (its diagonal block of the Hessian) at each
    point, or with value="trace_per_param" the trace divided by the layer's parameter count; the
    hover shows ± the standard error. Layers are categories in network order, first at the top;
    the colour scale is diverging around 0 (a trace estimate can come out negative)."""
    names = layer_names(points)
    per_param = value == "trace_per_param"
    z, custom = [], []
    for name in names:
        row, info = [], []
        for p in points:
            layer = next((lay for lay in p.get("layers") or [] if str(lay.get("name")) == name), {})
            v, se, n = layer.get("trace"), layer.get("trace_stderr"), layer.get("n_params")
            if per_param:
                scale = n if isinstance(n, int) and n > 0 else None
                v = v / scale if _finite(v) and scale else None
                se = se / scale if _finite(se) and scale else None
            row.append(v if _finite(v) else None)
            info.append([se if _finite(se) else float("nan"), n, layer.get("kind", ""), p["step"]])
        z.append(row)
        custom.append(info)
    label = "trace per parameter" if per_param else "trace"
    fig = go.Figure(
        go.Heatmap(
            x=[p["epoch"] for p in points],
            y=names,
            z=z,
            customdata=custom,
            colorscale="RdBu",
            reversescale=True,
            zmid=0,
            colorbar={"title": {"text": label}},
            hoverongaps=False,
            hovertemplate="%{y} (%{customdata[2]}, %{customdata[1]} parameters)<br>step "
            "%{customdata[3]} (epoch %{x:.2f})<br>" + label + " %{z:.4g} ± %{customdata[0]:.2g} "
            "(standard error)<extra></extra>",
        )
    )
    fig.update_yaxes(
        type="category",
        categoryorder="array",
        categoryarray=names,
        autorange="reversed",
        title_text="layer (network order)",
    )
    fig.update_xaxes(title_text="epoch")
    fig.update_layout(
        title=f"Per-layer sharpness: each layer's Hutchinson {label}",
        height=max(300, 140 + 28 * len(names)),
        margin={"t": 60, "b": 40},
    )
    return fig


def captions(setup: dict | None, points: list[dict] | None = None) -> dict[str, str]:
    """What each figure draws, in words: keys "top", "last_layer", "layers"."""
    setup = setup or {}
    samples = setup.get("samples", "?")
    probes = setup.get("probes", "?")
    rule = setup.get("threshold_rule") or "2/η"
    every = setup.get("every")
    cadence = f"every {every} steps" if every else "once per epoch"
    mode = setup.get("mode") or "eval mode"
    top = (
        f"λ_max: the top eigenvalue of the whole network's Hessian, by Lanczos warm-started from "
        f"the previous point, {cadence} on a fixed probe subset of {samples} training examples "
        f"(mode: {mode}). Error bars: the Lanczos residual |Hv − λv| (open markers: not converged "
        f"within tolerance). Dashed: the stability threshold {rule} at the learning rate η in "
        "force at each point, so it follows the schedule; it is exact for full-batch gradient "
        "descent on a quadratic, and with minibatches λ_max usually stays below it."
    )
    if points and _log_worthwhile(
        [p.get("top_eigenvalue") for p in points] + [p.get("threshold") for p in points]
    ):
        top += " The axis is logarithmic because the values span more than a decade."
    missing = setup.get("missing_last_layer")
    last = (
        f"The last layer's ({setup.get('classifier') or 'classifier'}) top eigenvalue, exact (its "
        f"closed form on the same {samples} examples: nothing is estimated, so no error bars). "
        "It is a block of the same Hessian, so it cannot exceed the whole network's λ_max "
        "(dotted, right-hand axis)."
        if not missing
        else f"No last-layer curve: {missing}"
    )
    layers = (
        f"Each layer's sharpness: the trace of its diagonal block of the Hessian, by Hutchinson "
        f"with {probes} probe vectors on the {samples} probe examples (hover: ± standard error; "
        "with few probes a small trace can come out negative). Layers in network order, first at "
        "the top; red is positive curvature, blue negative. Layers a job keeps frozen (PoF's "
        "classifier) are measured too, so every method's series covers the same network."
    )
    return {"top": top, "last_layer": last, "layers": layers}
