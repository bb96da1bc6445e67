"""One comparison view for both pages that compare: "before vs after a post-training run"
(Compare) and "any one or two checkpoints" (Inspect). Each takes the finished parts of
analysis.compare, {part: {label: typed result}} (analysis.reports.KINDS), and draws the same
figures, each with its downloads."""

from __future__ import annotations

import csv
import dataclasses
import io
import json

import streamlit as st

from analysis.configs import ReportConfig
from analysis.results import to_dict
from app.classroom import may_cancel
from app.figures.landscapes import contours_2d, interpolation_figure, slices_1d, surfaces_3d
from app.figures.layers import LAYER_METRICS, layer_rows, layer_table, layers_figure
from app.figures.spectra import density_figure, hessian_bars
from app.jobs import log_tail, runs_root
from app.live import fraction, time_left
from app.messages import job_error
from pof.runs.jobqueue import waiting_text
from pof.runs.run import BROKEN

PART_TITLES = {
    "layers": "per-layer sharpness",
    "hessian": "Hessian spectra",
    "landscape-1d": "1-D loss slices",
    "landscape-2d": "2-D loss surfaces",
    "interpolation": "interpolation",
}


@st.fragment(run_every=1.0)
def watch_parts(jobs: dict, names: dict, done: set = frozenset()) -> None:
    """Progress (with time left), failures and Cancel of the analysis jobs `jobs` ({key: Run},
    `names[key]` its title), polled every second; the page is redrawn when one finishes. A failed
    part already shown from an earlier result (`done`) is not reported again."""
    states = {}
    for key, job in jobs.items():
        status = job.status()
        states[key] = state = status.get("state")
        if state == "queued":
            st.progress(0.0, text=f"{names[key]}: {waiting_text(job, runs_root())}")
        elif state == "running":
            st.progress(
                fraction(status.get("progress")),
                text=f"{names[key]}: {status.get('stage', '')}{time_left(status)}",
            )
            if status.get("estimate"):  # measured by the job itself as it started
                st.caption(f"{names[key]}: {status['estimate']}")
        elif (
            state in ("failed", BROKEN) and key not in done
        ):  # broken: its status.json is unreadable
            st.error(f"{names[key]} {state}: {job_error(status)}")
            st.code(log_tail(job), language=None)
    active = [k for k, s in states.items() if s in ("queued", "running")]
    mine = [k for k in active if may_cancel(jobs[k].path)]
    if mine and st.button("Cancel the analyses", key="cancel-analyses"):
        for k in mine:
            jobs[k].request_cancel()
    seen = st.session_state.setdefault("analysis_states", {})
    ids = {k: str(jobs[k].path) for k in states}
    changed = any(
        seen.get(ids[k]) in ("queued", "running") and s not in ("queued", "running")
        for k, s in states.items()
    )
    seen.update({ids[k]: s for k, s in states.items()})
    if changed:
        st.rerun()  # a result arrived: redraw the figures below


LIGHT_PARAMETERS = 2_000_000  # above, timing a product here could take seconds: the job does it


def sample_fields(left, right) -> dict:
    """The two sample counts of a comparison, as fields in columns `left` and `right`: ReportConfig
    keyword arguments (its defaults shown)."""
    r = ReportConfig()
    samples = left.number_input(
        "Training samples (Hessian, per layer)",
        50,
        50_000,
        r.samples,
        step=50,
        help="a seeded subset of the training split; more is slower and less noisy",
    )
    test = right.number_input(
        "Test samples (landscapes)",
        50,
        50_000,
        r.eval_samples,
        step=50,
        help="a seeded subset of the test split, for the loss slices, surfaces and interpolation",
    )
    return {"samples": int(samples), "eval_samples": int(test)}


TRACES_ONLY = "Per layer: traces only"


def traces_only_field() -> bool:
    """The per-layer view without block eigenvalues, for a model where they would take long."""
    return st.checkbox(
        TRACES_ONLY,
        key="traces-only",
        help="leave out each layer's top eigenvalue: every layer's trace then costs one pass of 30 "
        "Hessian-vector products in all, where each block eigenvalue costs a few more (seconds "
        "each on a large model on a CPU)",
    )


