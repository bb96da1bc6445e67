"""Run folders: the unit the CLI, the analysis tools and the app share.

    RUN/config.json          the configuration the run was started with (written once)
    RUN/status.json          state, progress, pid, heartbeat, error; replaced atomically
    RUN/metrics.jsonl        append-only, one JSON object per line ("kind": "step" | "epoch" | "event")
    RUN/checkpoints/*.safetensors   initial, epoch-NNNN, last, best, final (+ optimizer.safetensors)
    RUN/cancel               present = please stop at the next step
    RUN/log.txt              the job's stdout/stderr when started in the background

A reader never sees a torn status (os.replace) or a torn metrics line (each line is written with a
single write(); a trailing line without its newline is still being written and is skipped).
"""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

STATES = ("queued", "running", "done", "failed", "cancelled")
FINAL_STATES = ("done", "failed", "cancelled")
HEARTBEAT_SECONDS = 2.0  # a running job refreshes its heartbeat (and progress) at most this often


class RunError(Exception):
    pass


def _write_json_atomic(path: Path, obj: dict) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a killed child that its parent (e.g. the app) has not reaped yet is a zombie: dead
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


@dataclass
class Run:
    path: Path

    def __post_init__(self):
        self.path = Path(self.path)
        self._last_beat = 0.0

    # --- files ---
    @property
    def config_file(self) -> Path:
        return self.path / "config.json"

    @property
    def status_file(self) -> Path:
        return self.path / "status.json"

    @property
    def metrics_file(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    def checkpoint(self, name: str) -> Path:
        return self.checkpoints / f"{name}.safetensors"

    # --- writing (the job) ---
    @classmethod
    def create(cls, path: str | Path, config: dict, overwrite: bool = False) -> "Run":
        """A new run folder. Refuses to reuse a folder that holds a run, unless `overwrite`."""
        run = cls(path)
        if run.config_file.exists() and not overwrite:
            state = run.status().get("state", "unknown")
            raise RunError(f"{run.path} already holds a run (state: {state}). Choose another --out, "
                           f"continue it with --resume, or replace it with --overwrite.")
        run.checkpoints.mkdir(parents=True, exist_ok=True)
        if overwrite:
            # A cancel file is stale, unless this very process was queued for the folder (pof.jobqueue
            # execs into the job with the same pid): then it was asked to stop while starting up.
            queued_here = run.status_file.exists() and run.status().get("pid") == os.getpid()
            stale = [] if queued_here else [run.path / "cancel"]
            for f in [run.metrics_file, *stale, *run.checkpoints.glob("*.safetensors")]:
                f.unlink(missing_ok=True)
        _write_json_atomic(run.config_file, config)
        run.metrics_file.touch()
        run.set_status("queued", progress=0.0)
        return run

    def queue(self, pid: int) -> None:
        """Mark a folder as holding a job that process `pid` is about to start (used by the app)."""
        self.path.mkdir(parents=True, exist_ok=True)
        self.set_status("queued", pid=pid, progress=0.0)

    def set_status(self, state: str, **fields) -> None:
        assert state in STATES, state
        old = self.status() if self.status_file.exists() else {}
        now = time.time()
        status = {"created": now, **old, **fields, "state": state, "heartbeat": now, "host": socket.gethostname()}
        if state == "running":
            status.setdefault("pid", os.getpid())
            status.setdefault("started", now)
        if state in FINAL_STATES:
            status["finished"] = now
        _write_json_atomic(self.status_file, status)
        self._last_beat = now

    def heartbeat(self, **fields) -> None:
        """Update progress; written at most every HEARTBEAT_SECONDS unless forced by a state change."""
        if time.time() - self._last_beat >= HEARTBEAT_SECONDS:
            self.set_status("running", **fields)

    def log(self, kind: str, **record) -> None:
        line = json.dumps({"kind": kind, "time": time.time(), **record}, allow_nan=True) + "\n"
        # One os.write on an O_APPEND descriptor: the line lands whole, after any earlier line.
        fd = os.open(self.metrics_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)

    def cancel_requested(self) -> bool:
        return (self.path / "cancel").exists()

    def request_cancel(self) -> None:
        (self.path / "cancel").touch()

    def config_to_resume(self, command: str) -> dict:
        """The saved configuration of a `command` run that can be continued; refuses anything else."""
        if not self.config_file.exists():
            raise RunError(f"{self.path} is not a run folder (no config.json); nothing to resume.")
        saved = self.config()
        if saved.get("command") != command:
            raise RunError(f"{self.path} is a {saved.get('command')} run, not a {command} run.")
        if self.status().get("state") == "done":
            raise RunError(f"{self.path} already finished all {saved.get('epochs')} epochs; nothing to resume.")
        return saved["config"]

    # --- reading (anyone) ---
    def config(self) -> dict:
        return json.loads(self.config_file.read_text())

    def status(self) -> dict:
        """The status as written, with `state` corrected to "failed" when a running job is dead."""
        try:
            status = json.loads(self.status_file.read_text())
        except FileNotFoundError:
            return {"state": "unknown", "error": f"{self.path} has no status.json"}
        # On this machine the process itself is the truth: a long step (a big model on a CPU) may be
        # silent for minutes, but a job whose process is gone will never report again.
        if status.get("state") in ("queued", "running") and status.get("host") == socket.gethostname():
            pid = status.get("pid")
            if pid and not _pid_alive(pid):
                silent = time.time() - status.get("heartbeat", 0)
                status["state"] = "failed"
                status["error"] = (f"the job (pid {pid}) stopped without reporting "
                                   f"(last heartbeat {silent:.0f} s ago): it was killed or crashed. "
                                   f"Resume it with --resume.")
        return status

    def metrics(self, kind: str | None = None) -> list[dict]:
        records = []
        try:
            data = self.metrics_file.read_bytes()
        except FileNotFoundError:
            return records
        for line in data.split(b"\n")[:-1]:  # the part after the last newline is still being written
            if line:
                rec = json.loads(line)
                if kind is None or rec.get("kind") == kind:
                    records.append(rec)
        return records

    def last(self, kind: str, tail_bytes: int = 1 << 16) -> dict | None:
        """The newest record of `kind`, reading the log from its end (a live view polls this)."""
        try:
            f = open(self.metrics_file, "rb")
        except FileNotFoundError:
            return None
        with f:
            size = f.seek(0, os.SEEK_END)
            while True:  # a growing window from the end, until the record or the file's start
                start = max(0, size - tail_bytes)
                f.seek(start)
                lines = f.read(size - start).split(b"\n")[:-1]  # after the last newline: still being written
                for line in reversed(lines[1:] if start else lines):  # a window's first line may be cut
                    if line:
                        rec = json.loads(line)
                        if rec.get("kind") == kind:
                            return rec
                if start == 0:
                    return None
                tail_bytes *= 4

    def epochs(self) -> list[dict]:
        """Per-epoch records, one per epoch: after a resume the later record of an epoch wins."""
        by_epoch = {r["epoch"]: r for r in self.metrics("epoch")}
        return [by_epoch[e] for e in sorted(by_epoch)]

    def summary(self) -> dict:
        status = self.status()
        try:
            cfg = self.config()
        except (FileNotFoundError, json.JSONDecodeError):
            cfg = {}
        last = self.last("epoch") or {}  # the newest epoch record: after a resume, the later one wins
        return {"run": str(self.path), "command": cfg.get("command", "?"), "state": status.get("state"),
                "progress": status.get("progress"), "model": cfg.get("model") or cfg.get("checkpoint"),
                "dataset": cfg.get("dataset"), "epochs": f"{last.get('epoch', 0)}/{cfg.get('epochs', '?')}",
                "test_acc": last.get("test_acc"), "error": status.get("error")}


def list_runs(root: str | Path) -> list[Run]:
    """Every run folder under `root` (any depth), newest first."""
    root = Path(root)
    if not root.is_dir():
        return []
    # status.json, not config.json: a job the app has queued is listed before its process writes the config
    runs = [Run(p.parent) for p in root.rglob("status.json")]
    return sorted(runs, key=lambda r: r.status().get("created", 0), reverse=True)
