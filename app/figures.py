"""Figure builders: pure functions, data in, Plotly figure out (testable without a browser)."""

from __future__ import annotations

import plotly.graph_objects as go
from plotly.subplots import make_subplots


def training_curves(epochs: list[dict], title: str = "") -> go.Figure:
    """Loss and accuracy per epoch, train and test, from a run's epoch records."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("loss", "accuracy"))
    # post-training also evaluates the whole training set with w0 each epoch: prefer it to the running average
    train_key = "train_eval" if any("train_eval_loss" in r for r in epochs) else "train"
    for key, name, dash, color in ((train_key, "train", "dot", "#1f77b4"), ("test", "test", "solid", "#d62728")):
        rows = [r for r in epochs if f"{key}_loss" in r]
        xs = [r["epoch"] for r in rows]
        fig.add_trace(go.Scatter(x=xs, y=[r[f"{key}_loss"] for r in rows], name=f"{name} loss",
                                 line={"dash": dash, "color": color}, mode="lines+markers"), row=1, col=1)
        fig.add_trace(go.Scatter(x=xs, y=[r[f"{key}_acc"] for r in rows], name=f"{name} accuracy",
                                 line={"dash": dash, "color": color}, mode="lines+markers"), row=1, col=2)
    fig.update_xaxes(title_text="epoch")
    fig.update_layout(title=title, height=380, margin={"t": 80, "b": 40},
                      legend={"orientation": "h", "y": 1.12, "yanchor": "bottom"})
    return fig