@st.cache_data(max_entries=16, show_spinner="Timing a Hessian-vector product ...")
def layers_estimate(
    path, digest, dataset, data_options, source, allow_code, cfg, models, field=""
) -> str:
    """Before Compute, the per-layer job's cost for `models` checkpoints like the one at `path`:
    its products timed in this process on a few samples (light: well under a second on models up
    to LIGHT_PARAMETERS), scaled to the samples asked for; `field`, the page's traces-only field,
    is suggested when it is long. The job measures it again on all of them as it starts."""
    from analysis.measures.landscape import eval_tensors
    from analysis.measures.layers import layer_cost
    from pof.data.names import DatasetError
    from pof.models.formats import CheckpointError, ModelSource
    from pof.models.loading import data_for, load_checkpoint

    try:
        data = data_for(path, dataset, options=data_options)
        model, meta = load_checkpoint(
            path, dataset=data, source=ModelSource(**source), allow_code=allow_code
        )
        total = min(cfg.samples, len(data.y_train))
        x, y, n, _ = eval_tensors(data, meta["mean"], meta["std"], "train", 64, cfg.seed)
    except (CheckpointError, DatasetError, ValueError, OSError):
        return ""  # the card says why
    light = sum(p.numel() for p in model.parameters()) <= LIGHT_PARAMETERS
    cost = layer_cost(
        model,
        [(x, y)],
        probes=cfg.probes,
        max_steps=cfg.layer_steps,
        block_eigenvalues=not cfg.layer_traces_only,
        timed=1 if light else 0,
        timed_on=f" here on {n} samples and scaled to {total}",
    )
    if not light:
        return (
            f"Per layer: {cost.counts_text(models)}. The job times one as it starts and says how "
            "long as its first line."
            + (f" On a model this large, consider “{field}”." if field else "")
        )
    # a product's time grows with the samples, at most in proportion (fixed costs do not scale)
    scale = max(1.0, total / n)
    t = cost.seconds_per_hvp[1]
    cost = dataclasses.replace(cost, seconds_per_hvp=(t * max(1.0, scale / 2), t * scale))
    advice = cost.suggestion(f"tick “{field}”", models) if field else ""
    return f"Per layer: {cost.text(models)}. {advice}".strip()


def show_figure(fig, name: str, data, prefix: str) -> None:
    """The figure, and its downloads: HTML, and the numbers (results or plain data) as JSON."""
    st.plotly_chart(fig, width="stretch", key=f"fig-{name}")
    c1, c2 = st.columns(2)
    c1.download_button(
        "figure (HTML)",
        fig.to_html(include_plotlyjs="cdn"),
        f"{prefix}-{name}.html",
        "text/html",
        key=f"html-{name}",
    )
    c2.download_button(
        "numbers (JSON)",
        json.dumps(to_dict(data)),
        f"{prefix}-{name}.json",
        "application/json",
        key=f"json-{name}",
    )


