"""Loss landscapes: 1-D slices along a direction, 3-D surfaces and contour maps of a 2-D grid,
and the loss along the straight line between two checkpoints (interpolation)."""

from __future__ import annotations

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from app.figures.style import label_color, typed


def slices_1d(landscapes: dict) -> go.Figure:
    """Loss and accuracy along one direction, one line per label ({label: Landscape})."""
    landscapes = typed("landscape", landscapes)
    fig = make_subplots(rows=1, cols=2, subplot_titles=("loss", "accuracy"))
    for i, (label, r) in enumerate(landscapes.items()):
        fig.add_trace(
            go.Scatter(
                x=r.axes[0],
                y=r.loss,
                name=label,
                line={"color": label_color(label, i)},
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
                line={"color": label_color(label, i)},
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
    landscapes = typed("landscape", landscapes)
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

    landscapes = typed("landscape", landscapes)
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
    results = typed("interpolation", results)
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
                line={"color": label_color(label, i)},
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
                line={"color": label_color(label, i)},
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
