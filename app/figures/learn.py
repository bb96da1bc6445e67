"""The Learn page's experiments (analysis.learn results): decision maps of 2-D toy data, the loss
along the top eigenvector with its quadratic model, training against test loss along a direction,
PoF's line search on the weak batch (eta_max, eta*, gamma), and the edge of stability (training
loss and lambda_max over the steps of full-batch gradient descent, against 2 / eta). Each builder
reads analysis.learn's typed results (analysis.learn_results); a decision-map panel is a
MapPanel."""

from __future__ import annotations

from dataclasses import dataclass, field

import contourpy
import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from analysis.learn_results import (
    DecisionMap,
    EdgeOfStability,
    EigenSlice,
    PoFWalkthrough,
    Points,
    TrainTestSlice,
)
from app.figures.style import label_color

CLASS_COLORS = ("#1f77b4", "#ff7f0e")  # class 0, class 1 of a 2-D point set


@dataclass(frozen=True)
class MapPanel:
    """One panel of decision_maps: a decision map and the data over it, with other boundaries
    ({name: decision map}, drawn as dashed lines) and highlighted points (name, points: drawn as
    open rings, e.g. a weak batch)."""

    map: DecisionMap
    points: Points
    boundaries: dict[str, DecisionMap] = field(default_factory=dict)
    highlight: tuple[str, Points] | None = None


def _boundary(m: DecisionMap, color: str, dash: str, name: str, show: bool) -> go.Scatter:
    """Only the p = 0.5 line of a decision map, as a line traced here by contourpy (matplotlib's
    own contouring): the browser receives a few hundred points, not the whole grid once more as a
    contour trace would (a chapter's redraw took about 1 s per MB of figure)."""
    xs: list[float | None] = []
    ys: list[float | None] = []
    for line in contourpy.contour_generator(m.x, m.y, np.asarray(m.p)).lines(0.5):
        xs += [*line[:, 0].round(4).tolist(), None]  # None: a gap between separate pieces
        ys += [*line[:, 1].round(4).tolist(), None]
    return go.Scatter(
        x=xs,
        y=ys,
        mode="lines",
        line={"color": color, "dash": dash, "width": 3},
        name=name,
        showlegend=show,
        hoverinfo="skip",
    )


