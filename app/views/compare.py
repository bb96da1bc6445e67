"""Compare: before vs after a post-training run (and, optionally, a control run from the same
checkpoint): per-layer sharpness, Hessian spectra, landscapes, interpolation, curves. Each analysis
is its own background job whose result stays in the run folder; the figures are app.comparison's,
the same as the Inspect page's."""

from dataclasses import asdict

import streamlit as st

from analysis.cache import file_digest
from analysis.compare import PARTS, ReportConfig, load_report, part_dir
from analysis.tracking import job_dir as track_dir
from analysis.tracking import series as curvature_series
from app.classroom import job_refusal
from app.comparison import (
    PART_TITLES,
    TRACES_ONLY,
    layers_estimate,
    sample_fields,
    show_figure,
    show_results,
    traces_only_field,
    watch_parts,
)
from app.figures.curvature_compare import (
    layer_ratio_panels,
    layer_trace_panels,
    ratio_heatmaps,
    top_eigenvalue_over_time,
)
from app.figures.training import method_curves
from app.jobs import read_config, runs_root, start_job
from app.live import url_run
from pof.models.formats import ModelSource
from pof.models.metadata import dataset_of
from pof.options import to_argv
from pof.runs.run import Run, RunError, list_runs

root = runs_root()
st.title("Compare before and after")
configs, unreadable = (
    {},
    [],
)  # read once per page run; a run whose config is unreadable is named, not listed
for r in list_runs(root):
    if r.path.parent.name != "analysis" and r.config_file.exists():  # analysis parts are runs too
        cfg, why = read_config(r)
        if why:
            unreadable.append(why)
        else:
            configs[str(r.path)] = cfg
if unreadable:
    st.warning("Not listed, unreadable: " + "; ".join(unreadable))
posts = [Run(p) for p, c in configs.items() if c.get("command") == "post-train"]
if not posts:
    st.info(
        "No post-training runs yet. Start one on the Post-train page, or: "
        "`python -m pof post-train CKPT --method pof --epochs 10 --out runs/NAME`"
    )
    st.stop()
labels = [str(r.path) for r in posts]
url = url_run(root)  # a name from the URL is confined to the runs folder
chosen = st.session_state.get("selected_run") or (url and str(url))
c1, c2 = st.columns(2)
choice = c1.selectbox(
    "Post-training run",
    labels,
    index=labels.index(chosen) if chosen in labels else 0,
    format_func=lambda p: p.removeprefix(str(root) + "/"),
)
run = Run(choice)
cfg = configs[choice]
family = [
    r
    for r in posts
    if configs[str(r.path)].get("checkpoint_sha256") == cfg.get("checkpoint_sha256")
]
others = [str(r.path) for r in family if r.path != run.path]
control_choice = c2.selectbox(
    "Control run (optional overlay)",
    ["", *others],
    format_func=lambda p: (
        "none" if not p else f"{p.removeprefix(str(root) + '/')} ({configs[p].get('method')})"
    ),
    help="another post-training of the same checkpoint, e.g. finetune-frozen",
)
control = Run(control_choice) if control_choice else None


def _number(x) -> str:
    """A number as short as it reads (8e-05, not 8.000000000000002e-05); else as it is."""
    return f"{x:g}" if isinstance(x, int | float) else str(x)


st.caption(
    f"{cfg.get('method')} on {cfg.get('model')} / {cfg.get('dataset')}, {cfg.get('epochs')} "
    "epochs at lr "
    f"{_number(cfg.get('lr'))} ({cfg.get('lr_reason')}); before = checkpoints/initial, after = "
    "checkpoints/final"
)

compared = [run] + ([control] if control else [])
finished = [r for r in compared if r.status().get("state") == "done"]


def jobs() -> dict[tuple[str, str], Run]:
    return {
        (str(r.path), part): Run(part_dir(r.path / "analysis", part))
        for r in compared
        for part in PARTS
    }


