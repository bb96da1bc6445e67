"""The live view of one job, shared by the pages that start jobs: state, progress with time left,
PoF diagnostics, small curves, Cancel. Polls the run folder; never touches the job itself."""

from __future__ import annotations

import time
from pathlib import Path

import streamlit as st

from app.figures import training_curves
from app.jobs import log_tail, runs_root
from pof.jobqueue import job_slots, queue_state
from pof.runs import Run


def time_left(status: dict) -> str:
    p, started = status.get("progress") or 0.0, status.get("started")
    if not started or p <= 0.01:
        return ""
    left = (time.time() - started) * (1 - p) / p
    return f", about {left / 60:.0f} min left" if left >= 90 else f", about {left:.0f} s left"


def state_box(run: Run, status: dict, root: Path | None = None) -> None:
    state = status.get("state", "unknown")
    if state == "queued":
        root = root or runs_root()
        ahead, running = queue_state(run, root)
        st.progress(0.0, text="queued: starting" if ahead == 0 and running < job_slots() else
                    f"queued: waiting ({running} running, {ahead} ahead in the queue)")
    elif state == "running":
        st.progress(min(1.0, status.get("progress") or 0.0),
                    text=(f"running: {status['stage']}" if "stage" in status else
                          f"running: epoch {status.get('epoch', 0)}/{status.get('epochs', '?')} done, "
                          f"step {status.get('step', 0)}/{status.get('total_steps', '?')}") + time_left(status))
    elif state == "done":
        st.success(f"done in {status.get('finished', 0) - status.get('started', 0):.0f} s")
    elif state == "cancelled":
        st.warning(status.get("message") or status.get("error") or "cancelled")
    else:
        st.error(f"{state}: {status.get('error', '')}")
        tail = log_tail(run)
        if tail:
            st.code(tail, language=None)
    if state in ("queued", "running") and st.button("Cancel", key=f"cancel-{run.path}"):
        run.request_cancel()


def live_status(run: Run) -> None:
    """The state and PoF's diagnostics of a run, refreshed every second, and its epoch curves,
    refreshed every few seconds (a chart costs far more to send than a status line)."""
    _live_state(run)
    _live_curves(run)


@st.fragment(run_every=1.0)
def _live_state(run: Run) -> None:
    status = run.status()
    summary = run.summary()
    st.caption(f"{summary['command']} · {summary['model']} on {summary['dataset']} · epochs {summary['epochs']}")
    with st.container():  # one fixed slot for the state, so the elements below keep their places
        state_box(run, status)
    s = run.last("step")
    last = run.last("epoch")
    if s and "eta_star" in s:  # PoF's own diagnostics, as they come
        cols = st.columns(4)
        cols[0].metric("eta*", f"{s['eta_star']:.3g}", help="the line search's step on the weak batch")
        cols[1].metric("gamma", f"{s['gamma']:.3f}", help="random scale of this step's perturbation")
        cols[2].metric("|delta|", f"{s['delta_norm']:.3g}", help="length of the last-layer perturbation")
        cols[3].metric("rejected steps", last.get("rejected_count", 0) if last else 0,
                       help="steps of the last finished epoch whose line search found no bracket below the cap")
    if last:
        cols = st.columns(3)
        cols[0].metric("epoch", last["epoch"])
        cols[1].metric("test accuracy", f"{last['test_acc']:.2%}")
        cols[2].metric("test loss", f"{last['test_loss']:.4f}")


@st.fragment(run_every=4.0)
def _live_curves(run: Run) -> None:
    epochs = run.epochs()
    if epochs:
        st.plotly_chart(training_curves(epochs), width="stretch", key="curves")


def free_name(root: Path, name: str) -> Path:
    """root/name, or root/name-2, -3 ... if that folder already holds a run."""
    target, i = root / name, 2
    while (target / "status.json").exists():
        target, i = root / f"{name}-{i}", i + 1
    return target
