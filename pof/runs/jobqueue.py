"""Run jobs one at a time: `python -m pof.runs.jobqueue RUN ROOT -- ARGS...` waits for its turn
among the jobs queued under ROOT, then replaces itself with `python ARGS...` (same pid).

A turn is a slot: an exclusive flock on ROOT/.slots/N.lock. The job's process holds it for its
whole life (the descriptor survives exec) and the kernel releases it when the process ends, however
it ends, so a killed job never blocks the queue. Waiters go first come, first served by the time
they were queued; a run that is not a live job (dead, stale, broken: see Run.status) is never
ahead. $POF_JOBS sets how many jobs may run at once (default 1, for a 2-core machine).
"""

from __future__ import annotations

import fcntl
import os
import sys
import time
from pathlib import Path

from ..signals import stop_on_sigterm, terminated
from .run import Run, RunError, list_runs

POLL_SECONDS = 0.5


def job_slots() -> int:
    try:
        return max(1, int(os.environ.get("POF_JOBS", "1")))
    except ValueError:  # a malformed setting must not stop every job
        return 1


def _try_slot(root: Path, slots: int) -> int | None:
    folder = root / ".slots"
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(slots):
        fd = os.open(folder / f"{i}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            os.close(fd)
    return None


def queue_state(run: Run, root: Path) -> tuple[int, int]:
    """(live jobs queued under `root` before `run`, jobs running there), from one scan."""
    mine = (run.status().get("created", 0), str(run.path))
    ahead = running = 0
    for other in list_runs(root):
        status = (
            other.status()
        )  # dead, stale (no pid) and broken runs read as failed or broken: never ahead
        if status.get("state") == "running":
            running += 1
        elif (
            other.path != run.path
            and status.get("state") == "queued"
            and (status.get("created", 0), str(other.path)) < mine
        ):
            ahead += 1
    return ahead, running


def blocker(run: Run, root: Path) -> tuple[Run, dict] | None:
    """The job `run` waits behind, with its status: the running one (the earliest started), else
    the last live job queued before it; None when nothing is in its way."""
    mine = (run.status().get("created", 0), str(run.path))
    running, ahead = [], []
    for other in list_runs(root):
        if other.path == run.path:
            continue
        status = other.status()
        if status.get("state") == "running":
            running.append((status.get("started", 0), other, status))
        elif status.get("state") == "queued" and (status.get("created", 0), str(other.path)) < mine:
            ahead.append(((status.get("created", 0), str(other.path)), other, status))
    if running:
        return min(running, key=lambda t: t[0])[1:]
    return max(ahead, key=lambda t: t[0])[1:] if ahead else None


def job_title(run: Run, status: dict) -> str:
    """What a job is, for a person: 'post-train (pof) on cnn-small (started 14:05)', from its
    config; a job whose config is not written yet is named by its folder."""
    try:
        config = run.config()
    except Exception:  # not started yet, or unreadable: its folder still names it
        config = {}
    kind = config.get("command") or run.path.name
    if config.get("part"):
        kind = f"{config['part']} analysis"
    elif config.get("method"):
        kind += f" ({config['method']})"
    subject = config.get("subject") or {}
    models = list(subject.get("checkpoints") or {}) or [
        m for m in (config.get("model"), config.get("run")) if m
    ]
    on = f" on {' and '.join(Path(str(m)).name for m in models)}" if models else ""
    when = status.get("started") if status.get("state") == "running" else None
    since = f" (started {time.strftime('%H:%M', time.localtime(when))})" if when else ""
    return f"{kind}{on}{since}"


def waiting_text(run: Run, root: Path) -> str:
    """'queued behind post-train (pof) on cnn-small (started 14:05)' (with its place when others
    wait before it too), or 'queued: starting' when nothing is in the way."""
    ahead, running = queue_state(run, root)
    found = blocker(run, root)
    if found is None or (ahead == 0 and running < job_slots()):
        return "queued: starting"
    place = f"; number {ahead + 1} in the queue" if ahead else ""
    return f"queued behind {job_title(*found)}{place}"


def queue_position(run: Run, root: Path) -> int:
    """How many live queued jobs under `root` were queued before `run` (0: next in line)."""
    return queue_state(run, root)[0]


def wait_for_slot(run: Run, root: Path, slots: int) -> int | None:
    """Block until `run` may start; returns the slot's descriptor, or None if it was cancelled."""
    while True:
        if run.cancel_requested():
            return None
        if queue_position(run, root) == 0:
            fd = _try_slot(root, slots)
            if fd is not None:
                return fd
        time.sleep(POLL_SECONDS)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) < 4 or argv[2] != "--":
        print("usage: python -m pof.runs.jobqueue RUN ROOT -- ARGS...", file=sys.stderr)
        return 2
    run, root, args = Run(Path(argv[0])), Path(argv[1]), argv[3:]
    stop_on_sigterm()  # a SIGTERM while waiting cancels the queued job (exec resets the handler)
    terminated()  # the wait below polls for it: the handler only sets the flag
    try:
        run.queue(os.getpid())
        fd = wait_for_slot(run, root, job_slots())
    except (OSError, RunError) as e:
        print(f"error: cannot queue {run.path} under {root}: {e}", file=sys.stderr)
        return 2
    if fd is None:
        why = "stopped by SIGTERM" if terminated() else "cancelled"
        run.set_status("cancelled", error=f"{why} while waiting in the queue")
        return 3
    os.set_inheritable(fd, True)  # the slot stays held by the job that exec replaces us with
    sys.stdout.flush()
    os.execv(sys.executable, [sys.executable, *args])


if __name__ == "__main__":
    sys.exit(main())
