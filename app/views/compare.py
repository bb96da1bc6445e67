"""Compare: before vs after a post-training run — Hessian spectra, landscapes, interpolation, curves."""

import json

import streamlit as st

from analysis.report import load_report
from app.figures import (contours_2d, density_figure, hessian_bars, interpolation_figure, slices_1d, surfaces_3d,
                         training_curves)
from app.jobs import active_runs, log_tail, runs_root, start_job
from pof.runs import Run, list_runs

root = runs_root()
st.title("Compare before and after")
runs = [r for r in list_runs(root) if r.config_file.exists() and r.config().get("command") == "post-train"]
if not runs:
    st.info("No post-training runs yet. Start one on the Runs page, or: "
            "`python -m pof post-train CKPT --method pof --epochs 10 --out runs/NAME`")
    st.stop()
labels = [str(r.path) for r in runs]
choice = st.selectbox("Post-training run", labels, format_func=lambda p: p.removeprefix(str(root) + "/"))
run = Run(choice)
cfg = run.config()
st.caption(f"{cfg['method']} on {cfg['model']} / {cfg['dataset']}, {cfg['epochs']} epochs at lr {cfg['lr']:g} "
           f"({cfg['lr_reason']}); before = checkpoints/initial, after = checkpoints/final")
analysis = Run(run.path / "analysis")


@st.fragment(run_every=1.0)
def analysis_status() -> None:
    status = analysis.status() if analysis.status_file.exists() else {"state": "absent"}
    state = status["state"]
    if state in ("queued", "running"):
        st.progress(min(1.0, status.get("progress") or 0.0), text=f"analysing: {status.get('stage', 'starting')}")
        if st.button("Cancel analysis"):
            analysis.request_cancel()
    elif state == "failed":
        st.error(f"analysis failed: {status.get('error', '')}")
        st.code(log_tail(analysis), language=None)
    if state != st.session_state.get("analysis_state"):
        st.session_state["analysis_state"] = state
        if state in ("done", "failed", "cancelled"):
            st.rerun()  # redraw the figures below with the new results


if run.status().get("state") != "done":
    st.warning("This run has not finished; the comparison needs its final checkpoint.")
else:
    busy = active_runs(root)
    if st.button("Compute the comparison", type="primary", disabled=bool(busy),
                 help="Hessians of both checkpoints, landscapes along shared directions, interpolation; a background job"):
        (run.path / "analysis" / "cancel").unlink(missing_ok=True)
        start_job(run.path / "analysis", ["-m", "analysis", "report", str(run.path), "--quiet"])
        st.session_state["analysis_state"] = "queued"
    if busy:
        st.caption(f"{busy[0].path.name} is running; one job at a time on this machine.")
    analysis_status()

results = load_report(run.path)


def show(fig, name: str, data) -> None:
    st.plotly_chart(fig, width="stretch", key=f"fig-{name}")
    c1, c2 = st.columns(2)
    c1.download_button("figure (HTML)", fig.to_html(include_plotlyjs="cdn"), f"{run.path.name}-{name}.html",
                       "text/html", key=f"html-{name}")
    c2.download_button("numbers (JSON)", json.dumps(data), f"{run.path.name}-{name}.json", "application/json",
                       key=f"json-{name}")


st.subheader("Training curves")
show(training_curves(run.epochs()), "curves", run.epochs())
if {"hessian-before", "hessian-after"} <= set(results):
    h = {"before": results["hessian-before"], "after": results["hessian-after"]}
    st.subheader("Hessian")
    st.caption(h["after"]["eval_set"] + "; the last layer exactly on the whole training set. Hatched bars did not converge.")
    show(hessian_bars(h), "hessian", h)
    show(density_figure(h), "density", {k: v["density"] for k, v in h.items()})
if "landscape-1d" in results:
    st.subheader("Loss landscape")
    st.caption("Along the same filter-normalized random directions for both; " + results["landscape-1d"]["after"]["eval_set"])
    show(slices_1d(results["landscape-1d"]), "slices-1d", results["landscape-1d"])
if "landscape-2d" in results:
    show(surfaces_3d(results["landscape-2d"]), "surfaces-3d", results["landscape-2d"])
    show(contours_2d(results["landscape-2d"]), "contours-2d", results["landscape-2d"])
if "interpolation" in results:
    st.subheader("From before to after")
    show(interpolation_figure(results["interpolation"]), "interpolation", results["interpolation"])
