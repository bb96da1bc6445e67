"""Compare: before vs after a post-training run (and, optionally, a control run from the same
checkpoint): Hessian spectra, landscapes, interpolation, curves. Each analysis is its own
background job whose result stays in the run folder."""

import json

import streamlit as st

from analysis.report import PARTS, load_report, part_dir
from app.figures import (contours_2d, density_figure, hessian_bars, interpolation_figure, method_curves, slices_1d,
                         surfaces_3d)
from app.jobs import log_tail, runs_root, start_job
from pof.runs import Run, list_runs

PART_TITLES = {"hessian": "Hessian spectra", "landscape-1d": "1-D loss slices", "landscape-2d": "2-D loss surfaces",
               "interpolation": "interpolation before → after"}

root = runs_root()
st.title("Compare before and after")
configs = {str(r.path): r.config() for r in list_runs(root)  # read once per page run
           if r.path.parent.name != "analysis" and r.config_file.exists()}
posts = [Run(p) for p, c in configs.items() if c.get("command") == "post-train"]
if not posts:
    st.info("No post-training runs yet. Start one on the Post-train page, or: "
            "`python -m pof post-train CKPT --method pof --epochs 10 --out runs/NAME`")
    st.stop()
labels = [str(r.path) for r in posts]
chosen = st.session_state.get("selected_run") or ("run" in st.query_params and str(root / st.query_params["run"]))
c1, c2 = st.columns(2)
choice = c1.selectbox("Post-training run", labels, index=labels.index(chosen) if chosen in labels else 0,
                      format_func=lambda p: p.removeprefix(str(root) + "/"))
run = Run(choice)
cfg = configs[choice]
family = [r for r in posts if configs[str(r.path)].get("checkpoint_sha256") == cfg.get("checkpoint_sha256")]
others = [str(r.path) for r in family if r.path != run.path]
control_choice = c2.selectbox("Control run (optional overlay)", [""] + others,
                              format_func=lambda p: "none" if not p else f"{p.removeprefix(str(root) + '/')} ({configs[p]['method']})",
                              help="another post-training of the same checkpoint, e.g. finetune-frozen")
control = Run(control_choice) if control_choice else None
st.caption(f"{cfg['method']} on {cfg['model']} / {cfg['dataset']}, {cfg['epochs']} epochs at lr {cfg['lr']:g} "
           f"({cfg['lr_reason']}); before = checkpoints/initial, after = checkpoints/final")

compared = [run] + ([control] if control else [])
finished = [r for r in compared if r.status().get("state") == "done"]


def jobs() -> dict[tuple[str, str], Run]:
    return {(str(r.path), part): Run(part_dir(r.path, part)) for r in compared for part in PARTS}


reports = {str(r.path): load_report(r.path) for r in finished}  # only results of the current checkpoints
missing = [(key, job) for key, job in jobs().items() if key[0] in reports and key[1] not in reports[key[0]]
           and job.status()["state"] not in ("queued", "running")]  # "unknown" when never started
if len(finished) < len(compared):
    st.warning("The comparison needs finished runs: " + ", ".join(r.path.name for r in compared if r not in finished)
               + " has not finished yet.")
if missing and st.button(f"Compute {len(missing)} analys{'is' if len(missing) == 1 else 'es'}", type="primary",
                         help="each analysis is a background job (they run one after another); results stay in "
                              "RUN/analysis/ and show at once next time"):
    for (run_path, part), job in missing:
        (job.path / "cancel").unlink(missing_ok=True)
        start_job(job.path, ["-m", "analysis", "report", run_path, "--part", part, "--quiet"], root)
    st.rerun()  # redraw without the button: the jobs are queued now