def decision_maps(panels: dict[str, MapPanel]) -> go.Figure:
    """One panel per label: P(class 1) as a background, the data on top and the boundary p = 0.5.
    A panel may add other boundaries (dashed lines) and highlighted points (open rings)."""
    fig = make_subplots(
        rows=1,
        cols=len(panels),
        subplot_titles=list(panels),
        shared_yaxes=True,
        horizontal_spacing=0.04,
    )
    names = list(dict.fromkeys(n for p in panels.values() for n in p.boundaries))
    extra_colors = dict(
        zip(names, ["#d62728", "#2ca02c", "#9467bd", "#8c564b"] * 4, strict=False)
    )  # one colour per name
    for i, (_label, p) in enumerate(panels.items()):
        m = p.map
        fig.add_trace(
            go.Heatmap(
                x=m.x,
                y=m.y,
                z=np.asarray(m.p).round(3),  # shown to 2 decimals: 3 keep the figure small
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
        pts = p.points
        for c in (0, 1):
            idx = [k for k, lab in enumerate(pts.label) if lab == c]
            fig.add_trace(
                go.Scatter(
                    x=[round(pts.x[k], 4) for k in idx],  # 4 decimals: a smaller figure
                    y=[round(pts.y[k], 4) for k in idx],
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
        for name, other in p.boundaries.items():
            fig.add_trace(
                _boundary(other, extra_colors[name], "dash", name, True), row=1, col=i + 1
            )
        if p.highlight is not None:
            name, h = p.highlight
            fig.add_trace(
                go.Scatter(
                    x=h.x,
                    y=h.y,
                    mode="markers",
                    name=name,
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


def eigen_slices(slices: dict[str, EigenSlice]) -> go.Figure:
    """The loss along each model's unit top eigenvector (solid) and its quadratic model
    L(0) + L'(0) t + lambda t^2 / 2 (dashed): its curvature is the top eigenvalue."""
    fig = go.Figure()
    for i, (label, s) in enumerate(slices.items()):
        color = label_color(label, i)
        fig.add_trace(
            go.Scatter(
                x=s.t,
                y=s.loss,
                name=f"{label}: loss",
                line={"color": color},
                legendgroup=label,
            )
        )
        fig.add_trace(
            go.Scatter(
                x=s.t,
                y=s.quadratic,
                name=f"{label}: L(0) + L′(0)t + λt²/2, λ = {s.eigenvalue:.3g}",
                line={"color": color, "dash": "dash"},
                legendgroup=label,
            )
        )
    top = max(max(s.loss) for s in slices.values())
    fig.update_yaxes(title_text="training loss", range=[0, top * 1.05])
    fig.update_xaxes(
        title_text="t: distance along the top eigenvector (unit length in parameter space)"
    )
    fig.update_layout(height=380, margin={"t": 40}, legend={"orientation": "h", "y": -0.25})
    return fig


def train_test_slices(slices: dict[str, TrainTestSlice], shift: float) -> go.Figure:
    """Per label: training loss (dotted), test loss (solid) along one direction, and the training
    curve moved by `shift` (dashed): what the test loss would be if the test landscape were the
    training landscape shifted (the picture of the PoF paper's first figure, from measured
    curves)."""
    fig = make_subplots(rows=1, cols=len(slices), subplot_titles=list(slices), shared_yaxes=True)
    for i, (_label, s) in enumerate(slices.items()):
        show = i == 0
        fig.add_trace(
            go.Scatter(
                x=s.t,
                y=s.train,
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
                x=s.t,
                y=s.test,
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
                x=[t + shift for t in s.t],
                y=s.train,
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


def line_search_figure(w: PoFWalkthrough) -> go.Figure:
    """PoF's line search on the weak batch: the loss along -g, the doubling bracket, the grid of
    grid in (0, eta_max], eta_max and eta*, and the chosen step gamma eta*."""
    info = w.info
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=w.curve.eta,
            y=w.curve.loss,
            name="weak-batch loss along −g",
            line={"color": "#1f77b4"},
        )
    )
    fig.add_trace(
        go.Scatter(
            x=w.bracket.eta,
            y=w.bracket.loss,
            mode="markers",
            name="doubling bracket",
            marker={"symbol": "square", "size": 10, "color": "#ff7f0e"},
        )
    )
    fig.add_trace(
        go.Scatter(
            x=w.grid.eta,
            y=w.grid.loss,
            mode="markers",
            name=f"grid k·η_max/{len(w.grid.eta)}",
            marker={"size": 6, "color": "#2ca02c"},
        )
    )
    fig.add_hline(y=w.loss0, line_dash="dot", line_color="#7f7f7f", annotation_text="L_w(w0)")
    step = info.gamma * info.eta_star
    for x, text, color, where in (
        (info.eta_max, "η_max", "#ff7f0e", "top"),
        (info.eta_star, "η*", "#2ca02c", "top"),
        (step, f"γη* (γ = {info.gamma:.2f})", "#d62728", "bottom right"),
    ):
        fig.add_vline(
            x=x, line_dash="dash", line_color=color, annotation_text=text, annotation_position=where
        )
    fig.update_xaxes(title_text="η: step along −g, the last layer's gradient on the weak batch")
    fig.update_yaxes(title_text="weak-batch loss")
    fig.update_layout(height=380, margin={"t": 50}, legend={"orientation": "h", "y": -0.25})
    return fig


def edge_of_stability(runs: dict[str, EdgeOfStability]) -> go.Figure:
    """Per run (one colour each): the full-batch training loss (left, log scale) and lambda_max
    (right) over the steps of gradient descent, with its threshold 2 / eta as a dotted line."""
    fig = make_subplots(
        rows=1,
        cols=2,
        subplot_titles=["training loss (full batch)", "λ_max, the top Hessian eigenvalue"],
        horizontal_spacing=0.1,
    )
    for i, (label, r) in enumerate(runs.items()):
        color = label_color(label, i)
        fig.add_trace(
            go.Scatter(
                x=r.steps,
                y=r.loss,
                name=f"{label}: loss",
                line={"color": color},
                legendgroup=label,
            ),
            row=1,
            col=1,
        )
        fig.add_trace(
            go.Scatter(
                x=r.steps,
                y=r.lam_max,
                name=f"{label}: λ_max",
                line={"color": color},
                legendgroup=label,
            ),
            row=1,
            col=2,
        )
        fig.add_trace(
            go.Scatter(
                x=[r.steps[0], r.steps[-1]],
                y=[r.threshold, r.threshold],
                mode="lines",
                name=f"{label}: 2/η = {r.threshold:.3g}",
                line={"color": color, "dash": "dot"},
                legendgroup=label,
                hoverinfo="name",
            ),
            row=1,
            col=2,
        )
    fig.update_yaxes(title_text="½ · mean squared error", type="log", row=1, col=1)
    fig.update_yaxes(title_text="λ_max", rangemode="tozero", row=1, col=2)
    fig.update_xaxes(title_text="step of gradient descent")
    fig.update_layout(height=400, margin={"t": 50}, legend={"orientation": "h", "y": -0.25})
    return fig
