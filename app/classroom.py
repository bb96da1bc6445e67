"""Shared (classroom) mode: a teacher serves the app to a class with POF_CLASSROOM=1. Then no
student can make the server run code or read its files: model code runs only from the teacher's
allow-list (pof.models.registry, which the jobs obey too), no page takes a path on the server, each
browser session keeps its uploads to itself within a quota, and it may have only a few jobs queued
or running at once. The limits are read from the environment once, at start, and checked there."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from pof.models.registry import allowed_code, classroom
from pof.runs.run import Run

QUOTA_ENV, JOBS_ENV = "POF_UPLOAD_QUOTA_MB", "POF_MAX_JOBS"


@dataclass(frozen=True)
class Limits:
    upload_quota_mb: float = 100.0  # all of one session's uploads together
    max_jobs: int = 5  # one session's jobs queued or running at once: the Inspect page's five


def _number(name: str, default, kind):
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = kind(text)
    except ValueError:
        value = None
    if value is None or not value > 0 or value != value or value == float("inf"):
        raise ValueError(f"{name}={text!r} is not a positive number; unset it for {default}.")
    return value


def limits() -> Limits:
    """The shared mode's limits, ValueError naming the setting that is wrong."""
    d = Limits()
    return Limits(_number(QUOTA_ENV, d.upload_quota_mb, float), _number(JOBS_ENV, d.max_jobs, int))


def shared() -> bool:
    return classroom()


def session_token() -> str:
    """A random name for this browser session, for its own uploads folder (never from the user)."""
    return st.session_state.setdefault("classroom-session", secrets.token_hex(8))


def banner() -> None:
    """What a student should know, on every page, in shared mode; stops on a wrong setting."""
    if not shared():
        return
    try:
        lim = limits()
    except ValueError as e:
        st.error(f"The app's shared mode is misconfigured: {e}")
        st.stop()
    allowed = sorted(allowed_code())
    st.sidebar.info(
        "Shared with a class: models come from the bundled set, runs and your uploads "
        f"(up to {lim.upload_quota_mb:g} MB in all, yours alone); at most {lim.max_jobs} of your "
        "jobs queue at once. "
        + (
            f"Model code allowed by your teacher: {', '.join(allowed)}."
            if allowed
            else "No model code of your own runs here."
        ),
        icon=":material/school:",
    )


def upload_refusal(name: str, size: int, used: int) -> str | None:
    """Why an upload of `size` bytes would go over this session's quota, or None."""
    if not shared():
        return None
    quota = limits().upload_quota_mb * 1e6
    if used + size <= quota:
        return None
    return (
        f"{name} ({size / 1e6:.1f} MB) would take your uploads to {(used + size) / 1e6:.1f} MB, "
        f"over the {quota / 1e6:g} MB each student may keep here. Delete an upload you no longer "
        "need, then upload it again."
    )


def job_refusal(count: int = 1) -> str | None:
    """Why this session may not start `count` more jobs now, or None."""
    if not shared():
        return None
    cap = limits().max_jobs
    live = [
        path
        for path in st.session_state.get("classroom-jobs", [])
        if Run(path).status()["state"] in ("queued", "running")  # status() never raises
    ]
    st.session_state["classroom-jobs"] = live
    if len(live) + count <= cap:
        return None
    return (
        f"You have {len(live)} job{'s' if len(live) != 1 else ''} queued or running and may "
        f"have {cap} at once in this shared app: wait until "
        f"{'one finishes' if live else 'the others finish'}, or cancel one on the Runs page."
    )


def may_cancel(path) -> bool:
    """Shared with a class, a session cancels only the jobs it started (an analysis is shared by
    everyone who asks for it, so one student's cancel would stop another's)."""
    return not shared() or str(Path(path).resolve()) in st.session_state.get("classroom-jobs", [])


def note_job(path) -> None:
    if shared():
        st.session_state.setdefault("classroom-jobs", []).append(str(Path(path).resolve()))
