"""Starting and watching background jobs. The app never trains in its own process: it starts the
CLI as a child in its own process group, writing into a run folder that the page polls."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from pof.runs import Run

REPO = Path(__file__).resolve().parents[1]


def runs_root() -> Path:
    return Path(os.environ.get("POF_RUNS", "runs")).resolve()


def start_job(run_dir: Path, args: list[str], root: Path | None = None) -> subprocess.Popen:
    """`python ARGS` (e.g. -m pof pretrain ...) in its own session, so it survives the page and the
    app, started through pof.jobqueue so that it waits while another job under `root` runs; its
    output goes to RUN/log.txt and the folder is marked queued at once."""
    run_dir.mkdir(parents=True, exist_ok=True)
    root = root or runs_root()
    log = open(run_dir / "log.txt", "ab")
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "pof.jobqueue", str(run_dir), str(root), "--", *args]
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    Run(run_dir).queue(proc.pid)  # listed and watched at once, though the CLI needs seconds to start
    return proc


def log_tail(run: Run, lines: int = 15) -> str:
    path = run.path / "log.txt"
    if not path.exists():
        return ""
    text = path.read_bytes()[-20_000:].decode(errors="replace").replace("\r", "\n")
    return "\n".join([l for l in text.splitlines() if l.strip()][-lines:])
