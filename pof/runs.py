"""Run folders: the unit the CLI, the analysis tools and the app share.

    RUN/config.json          the configuration the run was started with (written once)
    RUN/status.json          state, progress, pid, heartbeat, error; replaced atomically
    RUN/metrics.jsonl        append-only, one JSON object per line ("kind": "step" | "epoch" | "event")
    RUN/checkpoints/*.safetensors   initial, epoch-NNNN, last, best, final (+ optimizer.safetensors)
    RUN/cancel               present = please stop at the next step
    RUN/log.txt              the job's stdout/stderr when started in the background

A reader never sees a torn status (os.replace) or a torn metrics line (each line is written with a
single write(); a trailing line without its newline is still being written and is skipped).
Readers never raise because of what a file holds: an unreadable status reads as state "broken" with
the reason, a bad metrics line is skipped, and a job whose process is gone reads as "failed".
"""

from __future__ import annotations

import errno
import fcntl
import json
import math
import os
import re
import socket
import stat
import time
import uuid
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

STATES = ("queued", "running", "done", "failed", "cancelled")
FINAL_STATES = ("done", "failed", "cancelled")
BROKEN = "broken"  # never written by a job: what readers see when status.json cannot be read
HEARTBEAT_SECONDS = 2.0  # a running job refreshes its heartbeat (and progress) at most this often
STALE_SECONDS = 60.0  # a queued/running status with no pid, silent this long, belongs to no process
STATUS_LIMIT, CONFIG_LIMIT = 1 << 20, 16 << 20  # bytes; a bigger file is not ours
LOCK_SECONDS = 30.0  # how long Run.create waits for another process creating the same folder
_NUMBERS = ("created", "heartbeat", "started", "finished", "progress")
_TEMP = re.compile(
    r"\.(config|status)\.json\.\d+\.[0-9a-f]{8}\.tmp"
)  # what _write_json_atomic and create leave


class RunError(Exception):
    pass


class ConfigMissing(RunError, FileNotFoundError):
    """No config.json: a RunError, and still the FileNotFoundError that older callers catch."""


def _write_new(path: Path, data: bytes) -> None:
    """Create `path` (it must not exist) holding `data`, on disk (fsync) before it is renamed or linked."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_json_atomic(path: Path, obj: dict) -> None:
    """Write then rename: readers see the old file or the new one. On failure (a full disk, a
    read-only folder) the old file is untouched, the temporary file removed, and the OSError raised."""
    data = json.dumps(
        obj, indent=1
    ).encode()  # an object that cannot be saved fails before any write
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        _write_new(tmp, data)
        os.replace(tmp, path)
    except BaseException:
        with suppress(OSError):
            tmp.unlink()
        raise


def _open_regular(path: Path):
    """A regular file opened for binary reading; OSError for anything else (a FIFO would block a
    reader forever, a device would never end)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file")
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _read_small(path: Path, limit: int) -> bytes:
    with _open_regular(path) as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise OSError(errno.EFBIG, f"larger than {limit} bytes")
    return data


def _why(e: Exception) -> str:
    return e.strerror if isinstance(e, OSError) and e.strerror else f"{type(e).__name__}: {e}"


def _json_object(path: Path, limit: int) -> tuple[dict | None, str | None]:
    """(the JSON object in `path`, None) or (None, why not). FileNotFoundError is raised."""
    try:
        data = _read_small(path, limit)
    except FileNotFoundError:
        raise
    except OSError as e:
        return None, f"unreadable ({_why(e)})"
    try:
        obj = json.loads(data)
    except (ValueError, RecursionError) as e:  # bad UTF-8 is a ValueError too
        return (
            None,
            f"not valid JSON ({str(e)[:100] or type(e).__name__})" if data.strip() else "empty",
        )
    if not isinstance(obj, dict):
        return None, f"holds a JSON {type(obj).__name__}, not an object"
    return obj, None


def number_text(value, spec: str = ".4f") -> str:
    """A value read from a run folder, formatted, or "n/a": a hand-edited or foreign file may hold
    anything (a bool is not a number here)."""
    return (
        format(value, spec)
        if isinstance(value, (int, float)) and not isinstance(value, bool)
        else "n/a"
    )


def _is_number(v) -> bool:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return False
    try:
        return math.isfinite(float(v))
    except OverflowError:
        return False


def _status_problem(s: dict) -> str | None:
    """Why a status object cannot be trusted, or None: a reader formats these fields without checking."""
    if s.get("state") not in STATES:
        return f"state is {s.get('state')!r:.40}, not one of {', '.join(STATES)}"
    for k in _NUMBERS:
        if k in s and not _is_number(s[k]):
            return f"{k} is {s[k]!r:.40}, not a number"
    pid = s.get("pid")
    if pid is not None and not (
        isinstance(pid, int) and not isinstance(pid, bool) and 0 < pid < 1 << 31
    ):
        return f"pid is {pid!r:.40}, not a process id"
    for k in ("host", "error", "message"):
        if s.get(k) is not None and not isinstance(s[k], str):
            return f"{k} is {s[k]!r:.40}, not a string"
    return None


