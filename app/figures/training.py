"""Training curves per epoch: loss and accuracy, train and test, of one run (training_curves) and of
several post-training runs side by side (method_curves)."""

from __future__ import annotations

import plotly.graph_objects as go
from plotly.subplots import make_subplots


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
