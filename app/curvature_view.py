"""Curvature over time in the app, shared by the Post-train and Runs pages: the form's tracking
fields (tracking_fields), and the live figures of a tracked run (show_curvature), which poll its
folder (RUN/curvature.json and curvature.jsonl) like the other live charts."""

from __future__ import annotations

import re

import streamlit as st

from app.jobs import read_config
from pof.config import TRACK_MAX_SAMPLES, TrackConfig
from pof.runs.run import Run, number_text

# the tracking options' names in the library's messages -> the fields of the training forms
TRACK_LABELS = {
    "track_every": "Steps between points",
    "track_samples": "Probe subset",
    "track_probes": "Probe vectors",
}


TRACK_HELP = (
    "record, during the job, the whole network's top Hessian eigenvalue against the stability "
    "threshold of the learning rate, the last layer's exact top eigenvalue and every layer's "
    "trace, on a fixed probe subset of the training data; drawn live on this page"
)


def in_field_labels(message: str, labels: dict[str, str]) -> str:
    """A ConfigError's text with each option's name replaced by the form field's label."""
    for name, label in labels.items():  # "track_samples (the probe subset)" -> "'Probe subset'"
        message = re.sub(rf"\b{re.escape(name)}\b( \([^)]*\))?", f"'{label}'", message)
    return message


def tracking_fields(ticked: bool) -> dict:
    """Inside a training form (Post-train, Pre-train): when `ticked`, the tracking fields
    (cadence, probe subset, probe vectors); returns the keyword arguments of a TrackConfig."""
    if not ticked:
        return {"track": False}
    d = TrackConfig()
    c1, c2, c3 = st.columns(3)
    every = c1.number_input(
        "Steps between points",
        0,
        100_000,
        0,
        help="optimizer steps between two curvature points; 0: one point at the end of each "
        "epoch (and one before the first step)",
    )
    samples = c2.number_input(
        "Probe subset",
        1,
        TRACK_MAX_SAMPLES,
        d.track_samples,
        help="training examples every point is measured on (fixed for the whole run, drawn "
        "apart from the training's own randomness); more is steadier and slower",
    )
    probes = c3.number_input(
        "Probe vectors",
        2,
        1000,
        d.track_probes,
        help="Hutchinson probe vectors per point: each layer's trace and its standard error",
    )
    st.caption(
        "Each point costs a few dozen Hessian-vector products on the probe subset (Lanczos for "
        "λ_max, one per probe vector for the traces): on a CPU a point of the digits CNN takes "
        "seconds, so a point every few steps can slow the job several times."
    )
    return {
        "track": True,
        "track_every": int(every) or None,
        "track_samples": int(samples),
        "track_probes": int(probes),
    }


def _tracking_asked(run: Run) -> bool | None:
    """Whether the run's config asks for tracking (None: no readable config yet)."""
    if not run.config_file.exists():
        return None
    cfg, why = read_config(run)
    if why or not isinstance(cfg, dict):
        return None
    tracking = (cfg.get("config") or {}).get("tracking") or {}
    return bool(isinstance(tracking, dict) and tracking.get("track"))


def show_curvature(run: Run) -> None:
    """The curvature series of `run`, live; one line for a run that was not tracked."""
    _live_curvature(run)


@st.fragment(run_every=4.0)
def _live_curvature(run: Run) -> None:
    from app.figures.curvature import (
        captions,
        has_last_layer,
        last_layer_figure,
        layer_heatmap,
        top_eigenvalue_figure,
    )

    setup = run.curvature_setup()
    if setup is None:
        asked = _tracking_asked(run)
        if asked is False:
            st.caption(
                "Curvature was not tracked in this run. To watch λ_max, the last layer and every "
                "layer's sharpness over training, tick “Track curvature” when you start a "
                "post-training on the Post-train page."
            )
        elif asked:
            st.caption("Curvature tracking: waiting for the first point.")
        return
    points = run.curvature()
    st.subheader("Curvature over training")
    if not points:
        st.caption("Curvature tracking: waiting for the first point.")
        return
    text = captions(setup, points)
    with st.container(key="curvature-top"):
        st.plotly_chart(top_eigenvalue_figure(points, setup), width="stretch", key="curv-top")
        st.caption(text["top"])
    with st.container(key="curvature-last"):
        if has_last_layer(points, setup):
            st.plotly_chart(last_layer_figure(points, setup), width="stretch", key="curv-last")
        st.caption(text["last_layer"])
    with st.container(key="curvature-layers"):
        per_param = st.toggle(
            "Per parameter",
            key=f"curv-per-param-{run.path}",
            help="divide each layer's trace by its number of parameters (layers of very "
            "different sizes then compare on one colour scale)",
        )
        st.plotly_chart(
            layer_heatmap(points, setup, "trace_per_param" if per_param else "trace"),
            width="stretch",
            key="curv-layers",
        )
        st.caption(text["layers"])
    last = points[-1]
    st.caption(
        f"{len(points)} points so far; the last (step {last.get('step')}) cost "
        f"{number_text(last.get('hvp'), '.0f')} Hessian-vector products in "
        f"{number_text(last.get('seconds'), '.1f')} s."
    )
