"""Runs: watch any job live, browse every run, and pre-train a model on an offline dataset."""

import streamlit as st

from app.classroom import job_refusal
from app.curvature_view import (
    TRACK_HELP,
    TRACK_LABELS,
    in_field_labels,
    show_curvature,
    tracking_fields,
)
from app.jobs import read_config, run_path, runs_root, start_job
from app.live import live_status
from pof.cli import config_argv
from pof.config import PretrainConfig, TrackConfig
from pof.data.names import OFFLINE
from pof.models.registry import ARCHS
from pof.runs.run import Run, list_runs
from pof.validate import ConfigError

FIELD_LABELS = {"epochs": "Epochs", "lr": "Learning rate", "seed": "Seed", **TRACK_LABELS}

root = runs_root()
st.title("Runs")
st.caption(
    f"Run folders under `{root}` (set `POF_RUNS` to look elsewhere). Jobs run as separate "
    "processes, one at a time (the others wait in a queue; `POF_JOBS=2` allows two): they keep "
    "going if you reload the page or restart the app."
)

with st.expander("Pre-train a model", expanded=not list_runs(root)):
    # outside the form, so that ticking it shows the tracking fields inside the form at once
    track = st.checkbox("Track curvature", key="pretrain-track", help=TRACK_HELP)
    with st.form("pretrain"):
        c1, c2, c3 = st.columns(3)
        dataset = c1.selectbox(
            "Dataset", OFFLINE, help="offline datasets that ship with scikit-learn or are generated"
        )
        model = c2.selectbox(
            "Model",
            list(ARCHS),
            index=list(ARCHS).index("cnn-small"),
            help="cnn-small for digits, mlp for the 2-D point sets",
        )
        optimizer = c3.selectbox("Optimizer", ["sgd", "sam"], help="Nesterov SGD, or SAM around it")
        c1, c2, c3 = st.columns(3)
        epochs = c1.number_input("Epochs", 1, 500, 30)
        lr = c2.number_input("Learning rate", 1e-5, 10.0, 0.05, format="%.4f")
        seed = c3.number_input("Seed", 0, 10_000, 0)
        name = st.text_input("Run name", placeholder="dataset-model-optimizer-seed")
        tracking = tracking_fields(track)
        submitted = st.form_submit_button("Start", type="primary")
    if submitted:
        name = name.strip() or f"{dataset}-{model}-{optimizer}-{seed}"
        refused = None
        try:
            target = run_path(root, name)  # nothing outside the runs folder, whatever was typed
        except ValueError as e:
            refused = f"Run name refused: {e}"
        try:
            # the job's command is made from the config the CLI builds: the same checks, up front
            cfg = PretrainConfig(
                model=model,
                dataset=dataset,
                optimizer=optimizer,
                epochs=int(epochs),
                lr=float(lr),
                seed=int(seed),
                tracking=TrackConfig(**tracking),
            )
        except ConfigError as e:
            refused = refused or f"Not started: {in_field_labels(str(e), FIELD_LABELS)}"
        if refused:
            st.error(refused)
        elif model != "mlp" and dataset != "digits":
            st.error(f"{model} needs images; use mlp for the 2-D set {dataset}.")
        elif (target / "status.json").exists():
            st.error(f"{target} already holds a run; choose another name.")
        elif refused := job_refusal():
            st.error(refused)
        else:
            args = ["-m", "pof", *config_argv(cfg), "--out", str(target), "--quiet"]
            start_job(target, args, root)
            st.session_state["selected_run"] = str(target)
            st.success(f"Started {name}.")


def training_runs() -> list[Run]:
    """Pre- and post-training runs; the comparison's analysis jobs are shown on the Compare page."""
    # the parts of a comparison (RUN/analysis/PART, ROOT/compare/KEY/PART) are shown where they
    # belong
    return [
        r
        for r in list_runs(root)
        if r.path.parent.name != "analysis" and r.path.parent.parent.name != "compare"
    ]


@st.fragment(run_every=5.0)
def runs_table() -> None:
    # a run whose status or config is unreadable is a row in state "broken", with the reason
    # (Run.summary)
    st.dataframe([r.summary() for r in training_runs()], width="stretch", hide_index=True)


runs = training_runs()
if not runs:
    st.info(
        "No runs yet. Start one above, or from a terminal: `python -m pof pretrain --model "
        "cnn-small --dataset digits --epochs 30 --out runs/digits-sgd`"
    )
else:
    labels = [str(r.path) for r in runs]
    chosen = st.session_state.get("selected_run")
    index = labels.index(chosen) if chosen in labels else 0
    choice = st.selectbox(
        "Run", labels, index=index, format_func=lambda p: p.removeprefix(str(root) + "/")
    )
    run = Run(choice)
    live_status(run)
    show_curvature(run)
    if run.config_file.exists():  # a queued job writes it once its process is up
        cfg, why = read_config(run)
        with st.expander("Configuration"):
            if why:
                st.error(why)
            else:
                st.json(cfg)
    runs_table()
