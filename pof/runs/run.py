"""Run folders: the unit the CLI, the analysis tools and the app share.

    RUN/config.json          the configuration the run was started with (written once)
    RUN/status.json          state, progress, pid, heartbeat, error; replaced atomically
    RUN/metrics.jsonl        append-only, one JSON object per line (kind: step, epoch or event)
    RUN/curvature.json       a tracked job: how its curvature is measured (probe subset, cadence)
    RUN/curvature.jsonl      a tracked job: one curvature point per line, appended like metrics
    RUN/checkpoints/*.safetensors   initial, epoch-NNNN, last, best, final (+ resume.safetensors)
    RUN/cancel               present = please stop at the next step
    RUN/log.txt              the job's stdout/stderr when started in the background

A reader never sees a torn status (pof.files replaces it atomically) or a torn metrics line (each
line is written with a single write(); a trailing line without its newline is still being written
and is skipped). Readers never raise because of what a file holds: an unreadable status reads as
state "broken" with the reason, a bad metrics line is skipped, and a job whose process is gone
reads as "failed". Where each file lives and the status: pof.runs.folder; how a folder is
claimed: pof.runs.create; how a file is read safely: pof.runs.reading; whether a job's process
lives: pof.runs.liveness.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path

from ..signals import terminated
from ..validate import ConfigError
from .create import claim_for_resume, create_run
from .folder import STALE_SECONDS, RunFolder
from .reading import (
    BROKEN,
    CONFIG_LIMIT,
    FINAL_STATES,
    STATES,
    STATUS_LIMIT,
    ConfigMissing,
    RunError,
    is_number,
    json_object,
    number_text,
    open_regular,
)

__all__ = [
    "BROKEN",
    "CONFIG_LIMIT",
    "FINAL_STATES",
    "HEARTBEAT_SECONDS",
    "STALE_SECONDS",
    "STATES",
    "STATUS_LIMIT",
    "ConfigMissing",
    "Run",
    "RunError",
    "list_runs",
    "number_text",
]

HEARTBEAT_SECONDS = 2.0  # a running job refreshes its heartbeat (and progress) at most this often


class Run(RunFolder):
    """A run folder (its files and status: pof.runs.folder) and the job's records in it."""

    def __post_init__(self):
        super().__post_init__()
        self.bad_lines = 0  # metrics lines skipped by the last metrics() (not JSON objects)
        self._tail_checked: set[Path] = set()

    # --- writing (the job) ---
    @classmethod
    def create(cls, path: str | Path, config: dict, overwrite: bool = False) -> Run:
        """A new run folder, created atomically and exclusively: of two processes creating the same
        folder at once, one wins and the other gets RunError. Refuses (RunError, nothing written) a
        path that is a file, a non-empty folder that holds no run of this project, a run (unless
        `overwrite`) and a live job's folder; an existing empty folder is used."""
        run = cls(path)
        create_run(run, config, overwrite)
        return run

    def queue(self, pid: int) -> None:
        """Mark a folder as holding a job that process `pid` is about to start (used by the app)."""
        self.path.mkdir(parents=True, exist_ok=True)
        old = self._raw_status()
        if not (old.get("state") == "queued" and old.get("pid") == pid):
            # a new job: an old request is stale
            (self.path / "cancel").unlink(missing_ok=True)
        self.set_status("queued", pid=pid, progress=0.0)

    def begin_resume(self) -> None:
        """Claim the folder for this process before it continues the run: refuses a live job's
        folder, drops a cancel request left from before (unless this very job was asked to stop
        while queued) and records this process as the one running it. Call on the main rank only."""
        claim_for_resume(self)

    def heartbeat(self, **fields) -> None:
        """Update progress; written at most every HEARTBEAT_SECONDS (a state change always is)."""
        if time.time() - self._last_beat >= HEARTBEAT_SECONDS:
            self.set_status("running", **fields)

    def log(self, kind: str, **record) -> None:
        self._append(self.metrics_file, {"kind": kind, "time": time.time(), **record})

    def log_curvature(self, point: dict) -> None:
        """Append one curvature point (pof.curvature.tracker.CurvaturePoint.to_dict())."""
        self._append(self.curvature_file, {"time": time.time(), **point})

    def _append(self, path: Path, record: dict) -> None:
        line = (json.dumps(record, allow_nan=True) + "\n").encode()
        # One os.write on an O_APPEND descriptor: the line lands whole, after any earlier line.
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            if path not in self._tail_checked:
                # a writer killed mid-line left a torn line: end it, or ours is lost too
                size = os.fstat(fd).st_size
                if size and os.pread(fd, 1, size - 1) != b"\n":
                    line = b"\n" + line
                self._tail_checked.add(path)
            os.write(fd, line)
        finally:
            os.close(fd)

    def cancel_requested(self) -> bool:
        """A cancel file, or a SIGTERM to this process (pof.signals): stop at the next step."""
        return terminated() or (self.path / "cancel").exists()

    def request_cancel(self) -> None:
        (self.path / "cancel").touch()

    def config_to_resume(self, command: str) -> dict:
        """The saved configuration of a `command` run that can be continued; refuses all else."""
        if not os.path.lexists(self.config_file):
            raise RunError(f"{self.path} is not a run folder (no config.json); nothing to resume.")
        saved = self.config()
        if saved.get("command") != command:
            raise RunError(f"{self.path} is a {saved.get('command')} run, not a {command} run.")
        if not isinstance(saved.get("config"), dict):
            raise RunError(
                f'{self.config_file}: has no "config" object; this run cannot be resumed. '
                f"Start it again with --overwrite."
            )
        if self.status().get("state") == "done":
            raise RunError(
                f"{self.path} already finished all {saved.get('epochs')} epochs; nothing to resume."
            )
        return saved["config"]

    def saved_config(self, cls, command: str):
        """The configuration saved in a run folder, checked like a new one: a corrupt or hand-edited
        config.json is refused with its path named, before anything is resumed."""
        try:
            saved = self.config_to_resume(command)
            if not isinstance(saved, dict):
                raise TypeError(f"'config' is {type(saved).__name__}, not an object")
            unknown = _unknown_options(cls, saved)
            if unknown:
                from .. import __version__

                raise RunError(
                    f"{self.config_file} holds options this version ({__version__}) does not "
                    f"know: {', '.join(unknown)}. It was written by version "
                    f"{self.config().get('version', '?')}; resume it with that version. Nothing "
                    f"in {self.path} was changed."
                )
            return cls(**saved)
        except RunError:
            raise
        except ConfigError as e:
            raise ConfigError(
                f"{self.config_file}: {e} It cannot be resumed as saved; start the run again with "
                f"--overwrite."
            ) from None
        except (TypeError, KeyError, AttributeError, ValueError) as e:
            raise RunError(
                f"{self.config_file} is not a valid {command} configuration "
                f"({type(e).__name__}: {e}); it cannot be resumed. Start the run again with "
                f"--overwrite."
            ) from None

    # --- reading (anyone) ---
    def config(self) -> dict:
        """The saved configuration; RunError naming the file and the reason if it cannot be read."""
        try:
            cfg, problem = json_object(self.config_file, CONFIG_LIMIT)
        except FileNotFoundError:
            raise ConfigMissing(
                f"{self.config_file}: missing. {self.path} is not a run folder, or its job "
                f"has not started yet."
            ) from None
        if problem:
            raise RunError(
                f"{self.config_file}: {problem}. The run's configuration is lost: start it "
                f"again with --overwrite, or delete the folder."
            )
        return cfg

    def _records(self, data: bytes, kind: str | None) -> list[dict]:
        records = []
        for line in data.split(b"\n"):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except (ValueError, RecursionError):
                rec = None
            if not isinstance(rec, dict):
                self.bad_lines += 1
            elif kind is None or rec.get("kind") == kind:
                records.append(rec)
        return records

    def metrics(self, kind: str | None = None) -> list[dict]:
        """The records of the log (of `kind`), in order; lines that are not JSON objects are skipped
        and counted in `bad_lines`. An unreadable log has no records."""
        return self._read_lines(self.metrics_file, kind)

    def _read_lines(self, path: Path, kind: str | None = None) -> list[dict]:
        self.bad_lines = 0
        try:
            with open_regular(path) as f:
                data = f.read()
        except OSError:
            return []
        # after the last newline: still being written
        return self._records(data[: data.rfind(b"\n") + 1], kind)

    def curvature(self) -> list[dict]:
        """The curvature series of a tracked job, one point per step in step order: after a resume
        the later record of a step wins (the resumed job measures the same point again). Lines
        that are not points are skipped and counted in `bad_lines`; an untracked run has none."""
        by_step = {}
        for r in self._read_lines(self.curvature_file):
            step = r.get("step")
            if isinstance(step, int) and not isinstance(step, bool) and step >= 0:
                by_step[step] = r
            else:
                self.bad_lines += 1
        return [by_step[s] for s in sorted(by_step)]

    def curvature_setup(self) -> dict | None:
        """How the series is measured (pof.curvature.tracker.Tracker.setup), or None: untracked or
        unreadable."""
        try:
            setup, problem = json_object(self.curvature_setup_file, CONFIG_LIMIT)
        except OSError:
            return None
        return None if problem else setup

    def last(self, kind: str, tail_bytes: int = 1 << 16) -> dict | None:
        """The newest record of `kind`, reading the log from its end (a live view polls this)."""
        try:
            f = open_regular(self.metrics_file)
        except OSError:
            return None
        with f:
            size = f.seek(0, os.SEEK_END)
            while True:  # a growing window from the end, until the record or the file's start
                start = max(0, size - tail_bytes)
                f.seek(start)
                lines = f.read(size - start).split(b"\n")[
                    :-1
                ]  # after the last newline: still being written
                for line in reversed(
                    lines[1:] if start else lines
                ):  # a window's first line may be cut
                    recs = self._records(line, kind)
                    if recs:
                        return recs[0]
                if start == 0:
                    return None
                tail_bytes *= 4

    def epochs(self) -> list[dict]:
        """Per-epoch records, one per epoch: after a resume the later record of an epoch wins."""
        by_epoch = {
            r["epoch"]: r
            for r in self.metrics("epoch")
            if isinstance(r.get("epoch"), int) and not isinstance(r["epoch"], bool)
        }
        return [by_epoch[e] for e in sorted(by_epoch)]

    def summary(self) -> dict:
        """One row for a list of runs; never raises. A run whose status or config cannot be read is
        "broken", with the reason in "error". Values have fixed types (str, a number or None)."""
        status = self.status()
        state, error, cfg = status["state"], status.get("error"), {}
        # missing while a queued job has not started: not broken
        if os.path.lexists(self.config_file):
            try:
                cfg = self.config()
            except RunError as e:
                if state != BROKEN:
                    state, error = BROKEN, str(e)
        # the newest epoch record: after a resume, the later one wins
        last = self.last("epoch") or {}
        text, number = (
            (lambda v: None if v is None else str(v)),
            (lambda v: v if is_number(v) else None),
        )
        return {
            "run": str(self.path),
            "command": str(cfg.get("command", "?")),
            "state": state,
            "progress": number(status.get("progress")),
            "model": text(cfg.get("model") or cfg.get("checkpoint")),
            "dataset": text(cfg.get("dataset")),
            "epochs": f"{last.get('epoch', 0)}/{cfg.get('epochs', '?')}",
            "test_acc": number(last.get("test_acc")),
            "error": text(error),
        }