def report_of(run: Run) -> dict:
    """The finished parts of a run's comparison, typed, computed on its current checkpoints (a
    part that is unreadable or of another schema is left out by load_report: offered again)."""
    try:
        return load_report(run.path)
    except (RunError, OSError):  # the run folder itself is unreadable
        return {}


reports = {str(r.path): report_of(r) for r in finished}
missing = [
    (key, job)
    for key, job in jobs().items()
    if key[0] in reports
    and key[1] not in reports[key[0]]
    and job.status().get("state") not in ("queued", "running")
]  # "unknown" when never started
if len(finished) < len(compared):
    st.warning(
        "The comparison needs finished runs: "
        + ", ".join(
            f"{r.path.name} ({r.status().get('state')})" for r in compared if r not in finished
        )
        + " has not finished yet."
    )
settings = ReportConfig()  # what Compute computes with; a part already shown keeps its own
layer_runs = [Run(key[0]) for key, _ in missing if key[1] == "layers"]
if missing:
    s1, s2, _ = st.columns([1, 1, 2])
    sizes = sample_fields(s1, s2)
    settings = ReportConfig(**sizes, layer_traces_only=bool(layer_runs) and traces_only_field())
if layer_runs:  # before Compute: how long the per-layer parts will take (before and after each)
    first = layer_runs[0].checkpoint("initial")
    st.caption(
        layers_estimate(
            str(first),
            file_digest(first),
            dataset_of(first),
            {},
            asdict(ModelSource()),
            False,
            settings,
            2 * len(layer_runs),
            TRACES_ONLY,
        )
    )
if missing and st.button(
    f"Compute {len(missing)} analys{'is' if len(missing) == 1 else 'es'}",
    key="compute",  # one button whatever is missing: a click sent as the page changes still counts
    type="primary",
    help="each analysis is a background job (they run one after another); the results stay in "
    "the run's folder and show at once next time",
):
    if refused := job_refusal(len(missing)):
        st.error(refused)
        st.stop()
    for (run_path, part), job in missing:
        args = ["-m", "analysis", "report", run_path, "--part", part, *to_argv(settings)]
        start_job(job.path, [*args, "--quiet"], root)
    st.rerun()  # redraw without the button: the jobs are queued now


def track_jobs() -> dict[tuple[str, str], Run]:
    """The curvature-over-time jobs (python -m analysis track) of this checkpoint's runs that were
    ever started."""
    return {
        (str(r.path), "track"): Run(track_dir(r.path)) for r in family if track_dir(r.path).exists()
    }


watch_parts(
    {**jobs(), **track_jobs()},
    {
        **{
            key: PART_TITLES[key[1]].capitalize()
            + (f" · {Run(key[0]).path.name}" if control else "")
            for key in jobs()
        },
        **{key: f"Curvature over time · {Run(key[0]).path.name}" for key in track_jobs()},
    },
)


st.subheader("Accuracy and loss over the post-training")
st.caption(
    f"Every method run on this checkpoint ({len(family)} run{'s' if len(family) > 1 else ''}); "
    f"solid lines: test, dotted: the training set evaluated with the unperturbed model."
)
curves = {f"{r.path.name} ({configs[str(r.path)].get('method')})": r.epochs() for r in family}
show_figure(method_curves(curves), "curves", curves, run.path.name)


