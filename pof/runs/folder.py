"""A run folder's files and its status: where each file lives, the status written atomically and
read back safely (a job whose process is gone reads as "failed"). pof.runs.run.Run adds the job's
records (config, metrics, cancel); pof.runs.create claims a folder through this class alone.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from ..files import write_json_atomic
from .liveness import pid_alive
from .reading import BROKEN, FINAL_STATES, STATES, STATUS_LIMIT, json_object, status_problem, why

STALE_SECONDS = 60.0  # a queued/running status with no pid, silent this long, belongs to no process


@dataclass
class RunFolder:
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
    def curvature_file(self) -> Path:
        """A tracked job's curvature series: one JSON line per point (pof.curvature.tracker)."""
        return self.path / "curvature.jsonl"

    @property
    def curvature_setup_file(self) -> Path:
        """How the series is measured: probe subset, cadence, threshold rule; written once."""
        return self.path / "curvature.json"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    def checkpoint(self, name: str) -> Path:
        return self.checkpoints / f"{name}.safetensors"

    def _raw_status(self) -> dict:
        """The status as written, if it is sound; {} otherwise (a writer then starts afresh)."""
        try:
            status, _ = json_object(self.status_file, STATUS_LIMIT)
        except OSError:
            return {}
        return status if status is not None and status_problem(status) is None else {}

    def set_status(self, state: str, **fields) -> None:
        assert state in STATES, state
        now = time.time()
        status = {
            "created": now,
            **self._raw_status(),
            **fields,
            "state": state,
            "heartbeat": now,
            "host": socket.gethostname(),
        }
        if state == "running":
            # after a resume: this process, not the dead one
            status["pid"] = fields.get("pid", os.getpid())
            status.setdefault("started", now)
        if state in FINAL_STATES:
            status["finished"] = now
        else:
            status.pop("finished", None)
        write_json_atomic(self.status_file, status)
        self._last_beat = now

    def status(self) -> dict:
        """The status as written, with `state` "broken" when the file cannot be read (the error says
        why) and "failed" when a queued or running job's process is gone. Never raises."""
        try:
            status, problem = json_object(self.status_file, STATUS_LIMIT)
        except FileNotFoundError:
            return {"state": "unknown", "error": f"{self.path} has no status.json"}
        except OSError as e:  # e.g. a path component that is a file
            status, problem = None, f"unreadable ({why(e)})"
        problem = problem or status_problem(status)
        if problem:
            return {
                "state": BROKEN,
                "error": f"{self.status_file}: {problem}. If no job writes this folder, "
                f"resume it with --resume, replace it with --overwrite, or delete it.",
            }
        if status["state"] not in ("queued", "running"):
            return status
        pid, beat = status.get("pid"), status.get("heartbeat", status.get("created", 0))
        silent = time.time() - beat
        if pid is None and silent > STALE_SECONDS:
            status["error"] = (
                f"no process runs this job: it is {status['state']} with no pid and silent for "
                f"{silent:.0f} s (a command that stopped before it started). Start it again "
                f"with --overwrite, or delete the folder."
            )
            status["state"] = "failed"
        # On this machine the process itself is the truth: a long step (a big model on a CPU) may be
        # silent for minutes, but a job whose process is gone will never report again.
        elif (
            pid is not None
            and status.get("host") == socket.gethostname()
            and not pid_alive(pid, beat)
        ):
            log = (
                f" {self.path / 'log.txt'} may say why."
                if os.path.lexists(self.path / "log.txt")
                else ""
            )
            status["error"] = (
                f"the job (pid {pid}) stopped without reporting (last heartbeat {silent:.0f} s "
                f"ago): it was killed or crashed.{log} Resume it with --resume, or start it "
                f"again with --overwrite."
                if status["state"] == "running"
                else f"the job (pid {pid}) ended before it started: its command failed or was "
                f"killed.{log} Start it again."
            )
            status["state"] = "failed"
        return status