def _csv(rows: list[dict]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]) if rows else [])
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def show_layers(reports: dict, prefix: str) -> None:
    """The per-layer table (sortable) and the chart along the depth, with the ratio of two
    ({label: LayerReport})."""
    st.subheader("Per layer: which layers are sharp")
    first = next(iter(reports.values()))
    st.caption(
        f"Each layer's diagonal block of the Hessian ({first.eval_set}): its trace (one Hutchinson "
        f"pass of {first.n_probes} probes, ± one standard error) and its top eigenvalue (Lanczos), "
        f"next to the whole network's; ★ marks the classifier."
        + (
            " With two checkpoints the lower panel is their "
            "per-layer ratio: below 1, the second is flatter there."
            if len(reports) == 2
            else ""
        )
    )
    # a report computed as traces only has no block eigenvalues to draw
    metrics = [
        m
        for m in LAYER_METRICS
        if any(getattr(row, m) is not None for r in reports.values() for row in r.rows)
    ]
    metric = st.radio(
        "Along the depth",
        metrics,
        horizontal=True,
        key=f"{prefix}-layer-metric",
        format_func=lambda m: m.replace("_", " "),
    )
    rows = layer_rows(reports)
    show_figure(layers_figure(reports, metric), f"layers-{metric}", reports, prefix)
    table = layer_table(reports)
    # short texts in narrow columns, so that the table fits the page; every number in the CSV
    st.dataframe(
        table,
        width="stretch",
        hide_index=True,
        key=f"{prefix}-layer-table",
        column_config={
            k: st.column_config.Column(width="small" if k in ("kind", "params") else None)
            for k in table[0]
        },
    )
    st.caption(
        "Trace ± one standard error (Hutchinson). “≈ 0 (within noise)”: |trace| < 2 standard "
        "errors, indistinguishable from zero; a negative Hutchinson estimate is noise, not "
        "negative curvature. ? marks a top eigenvalue not converged."
        + (
            " Ratios are second / first ± their error propagated from both (an eigenvalue's: its "
            "Lanczos residual); “≈ 1”: within two errors of 1, no difference shown."
            if len(reports) == 2
            else ""
        )
    )
    st.download_button(
        "table (CSV)", _csv(rows), f"{prefix}-layers.csv", "text/csv", key="csv-layers"
    )
    unconverged = [
        f"{label}: {row.name}"
        for label, r in reports.items()
        for row in r.rows
        if row.top_converged is False  # None: computed as traces only
    ]
    if unconverged:
        st.caption(
            "Top eigenvalue not converged within its Lanczos budget (its residual is in the JSON): "
            + ", ".join(unconverged[:8])
            + (" ..." if len(unconverged) > 8 else "")
        )


def show_results(series: dict[str, dict], prefix: str, interpolation: dict | None = None) -> None:
    """Every finished part: `series[part]` maps labels to that part's result; `interpolation` maps
    a line's label to its Landscape."""
    if "layers" in series:
        show_layers(series["layers"], prefix)
    if "hessian" in series:
        h = series["hessian"]
        st.subheader("Hessian")
        first = next(iter(h.values()))
        has_last = all(r.last_layer is not None for r in h.values())
        st.caption(
            first.eval_set
            + (
                "; the last layer exactly on the whole training set."
                if has_last
                else "; no exact last layer: a model here has no linear last layer."
            )
            + " Hatched bars did not converge."
        )
        show_figure(hessian_bars(h), "hessian", h, prefix)
        show_figure(
            density_figure(h),
            "density",
            {
                k: {
                    "whole_network": v.density,
                    "last_layer_spectrum": v.last_layer.spectrum if v.last_layer else None,
                }
                for k, v in h.items()
            },
            prefix,
        )
    if "landscape-1d" in series:
        st.subheader("Loss landscape")
        first = next(iter(series["landscape-1d"].values()))
        st.caption(
            "Along the same filter-normalized random directions, drawn once from the first model, "
            "for all; " + first.eval_set
        )
        show_figure(slices_1d(series["landscape-1d"]), "slices-1d", series["landscape-1d"], prefix)
    if "landscape-2d" in series:
        # The 3-D surfaces are drawn only when their tab is opened: WebGL without a GPU costs about
        # a second per render, most of this page's time in the browser (benchmarks/RESULTS.md).
        contours_tab, surfaces_tab = st.tabs(
            ["contour maps", "3-D surfaces"], on_change="rerun", key=f"{prefix}-view-2d"
        )
        with contours_tab:
            show_figure(
                contours_2d(series["landscape-2d"]), "contours-2d", series["landscape-2d"], prefix
            )
        if surfaces_tab.open:
            with surfaces_tab:
                show_figure(
                    surfaces_3d(series["landscape-2d"]),
                    "surfaces-3d",
                    series["landscape-2d"],
                    prefix,
                )
    if interpolation:
        st.subheader("From one to the other")
        show_figure(interpolation_figure(interpolation), "interpolation", interpolation, prefix)