def _boot_time() -> float | None:  # read each time: it moves with the wall clock when that is set
    try:
        for line in Path("/proc/stat").read_text().splitlines():
            if line.startswith("btime "):
                return float(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def _pid_alive(pid: int, since: float | None = None) -> bool:
    """Whether process `pid` lives and, given `since` (when it last wrote the status), is the same
    process: one started later only reuses its number (e.g. after a reboot or a container restart)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    except (OverflowError, OSError):
        return False
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        if fields[0] == "Z":  # a killed child that its parent (e.g. the app) has not reaped yet
            return False
        boot = _boot_time()
        if since is not None and boot is not None:
            started = boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")
            return started <= since + 5.0  # slack: btime has whole seconds, clocks get adjusted
    except (OSError, IndexError, ValueError):
        pass  # no /proc (macOS): the signal's answer stands
    return True


def _mine(pid) -> bool:
    """A status pid that stands for this process: pof.jobqueue queues a folder under its own pid and
    then execs into the job, which keeps that pid."""
    return pid == os.getpid()


@contextmanager
def _folder_lock(folder: Path):
    """An exclusive flock on the folder itself, so that creators and resumers of one run take turns.
    Where flock is not supported the exclusive os.link in Run.create still lets only one win."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        deadline = time.time() + LOCK_SECONDS
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.time() > deadline:
                    raise RunError(
                        f"{folder}: another process has been creating or resuming a run there "
                        f"for {LOCK_SECONDS:.0f} s; try again, or choose another --out."
                    ) from None
                time.sleep(0.05)
            except OSError:
                break
        yield
    finally:
        os.close(fd)


def _strings(obj, depth: int = 3):
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, dict) and depth:
        for v in obj.values():
            yield from _strings(v, depth - 1)
    elif isinstance(obj, (list, tuple)) and depth:
        for v in obj:
            yield from _strings(v, depth - 1)


