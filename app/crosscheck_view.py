"""The Inspect page's "Cross-check with PyHessian": PyHessian's own eigenvalues and trace, run as a
background job (`analysis compare --part crosscheck`) on the same model, data, seed and probes as
this project's estimates, shown beside them with their agreement."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import streamlit as st

from analysis.compare import load_part, part_dir
from app.classroom import job_refusal, may_cancel
from app.jobs import log_tail, start_job
from app.live import fraction, time_left
from pof.runs.run import BROKEN, Run

PART = "crosscheck"
HELP = (
    "runs PyHessian (the library many users know) on the same model, the same training samples, "
    "seed and number of probes as this project's Lanczos eigenvalues and Hutchinson trace, as a "
    "background job; the answer stays with the other analyses and shows at once next time"
)


def _rows(check) -> list[dict]:
    return [
        {
            "Quantity": r.quantity,
            "This project": f"{r.ours:.6g} ± {r.ours_error:.2g}",
            "PyHessian": f"{r.pyhessian:.6g} ± {r.pyhessian_error:.2g}",
            "Relative difference": f"{r.relative_difference:.2%}",
            "Agree": "yes" if r.within else f"no (differ by more than {r.bound:.2g})",
        }
        for r in check.rows
    ]


def show_crosscheck(out: Path, paths: list[str], root: Path, args: Callable[[str], list]) -> None:
    """The cross-check of the checkpoints `paths` whose analyses live in `out`: a button that
    starts it (`args(part)`: the job's command line), its progress, then a table per checkpoint."""
    st.subheader("Cross-check with PyHessian")
    job = Run(part_dir(out, PART))
    found = load_part(out, paths, PART)
    idle = found is None and job.status().get("state") not in ("queued", "running")
    if idle and st.button("Cross-check with PyHessian", key="crosscheck", help=HELP):
        if refused := job_refusal():
            st.error(refused)
        else:
            start_job(job.path, args(PART), root)
            st.rerun()
    _watch(job, found is not None)
    for label, check in (found or {}).items():
        st.markdown(f"**{label}**: {check.eval_set}")
        st.table(_rows(check))
        st.caption(
            f"How PyHessian was called: {check.how}. ± is an eigenvalue's residual |Hv − λv| or a "
            "trace's standard error; two eigenvalues agree when they differ by at most the sum of "
            "their residuals, two traces by at most twice the standard error of their difference."
        )


@st.fragment(run_every=1.0)
def _watch(job: Run, shown: bool) -> None:
    """The job's progress (its own Cancel), or why it failed; the page is redrawn when it ends."""
    status = job.status()
    state = status.get("state")
    if state in ("queued", "running"):
        stage = status.get("stage", "waiting for the job ahead")
        st.progress(
            fraction(status.get("progress")),
            text=f"PyHessian cross-check: {state}, {stage}{time_left(status)}",
        )
        if may_cancel(job.path) and st.button("Cancel the cross-check", key="cancel-crosscheck"):
            job.request_cancel()
    elif state in ("failed", BROKEN) and not shown:
        st.error(f"PyHessian cross-check {state}: {status.get('error', '')}")
        st.code(log_tail(job), language=None)
    seen = st.session_state.setdefault("crosscheck_states", {})
    was, seen[str(job.path)] = seen.get(str(job.path)), state
    if was in ("queued", "running") and state not in ("queued", "running"):
        st.rerun()  # the result arrived: redraw the table
