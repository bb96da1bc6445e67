"""Hessian spectra: the top eigenvalues and traces as bars (hessian_bars) and the eigenvalue density
(density_figure), whole network and last layer, one colour per label."""

from __future__ import annotations

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from app.figures.style import label_color, typed


def hessian_bars(reports: dict) -> go.Figure:
    """Top-k eigenvalues (whole network and exact last layer) and traces, side by side per label
    ({label: HessianReport}). Eigenvalues that did not converge are drawn hatched and named in the
    hover text."""
    reports = typed("hessian", reports)
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
                marker_color=label_color(label, i),
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
                    marker_color=label_color(label, i),
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
                marker_color=label_color(label, i),
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
    reports = typed("hessian", reports)
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
                line={"color": label_color(label, i)},
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
                    marker_color=label_color(label, i),
                ),
                row=1,
                col=2,
            )
    fig.update_xaxes(title_text="eigenvalue")
    fig.update_yaxes(type="log", title_text="density", exponentformat="power")
    fig.update_layout(barmode="overlay", height=380, margin={"t": 60})
    return fig