@dataclass
class Run:
    path: Path

    def __post_init__(self):
        self.path = Path(self.path)
        self._last_beat = 0.0
        self.bad_lines = 0  # metrics lines skipped by the last metrics() (not JSON objects)
        self._tail_checked = False

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
    def create(cls, path: str | Path, config: dict, overwrite: bool = False) -> Run:
        """A new run folder, created atomically and exclusively: of two processes creating the same
        folder at once, one wins and the other gets RunError. Refuses (RunError, nothing written) a
        path that is a file, a non-empty folder that holds no run of this project, a run (unless
        `overwrite`) and a live job's folder; an existing empty folder is used."""
        run = cls(path)
        text = json.dumps(
            config, indent=1
        )  # a config that cannot be saved fails before any folder is made
        try:
            run.path.mkdir(parents=True)
            made = True
        except FileExistsError:
            made = False
            if not run.path.is_dir():
                raise RunError(
                    f"{run.path} exists and is not a folder; choose another --out."
                ) from None
        except OSError as e:
            raise RunError(
                f"cannot create the run folder {run.path}: {_why(e)}. "
                f"Choose a writable place for --out."
            ) from None
        written: list[Path] = []
        try:
            with _folder_lock(run.path):
                queued_here = run._check_free(config, overwrite)
                run._publish_config(text, overwrite)
                written.append(run.config_file)
                if overwrite:
                    for f in [run.metrics_file, *run.checkpoints.glob("*.safetensors")]:
                        f.unlink(missing_ok=True)
                if (
                    not queued_here
                ):  # a cancel file is stale unless this very job was asked to stop while starting
                    (run.path / "cancel").unlink(missing_ok=True)
                run.checkpoints.mkdir(exist_ok=True)
                written += [run.checkpoints, run.metrics_file, run.status_file]
                run.metrics_file.touch()
                now = (
                    time.time()
                )  # a fresh status: nothing (an old error, a finish time) leaks into the new run
                _write_json_atomic(
                    run.status_file,
                    {
                        "created": now,
                        "state": "queued",
                        "pid": os.getpid(),
                        "progress": 0.0,
                        "heartbeat": now,
                        "host": socket.gethostname(),
                    },
                )
        except BaseException as e:
            if made:  # leave nothing half-made behind
                for f in reversed(written):
                    with suppress(OSError):
                        f.rmdir() if f == run.checkpoints else f.unlink()
                with suppress(OSError):
                    run.path.rmdir()
            if isinstance(e, OSError) and not isinstance(e, RunError):
                raise RunError(f"cannot write the run folder {run.path}: {_why(e)}.") from e
            raise
        return run

    def _check_free(self, config: dict, overwrite: bool) -> bool:
        """Raise RunError unless the folder may receive a new run; returns whether this process was
        queued for it (then its cancel file is meant for this job)."""
        try:  # our own temporary files (another creator's, or a killed one's) do not make a folder foreign
            entries = [e for e in os.listdir(self.path) if not _TEMP.fullmatch(e)]
        except OSError as e:
            raise RunError(f"cannot read the folder {self.path}: {_why(e)}.") from None
        if not entries:
            return False
        if not self._is_ours():
            raise RunError(
                f"{self.path} is not empty and holds no run of this project (no status.json, no "
                f"config.json of pof): nothing is written there, --overwrite or not. Choose a new "
                f"or empty folder for --out."
            )
        status = self.status()
        state, pid = status["state"], status.get("pid")
        if os.path.lexists(self.config_file) and not overwrite:
            raise RunError(
                f"{self.path} already holds a run (state: {state}). Choose another --out, "
                f"continue it with --resume, or replace it with --overwrite."
            )
        if state in ("queued", "running") and pid is not None and not _mine(pid):
            raise RunError(
                f"{self.path} holds a {state} job (pid {pid} on {status.get('host', '?')}): two jobs "
                f"would write one folder. Cancel it (python -m pof runs cancel {self.path}) and wait "
                f"until it stops, or choose another --out."
            )
        if overwrite:  # the files overwriting deletes must not be an input of the new run
            doomed = {
                f.resolve() for f in [self.metrics_file, *self.checkpoints.glob("*.safetensors")]
            }
            for s in _strings(config):
                with suppress(OSError, ValueError):
                    if Path(s).resolve() in doomed:
                        raise RunError(
                            f"--overwrite of {self.path} would delete {s}, which this run reads. "
                            f"Choose another --out, or copy that file out of the folder first."
                        )
        return state == "queued" and _mine(pid)

    def _is_ours(self) -> bool:
        if os.path.lexists(self.status_file):
            return True
        try:
            cfg, _ = _json_object(self.config_file, CONFIG_LIMIT)
        except OSError:
            return False
        return cfg is not None and "command" in cfg  # e.g. a model folder's config.json is not ours

    def _publish_config(self, text: str, overwrite: bool) -> None:
        """config.json appears whole and only once: os.link fails if the name exists (O_EXCL where
        the file system has no hard links)."""
        tmp = self.path / f".config.json.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
        try:
            _write_new(tmp, text.encode())
            if overwrite:
                self.config_file.unlink(missing_ok=True)
            try:
                os.link(tmp, self.config_file)
            except OSError as e:  # FileExistsError (EEXIST) goes on: another creator won
                if e.errno not in (
                    errno.EPERM,
                    errno.ENOTSUP,
                    errno.EOPNOTSUPP,
                    errno.ENOSYS,
                    errno.EXDEV,
                ):
                    raise
                _write_new(self.config_file, text.encode())
        except FileExistsError:
            raise RunError(
                f"another process created a run in {self.path} at the same moment; "
                f"choose another --out."
            ) from None
        finally:
            with suppress(OSError):
                tmp.unlink()

    def queue(self, pid: int) -> None:
        """Mark a folder as holding a job that process `pid` is about to start (used by the app)."""
        self.path.mkdir(parents=True, exist_ok=True)
        old = self._raw_status()
        if not (
            old.get("state") == "queued" and old.get("pid") == pid
        ):  # a new job: an old request is stale
            (self.path / "cancel").unlink(missing_ok=True)
        self.set_status("queued", pid=pid, progress=0.0)

    def begin_resume(self) -> None:
        """Claim the folder for this process before it continues the run: refuses a live job's folder,
        drops a cancel request left from before (unless this very job was asked to stop while
        queued) and records this process as the one running it. Call on the main rank only."""
        try:
            with _folder_lock(self.path):
                status = self.status()
                state, pid = status["state"], status.get("pid")
                if state in ("queued", "running") and pid is not None and not _mine(pid):
                    raise RunError(
                        f"{self.path} is {state} (pid {pid} on {status.get('host', '?')}): it cannot "
                        f"be resumed twice. Wait for it, or cancel it (python -m pof runs cancel "
                        f"{self.path}) and resume once it has stopped."
                    )
                if not (state == "queued" and _mine(pid)):
                    self._drop_answered_cancel(status)
                self.set_status("running", pid=os.getpid(), error=None, message=None)
        except OSError as e:
            raise RunError(f"cannot resume {self.path}: {_why(e)}.") from e

    def _drop_answered_cancel(self, status: dict) -> None:
        """A cancel file the stopped job already answered (older than its last word) is stale; one
        written since (`runs cancel` racing this resume) is the user's and is kept: the job stops."""
        cancel = self.path / "cancel"
        try:
            written = cancel.stat().st_mtime
        except FileNotFoundError:
            return
        last_word = max(
            (v for k in ("heartbeat", "finished") if _is_number(v := status.get(k))), default=None
        )
        if last_word is None or written <= last_word:
            cancel.unlink(missing_ok=True)

    def _raw_status(self) -> dict:
        """The status as written, if it is sound; {} otherwise (a writer then starts afresh)."""
        try:
            status, _ = _json_object(self.status_file, STATUS_LIMIT)
        except OSError:
            return {}
        return status if status is not None and _status_problem(status) is None else {}

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
            status["pid"] = fields.get(
                "pid", os.getpid()
            )  # after a resume: this process, not the dead one
            status.setdefault("started", now)
        if state in FINAL_STATES:
            status["finished"] = now
        else:
            status.pop("finished", None)
        _write_json_atomic(self.status_file, status)
        self._last_beat = now

    def heartbeat(self, **fields) -> None:
        """Update progress; written at most every HEARTBEAT_SECONDS unless forced by a state change."""
        if time.time() - self._last_beat >= HEARTBEAT_SECONDS:
            self.set_status("running", **fields)

    def log(self, kind: str, **record) -> None:
        line = (
            json.dumps({"kind": kind, "time": time.time(), **record}, allow_nan=True) + "\n"
        ).encode()
        # One os.write on an O_APPEND descriptor: the line lands whole, after any earlier line.
        fd = os.open(self.metrics_file, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            if (
                not self._tail_checked
            ):  # a writer killed mid-line left a torn line: end it, or ours is lost too
                size = os.fstat(fd).st_size
                if size and os.pread(fd, 1, size - 1) != b"\n":
                    line = b"\n" + line
                self._tail_checked = True
            os.write(fd, line)
        finally:
            os.close(fd)

    def cancel_requested(self) -> bool:
        return (self.path / "cancel").exists()

    def request_cancel(self) -> None:
        (self.path / "cancel").touch()

    def config_to_resume(self, command: str) -> dict:
        """The saved configuration of a `command` run that can be continued; refuses anything else."""
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

    # --- reading (anyone) ---
    def config(self) -> dict:
        """The saved configuration; RunError naming the file and the reason if it cannot be read."""
        try:
            cfg, problem = _json_object(self.config_file, CONFIG_LIMIT)
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

    def status(self) -> dict:
        """The status as written, with `state` "broken" when the file cannot be read (the error says
        why) and "failed" when a queued or running job's process is gone. Never raises."""
        try:
            status, problem = _json_object(self.status_file, STATUS_LIMIT)
        except FileNotFoundError:
            return {"state": "unknown", "error": f"{self.path} has no status.json"}
        except OSError as e:  # e.g. a path component that is a file
            status, problem = None, f"unreadable ({_why(e)})"
        problem = problem or _status_problem(status)
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
            and not _pid_alive(pid, beat)
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
        self.bad_lines = 0
        try:
            with _open_regular(self.metrics_file) as f:
                data = f.read()
        except OSError:
            return []
        return self._records(
            data[: data.rfind(b"\n") + 1], kind
        )  # after the last newline: still being written

    def last(self, kind: str, tail_bytes: int = 1 << 16) -> dict | None:
        """The newest record of `kind`, reading the log from its end (a live view polls this)."""
        try:
            f = _open_regular(self.metrics_file)
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
        "broken", with the reason in "error". Values have fixed types (str, or a number, or None)."""
        status = self.status()
        state, error, cfg = status["state"], status.get("error"), {}
        if os.path.lexists(
            self.config_file
        ):  # missing while a queued job has not started: not broken
            try:
                cfg = self.config()
            except RunError as e:
                if state != BROKEN:
                    state, error = BROKEN, str(e)
        last = (
            self.last("epoch") or {}
        )  # the newest epoch record: after a resume, the later one wins
        text, number = (
            (lambda v: None if v is None else str(v)),
            (lambda v: v if _is_number(v) else None),
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


def list_runs(root: str | Path) -> list[Run]:
    """Every run folder under `root` (any depth), newest first. Never raises because of one run: an
    unreadable run is listed (its status reads "broken"), unreadable folders are skipped, and
    symbolic links are not followed (a link must not pull a foreign folder into the list)."""
    root = Path(root)
    if not os.path.isdir(root):
        return []
    # status.json, not config.json: a job the app has queued is listed before its process writes the config
    runs = [
        Run(Path(d))
        for d, dirs, files in os.walk(root, followlinks=False)  # a status.json folder: broken
        if "status.json" in (*files, *dirs) and not os.path.islink(os.path.join(d, "status.json"))
    ]
    created = {r.path: r.status().get("created", 0) for r in runs}  # a number: status() checked it
    return sorted(runs, key=lambda r: created[r.path], reverse=True)
