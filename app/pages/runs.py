"""Runs: start a pre-training job on an offline dataset, watch it live, browse finished runs."""


import streamlit as st

from app.figures import training_curves
from app.jobs import active_runs, log_tail, runs_root, start_cli_job
from pof.data import OFFLINE
from pof.models import ARCHS
from pof.runs import Run, list_runs

root = runs_root()
st.title("Runs")
st.caption(f"Run folders under `{root}` (set `POF_RUNS` to look elsewhere). Jobs run as separate "
           f"processes: they keep going if you reload the page or restart the app.")

with st.expander("Pre-train a model", expanded=not list_runs(root)):
    with st.form("pretrain"):
        c1, c2, c3 = st.columns(3)
        dataset = c1.selectbox("Dataset", OFFLINE, help="offline datasets that ship with scikit-learn or are generated")
        model = c2.selectbox("Model", list(ARCHS), index=list(ARCHS).index("cnn-small"),
                             help="cnn-small for digits, mlp for the 2-D point sets")
        optimizer = c3.selectbox("Optimizer", ["sgd", "sam"], help="Nesterov SGD, or SAM around it")
        c1, c2, c3 = st.columns(3)
        epochs = c1.number_input("Epochs", 1, 500, 30)
        lr = c2.number_input("Learning rate", 1e-5, 10.0, 0.05, format="%.4f")
        seed = c3.number_input("Seed", 0, 10_000, 0)
        name = st.text_input("Run name", placeholder="dataset-model-optimizer-seed")
        submitted = st.form_submit_button("Start", type="primary")
    if submitted:
        name = name.strip() or f"{dataset}-{model}-{optimizer}-{seed}"
        busy = active_runs(root)
        target = root / name
        if busy:
            st.error(f"{busy[0].path.name} is still running; this 2-core machine runs one job at a time.")
        elif model != "mlp" and dataset != "digits":
            st.error(f"{model} needs images; use mlp for the 2-D set {dataset}.")
        elif (target / "config.json").exists():
            st.error(f"{target} already holds a run; choose another name.")
        else:
            start_cli_job(target, ["pretrain", "--dataset", dataset, "--model", model, "--optimizer", optimizer,
                                   "--epochs", str(epochs), "--lr", str(lr), "--seed", str(seed),
                                   "--out", str(target), "--quiet"])
            st.session_state["selected_run"] = str(target)
            st.success(f"Started {name}.")


@st.fragment(run_every=1.0)
def live_status(run: Run) -> None:
    status = run.status()
    state = status.get("state", "unknown")
    epochs = run.epochs()
    summary = run.summary()
    st.caption(f"{summary['command']} · {summary['model']} on {summary['dataset']} · epochs {summary['epochs']}")
    # one fixed container for the state, so the elements below keep their places when it changes
    with st.container():
        _state_box(run, state, status)
    if epochs:
        last = epochs[-1]
        cols = st.columns(3)
        cols[0].metric("epoch", last["epoch"])
        cols[1].metric("test accuracy", f"{last['test_acc']:.2%}")
        cols[2].metric("test loss", f"{last['test_loss']:.4f}")
        st.plotly_chart(training_curves(epochs), width="stretch", key="curves")


def _state_box(run: Run, state: str, status: dict) -> None:
    if state in ("queued", "running"):
        st.progress(min(1.0, status.get("progress") or 0.0),
                    text=f"{state}: epoch {status.get('epoch', 0)}/{status.get('epochs', '?')} done, "
                         f"step {status.get('step', 0)}/{status.get('total_steps', '?')}")
        if st.button("Cancel", key=f"cancel-{run.path}"):
            run.request_cancel()
    elif state == "done":
        st.success(f"done in {status.get('finished', 0) - status.get('started', 0):.0f} s")
    elif state == "cancelled":
        st.warning(status.get("message", "cancelled"))
    else:
        st.error(f"{state}: {status.get('error', '')}")
        tail = log_tail(run)
        if tail:
            st.code(tail, language=None)


@st.fragment(run_every=2.0)
def runs_table() -> None:
    st.dataframe([r.summary() for r in list_runs(root)], width="stretch", hide_index=True)


runs = list_runs(root)
if not runs:
    st.info("No runs yet. Start one above, or from a terminal: "
            "`python -m pof pretrain --model cnn-small --dataset digits --epochs 30 --out runs/digits-sgd`")
else:
    labels = [str(r.path) for r in runs]
    chosen = st.session_state.get("selected_run")
    index = labels.index(chosen) if chosen in labels else 0
    choice = st.selectbox("Run", labels, index=index, format_func=lambda p: p.removeprefix(str(root) + "/"))
    run = Run(choice)
    live_status(run)
    if run.config_file.exists():  # a queued job writes it once its process is up
        with st.expander("Configuration"):
            st.json(run.config())
    runs_table()
