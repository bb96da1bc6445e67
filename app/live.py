"""The live view of one job, shared by the pages that start jobs: state, progress with time left,
PoF diagnostics, small curves, Cancel. Polls the run folder; never touches the job itself."""

from __future__ import annotations

import time
from pathlib import Path

import streamlit as st

from app.classroom import may_cancel
from app.jobs import log_tail, run_path, runs_root, safe_name
from app.messages import job_error
from pof.runs.jobqueue import waiting_text
from pof.runs.run import Run, number_text


def time_left(status: dict) -> str:
    p, started = status.get("progress") or 0.0, status.get("started")
    if not isinstance(p, (int, float)) or not isinstance(started, (int, float)) or p <= 0.01:
        return ""
    left = (time.time() - started) * (1 - p) / p
    return f", about {left / 60:.0f} min left" if left >= 90 else f", about {left:.0f} s left"


def fraction(value) -> float:
    return min(1.0, max(0.0, value)) if isinstance(value, (int, float)) and value == value else 0.0


def state_box(run: Run, status: dict, root: Path | None = None) -> None:
    state = status.get("state", "unknown")
    if state == "queued":
        # behind what: the running job's kind, model and start (pof.runs.jobqueue)
        st.progress(0.0, text=waiting_text(run, root or runs_root()))
    elif state == "running":
        st.progress(
            fraction(status.get("progress")),
            text=(
                f"running: {status['stage']}"
                if "stage" in status
                else f"running: epoch {status.get('epoch', 0)}/{status.get('epochs', '?')} done, "
                f"step {status.get('step', 0)}/{status.get('total_steps', '?')}"
            )
            + time_left(status),
        )
    elif state == "done":
        finished, started = status.get("finished"), status.get("started")
        ok = all(isinstance(t, (int, float)) for t in (finished, started))
        st.success(f"done in {finished - started:.0f} s" if ok else "done")
    elif state == "cancelled":
        st.warning(status.get("message") or status.get("error") or "cancelled")
    else:  # failed, dead, broken (an unreadable status.json) or unknown: say so, with the log's end
        st.error(f"{state}: {job_error(status, fields={'dataset': 'Dataset'}, page='job')}")
        tail = log_tail(run)
        if tail:
            st.code(tail, language=None)
    if (
        state in ("queued", "running")
        and may_cancel(run.path)
        and st.button("Cancel", key=f"cancel-{run.path}")
    ):
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
    st.caption(
        f"{summary['command']} · {summary['model']} on {summary['dataset']} · epochs "
        f"{summary['epochs']}"
    )
    with st.container():  # one fixed slot for the state, so the elements below keep their places
        state_box(run, status)
    s = run.last("step")
    last = run.last("epoch")
    if s and "eta_star" in s:  # PoF's own diagnostics, as they come
        cols = st.columns(4)
        cols[0].metric(
            "eta*",
            number_text(s.get("eta_star"), ".3g"),
            help="the step along −g that minimises the weak batch's loss (the line search's best "
            "grid point)",
        )
        cols[1].metric(
            "gamma",
            number_text(s.get("gamma"), ".3f"),
            help="random scale of this step's perturbation",
        )
        cols[2].metric(
            "|delta|",
            number_text(s.get("delta_norm"), ".3g"),
            help="length of the last-layer perturbation",
        )
        cols[3].metric(
            "rejected steps",
            number_text(last.get("rejected_count", 0) if last else 0, ".0f"),
            help="steps of the last finished epoch taken without a perturbation because η_max "
            "reached the rejection cap (the weak batch's loss never rose along −g before it)",
        )
    if last:
        cols = st.columns(3)
        cols[0].metric("epoch", str(last.get("epoch", "?")))
        cols[1].metric("test accuracy", number_text(last.get("test_acc"), ".2%"))
        cols[2].metric("test loss", number_text(last.get("test_loss"), ".4f"))


@st.fragment(run_every=4.0)
def _live_curves(run: Run) -> None:
    from app.figures.training import training_curves

    epochs = run.epochs()
    if epochs:
        try:
            fig = training_curves(epochs)
        except (
            KeyError,
            TypeError,
            ValueError,
        ) as e:  # records of the wrong shape: the numbers above still show
            st.caption(
                f"No curves: {run.path.name}/metrics.jsonl holds epoch records this page cannot "
                f"draw ({e})."
            )
            return
        st.plotly_chart(fig, width="stretch", key="curves")


def free_name(root: Path, name: str) -> Path:
    """root/NAME (made safe), or NAME-2, -3 ... if that folder already holds a run."""
    name = safe_name(name)
    target, i = run_path(root, name), 2
    while (target / "status.json").exists():
        target, i = run_path(root, f"{name}-{i}"), i + 1
    return target


def url_run(root: Path) -> Path | None:
    """The run named in the URL (?run=NAME), confined to the runs folder; a refused name is shown,
    not used."""
    name = st.query_params.get("run")
    if not name:
        return None
    try:
        return run_path(root, name)
    except ValueError as e:
        st.error(f"The run in this page's address is refused: {e}")
        return None