@st.fragment(run_every=1.0)
def analysis_status() -> None:
    states = {}
    for (run_path, part), job in jobs().items():
        status = job.status()
        states[(run_path, part)] = state = status["state"]
        name = f"{PART_TITLES[part]}" + (f" · {Run(run_path).path.name}" if control else "")
        if state == "queued":
            st.progress(0.0, text=f"{name}: queued")
        elif state == "running":
            st.progress(min(1.0, status.get("progress") or 0.0), text=f"{name}: {status.get('stage', '')}")
        elif state == "failed":
            st.error(f"{name} failed: {status.get('error', '')}")
            st.code(log_tail(job), language=None)
    active = [k for k, s in states.items() if s in ("queued", "running")]
    if active and st.button("Cancel the analyses"):
        for k in active:
            jobs()[k].request_cancel()
    seen = st.session_state.setdefault("analysis_states", {})
    changed = any(seen.get(str(k)) in ("queued", "running") and s not in ("queued", "running") for k, s in states.items())
    seen.update({str(k): s for k, s in states.items()})
    if changed:
        st.rerun()  # a result arrived: redraw the figures below


analysis_status()


def show(fig, name: str, data) -> None:
    st.plotly_chart(fig, width="stretch", key=f"fig-{name}")
    c1, c2 = st.columns(2)
    c1.download_button("figure (HTML)", fig.to_html(include_plotlyjs="cdn"), f"{run.path.name}-{name}.html",
                       "text/html", key=f"html-{name}")
    c2.download_button("numbers (JSON)", json.dumps(data), f"{run.path.name}-{name}.json", "application/json",
                       key=f"json-{name}")


st.subheader("Accuracy and loss over the post-training")
st.caption(f"Every method run on this checkpoint ({len(family)} run{'s' if len(family) > 1 else ''}); "
           f"solid lines: test, dotted: the training set evaluated with the unperturbed model.")
curves = {f"{r.path.name} ({configs[str(r.path)]['method']})": r.epochs() for r in family}
show(method_curves(curves), "curves", curves)

results = reports.get(str(run.path), {})
control_results = reports.get(str(control.path), {}) if control else {}
control_label = f"after, {configs[control_choice]['method']}" if control else ""


def series(part: str) -> dict:
    """before / after (/ the control's after) for one part, as the figure builders take them."""
    out = {"before": results[part]["before"], "after": results[part]["after"]}
    if part in control_results:
        out[control_label] = control_results[part]["after"]
    return out


if "hessian" in results:
    h = series("hessian")
    st.subheader("Hessian")
    st.caption(h["after"]["eval_set"] + "; the last layer exactly on the whole training set. Hatched bars did not converge.")
    show(hessian_bars(h), "hessian", h)
    show(density_figure(h), "density", {k: {"whole_network": v["density"], "last_layer_spectrum": v["last_layer"].get("spectrum")}
                                        for k, v in h.items()})
if "landscape-1d" in results:
    st.subheader("Loss landscape")
    st.caption("Along the same filter-normalized random directions, drawn once from the before model, for all; "
               + results["landscape-1d"]["after"]["eval_set"])
    show(slices_1d(series("landscape-1d")), "slices-1d", series("landscape-1d"))
if "landscape-2d" in results:
    # The 3-D surfaces are drawn only when their tab is opened: WebGL without a GPU costs about a
    # second per render, most of this page's time in the browser (benchmarks/RESULTS.md).
    contours_tab, surfaces_tab = st.tabs(["contour maps", "3-D surfaces"], on_change="rerun", key="view-2d")
    with contours_tab:
        show(contours_2d(series("landscape-2d")), "contours-2d", series("landscape-2d"))
    if surfaces_tab.open:
        with surfaces_tab:
            show(surfaces_3d(series("landscape-2d")), "surfaces-3d", series("landscape-2d"))
if "interpolation" in results:
    st.subheader("From before to after")
    interp = {"after": results["interpolation"]}
    if "interpolation" in control_results:
        interp[control_label] = control_results["interpolation"]
    show(interpolation_figure(interp), "interpolation", interp)