def curvature_over_time() -> None:
    """Per-layer sharpness and λ_max over the epochs of every method run on this checkpoint: each
    run's live series (--track), else the one computed from its checkpoints, else a button that
    computes it in the background (python -m analysis track RUN)."""
    st.subheader("Curvature over the post-training")
    found, sources, untracked, series_of = {}, [], [], {}
    for r in family:
        label = f"{r.path.name} ({configs[str(r.path)].get('method')})"
        s = curvature_series(r.path)
        if s is not None:
            series_of[label] = s
        found[label] = s.points if s else []  # family order: the colours of the curves above
        if s is None:
            untracked.append(r)
            continue
        how = (
            "recorded live"
            + (f" every {s.setup['every']} steps" if isinstance(s.setup.get("every"), int) else "")
            if s.source == "live"
            else f"from its {len(s.points)} checkpoints"
        )
        sources.append(
            f"{label}: {how}, {s.setup.get('samples', '?')} probe examples, "
            f"{s.setup.get('probes', '?')} probes"
        )
    busy = {
        str(r.path)
        for r in untracked
        if Run(track_dir(r.path)).status().get("state") in ("queued", "running")
    }
    startable = [
        r for r in untracked if r.status().get("state") == "done" and str(r.path) not in busy
    ]
    if untracked:
        st.caption(
            "No curvature series yet for "
            + ", ".join(r.path.name for r in untracked)
            + ": it is recorded during a post-training started with “Track curvature” ticked "
            "(Post-train page), or computed afterwards from the run's saved checkpoints (its "
            "first, its last and any saved in between)."
        )
    if startable and st.button(
        f"Compute curvature over time ({len(startable)} run{'s' if len(startable) > 1 else ''})",
        key="compute-track",
        help="a background job per run: the top eigenvalue, every layer's trace and the last "
        "layer's, at each saved checkpoint; kept in the run's folder",
    ):
        # the probe subset's size and probe count of a sibling's live series, so that the series
        # compare like for like (the subset itself follows from each run's seed)
        live = next((x.setup for x in series_of.values() if x.source == "live"), {})
        same = [
            part
            for key in ("samples", "probes")
            if isinstance(live.get(key), int)
            for part in (f"--{key}", str(live[key]))
        ]
        if refused := job_refusal(len(startable)):
            st.error(refused)
            return
        for r in startable:
            start_job(
                track_dir(r.path), ["-m", "analysis", "track", str(r.path), *same, "--quiet"], root
            )
        st.rerun()
    if not any(found.values()):
        return
    st.caption(
        "; ".join(sources)
        + ". Error bars: the Lanczos residual of λ_max (open markers: not converged) and one "
        "standard error of each Hutchinson trace."
    )
    prefix = f"{run.path.name}-over-time"
    show_figure(top_eigenvalue_over_time(found), "top-over-time", found, prefix)
    st.caption(
        "λ_max of the whole network (solid), the last layer's exact top eigenvalue (dotted) and "
        "the stability threshold of each run's learning rate (dashed): above it, gradient "
        "descent at that rate would diverge along the top direction."
    )
    show_figure(layer_ratio_panels(found), "layer-ratios", found, prefix)
    st.caption(
        "Each layer's trace relative to the starting checkpoint (trace at epoch e / at epoch 0, "
        "± its propagated standard error): below the dotted 1 the layer got flatter. A layer whose "
        "starting trace is within two standard errors of 0 has no ratio."
    )
    show_figure(ratio_heatmaps(found), "layer-ratio-heatmap", found, prefix)
    show_figure(layer_trace_panels(found), "layer-traces", found, prefix)
    st.caption("Each layer's Hessian block trace over the epochs, ± one standard error (band).")


curvature_over_time()

results = reports.get(str(run.path), {})
control_results = reports.get(str(control.path), {}) if control else {}
control_label = f"after, {configs[control_choice].get('method')}" if control else ""
# before / after (/ the control's after) for each part, as the figure builders take them
series = {}
for part, result in results.items():
    if part != "interpolation":
        series[part] = {"before": result["before"], "after": result["after"]}
        if part in control_results:
            series[part][control_label] = control_results[part]["after"]


def line_of(parts: dict):
    """The interpolation part's one line (its label names the two checkpoints)."""
    return next(iter(parts["interpolation"].values()))


interp = {"after": line_of(results)} if "interpolation" in results else None
if interp and "interpolation" in control_results:
    interp[control_label] = line_of(control_results)
show_results(series, run.path.name, interp)
