"""Runs: start a pre-training job on an offline dataset, watch it live, browse finished runs."""


from pathlib import Path

import streamlit as st

from app.figures import training_curves
from app.jobs import active_runs, log_tail, runs_root, start_job
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
            start_job(target, ["-m", "pof", "pretrain", "--dataset", dataset, "--model", model, "--optimizer", optimizer,
                                   "--epochs", str(epochs), "--lr", str(lr), "--seed", str(seed),
                                   "--out", str(target), "--quiet"])
            st.session_state["selected_run"] = str(target)
            st.success(f"Started {name}.")


finished = [r for r in list_runs(root) if r.checkpoint("final").exists() and r.config_file.exists()]
with st.expander("Post-train a checkpoint with PoF or a control", expanded=bool(finished) and len(list_runs(root)) == 1):
    if not finished:
        st.caption("Pre-train a model first: post-training starts from a finished run's final checkpoint.")
    else:
        from pof.method import PoFConfig
        from pof.posttrain import METHODS
        pd = PoFConfig()
        with st.form("post-train"):
            source = st.selectbox("Checkpoint", [str(r.checkpoint("final")) for r in finished],
                                  format_func=lambda p: p.removeprefix(str(root) + "/"))
            c1, c2, c3 = st.columns(3)
            method = c1.selectbox("Method", METHODS, help="pof; finetune-frozen: the same without the perturbation; "
                                  "finetune: all layers; sam: all layers with SAM; random-direction: PoF's length, random direction")
            post_epochs = c2.number_input("Epochs", 1, 200, 10, help="the paper: 10 (CIFAR), 50 (SVHN)")
            post_lr = c3.number_input("Learning rate (0 = continue the pre-training schedule)", 0.0, 1.0, 0.0,
                                      format="%.5f", help="the paper continues its schedule: 0.1 x 0.2^4 = 1.6e-4")
            c1, c2, c3 = st.columns(3)
            weak = c1.number_input("Weak batch size", 1, 4096, pd.weak_batch_size,
                                   help="the mini-batch whose last-layer gradient sets the perturbation's direction")
            gamma = c2.number_input("gamma max", 0.0, 10.0, pd.gamma_max,
                                    help="the perturbation is gamma * eta* along -g, gamma ~ U(0, gamma max)")
            post_seed = c3.number_input("Seed ", 0, 10_000, 0, help="data order, weak batches and gamma")
            post_name = st.text_input("Run name ", placeholder="source-method-seed")
            go = st.form_submit_button("Start post-training", type="primary")
        if go:
            src_name = Path(source).parents[1].name
            post_name = post_name.strip() or f"{src_name}-{method}-{post_seed}"
            target = root / post_name
            busy = active_runs(root)
            if busy:
                st.error(f"{busy[0].path.name} is still running; this 2-core machine runs one job at a time.")
            elif (target / "config.json").exists():
                st.error(f"{target} already holds a run; choose another name.")
            else:
                args = ["-m", "pof", "post-train", source, "--method", method, "--epochs", str(post_epochs),
                        "--weak-batch-size", str(weak), "--gamma-max", str(gamma), "--seed", str(post_seed),
                        "--out", str(target), "--quiet"] + (["--lr", str(post_lr)] if post_lr > 0 else [])
                start_job(target, args)
                st.session_state["selected_run"] = str(target)
                st.success(f"Started {post_name}.")


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
    steps = run.metrics("step")
    if steps and "eta_star" in steps[-1]:  # PoF's own diagnostics, as they come
        s = steps[-1]
        cols = st.columns(4)
        cols[0].metric("eta*", f"{s['eta_star']:.3g}", help="the line search's step on the weak batch")
        cols[1].metric("gamma", f"{s['gamma']:.3f}", help="random scale of this step's perturbation")
        cols[2].metric("|delta|", f"{s['delta_norm']:.3g}", help="length of the last-layer perturbation")
        cols[3].metric("rejected steps", sum(r.get("rejected", False) for r in steps))
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