def _unknown_options(cls, saved: dict, prefix: str = "") -> list[str]:
    """Keys of a saved configuration (and of its nested configurations) that `cls` has no field
    for: options of a newer version, which this one cannot honour."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = [prefix + k for k in saved if k not in fields]
    for name, f in fields.items():
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else None
        if dataclasses.is_dataclass(default) and isinstance(saved.get(name), dict):
            unknown += _unknown_options(type(default), saved[name], f"{prefix}{name}.")
    return sorted(unknown)


def list_runs(root: str | Path) -> list[Run]:
    """Every run folder under `root` (any depth), newest first. Never raises because of one run: an
    unreadable run is listed (its status reads "broken"), unreadable folders are skipped, and
    symbolic links are not followed (a link must not pull a foreign folder into the list)."""
    root = Path(root)
    if not os.path.isdir(root):
        return []
    # status.json, not config.json: a job the app has queued is listed before its process writes
    # the config
    runs = [
        Run(Path(d))
        for d, dirs, files in os.walk(root, followlinks=False)  # a status.json folder: broken
        if "status.json" in (*files, *dirs) and not os.path.islink(os.path.join(d, "status.json"))
    ]
    created = {r.path: r.status().get("created", 0) for r in runs}  # a number: status() checked it
    return sorted(runs, key=lambda r: created[r.path], reverse=True)
