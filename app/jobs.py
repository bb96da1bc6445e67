"""Starting and watching background jobs. The app never trains in its own process: it starts the
CLI as a child in its own process group, writing into a run folder that the page polls."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from app.classroom import job_refusal, note_job
from pof.runs.run import Run, RunError

REPO = Path(__file__).resolve().parents[1]
MAX_NAME = 100
NAME_RULE = (
    "a run name is letters, digits, '-', '_' and '.', with '/' between folders (no part starts "
    f"with '.', so no '..'; no absolute path), at most {MAX_NAME} characters, and stays inside "
    "the runs folder"
)


class JobRefused(Exception):
    """A job this session may not start now (shared mode's cap); the message says why."""


def runs_root() -> Path:
    return Path(os.environ.get("POF_RUNS", "runs")).resolve()


def run_path(root: Path, name: str) -> Path:
    """root/NAME for a run name that came from a URL or a form; ValueError saying what is allowed
    for anything that could reach outside root (absolute, '..', a link out, odd characters, absurd
    length)."""
    shown = repr(name[:60] + ("..." if len(name) > 60 else ""))
    if (
        not name
        or len(name) > MAX_NAME
        or not re.fullmatch(r"[A-Za-z0-9._/-]+", name)
        or any(not part or part.startswith(".") for part in name.split("/"))
    ):  # '', '.', '..', hidden
        raise ValueError(f"{shown} is not a run name: {NAME_RULE}.")
    root = Path(root).resolve()
    path = (
        root / name
    ).resolve()  # symlinks followed: a link inside root may still point out of it
    if not path.is_relative_to(root) or path == root:
        raise ValueError(f"{shown} leads outside the runs folder {root}: {NAME_RULE}.")
    return path


def safe_name(text: str) -> str:
    """A run name made from free text (a file's stem): unsafe characters become '-'."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip(".-")[: MAX_NAME - 20] or "run"


def read_config(run: Run) -> tuple[dict | None, str | None]:
    """(the run's config, None), or (None, why it is unreadable): one broken run never breaks a
    page."""
    try:
        return run.config(), None
    except RunError as e:  # it names the file and the reason (not JSON, not an object, missing)
        return None, str(e)


def start_job(run_dir: Path, args: list[str], root: Path | None = None) -> subprocess.Popen:
    """`python ARGS` (e.g. -m pof pretrain ...) in its own session, so it survives the page and the
    app, started through pof.runs.jobqueue so that it waits while another job under `root` runs; its
    output goes to RUN/log.txt and the folder is marked queued at once."""
    root = Path(root or runs_root()).resolve()
    if (
        not Path(run_dir).resolve().is_relative_to(root)
    ):  # the pages confine names; this is the last guard
        raise ValueError(f"{run_dir} is outside the runs folder {root}")
    refused = job_refusal()
    if refused:
        raise JobRefused(refused)
    run = Run(run_dir)
    run.path.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "pof.runs.jobqueue", str(run.path), str(root), "--", *args]
    with open(run.path / "log.txt", "ab") as log:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen(
            cmd,
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    # listed and watched at once, though the CLI needs seconds to start; queue() drops an earlier
    # job's cancel request and ignores an unreadable old status, so a folder is simply started again
    run.queue(proc.pid)
    note_job(run.path)
    return proc


def log_tail(run: Run, lines: int = 15) -> str:
    try:
        text = (
            (run.path / "log.txt")
            .read_bytes()[-20_000:]
            .decode(errors="replace")
            .replace("\r", "\n")
        )
    except OSError:  # none yet, or unreadable: the state says what is wrong
        return ""
    return "\n".join([line for line in text.splitlines() if line.strip()][-lines:])
