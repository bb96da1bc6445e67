"""Claiming a run folder: creating a new run atomically and exclusively, or taking one over to
resume it. Of two processes that claim one folder at once, exactly one wins; a folder that holds no
run of this project, a run (unless overwritten) or a live job's run is refused with nothing written.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import re
import socket
import time
from contextlib import contextmanager, suppress
from pathlib import Path

from ..files import temp_name, write_json_atomic, write_new
from .folder import RunFolder
from .liveness import is_mine
from .reading import CONFIG_LIMIT, RunError, is_number, json_object, why

LOCK_SECONDS = 30.0  # how long a creator waits for another process creating the same folder
_TEMP = re.compile(r"\.(config|status)\.json\.\d+\.[0-9a-f]{8}\.tmp")  # pof.files.temp_name's


@contextmanager
def folder_lock(folder: Path):
    """An exclusive flock on the folder itself, so that creators and resumers of one run take turns.
    Where flock is not supported the exclusive os.link in create_run still lets only one win."""
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


def create_run(run: RunFolder, config: dict, overwrite: bool) -> None:
    """Make `run`'s folder hold a new run with `config` (see Run.create); on any failure nothing
    this call made is left behind."""
    text = json.dumps(config, indent=1)  # a config that cannot be saved fails before any folder
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
            f"cannot create the run folder {run.path}: {why(e)}. Choose a writable place for --out."
        ) from None
    written: list[Path] = []
    try:
        with folder_lock(run.path):
            queued_here = _check_free(run, config, overwrite)
            publish_config(run, text, overwrite)
            written.append(run.config_file)
            if overwrite:
                for f in [run.metrics_file, *run.checkpoints.glob("*.safetensors")]:
                    f.unlink(missing_ok=True)
            if not queued_here:  # a cancel is stale unless this very job was asked to stop
                (run.path / "cancel").unlink(missing_ok=True)
            run.checkpoints.mkdir(exist_ok=True)
            written += [run.checkpoints, run.metrics_file, run.status_file]
            run.metrics_file.touch()
            _fresh_status(run)
    except BaseException as e:
        if made:  # leave nothing half-made behind
            for f in reversed(written):
                with suppress(OSError):
                    f.rmdir() if f == run.checkpoints else f.unlink()
            with suppress(OSError):
                run.path.rmdir()
        if isinstance(e, OSError) and not isinstance(e, RunError):
            raise RunError(f"cannot write the run folder {run.path}: {why(e)}.") from e
        raise


def _fresh_status(run: RunFolder) -> None:
    """A new run's status: nothing of an old one (an error, a finish time) leaks into it."""
    now = time.time()
    status = {
        "created": now,
        "state": "queued",
        "pid": os.getpid(),
        "progress": 0.0,
        "heartbeat": now,
        "host": socket.gethostname(),
    }
    write_json_atomic(run.status_file, status)


def _check_free(run: RunFolder, config: dict, overwrite: bool) -> bool:
    """Raise RunError unless the folder may receive a new run; returns whether this process was
    queued for it (then its cancel file is meant for this job)."""
    try:  # our own temporary files (another creator's, a killed one's) do not make it foreign
        entries = [e for e in os.listdir(run.path) if not _TEMP.fullmatch(e)]
    except OSError as e:
        raise RunError(f"cannot read the folder {run.path}: {why(e)}.") from None
    if not entries:
        return False
    if not _is_ours(run):
        raise RunError(
            f"{run.path} is not empty and holds no run of this project (no status.json, no "
            f"config.json of pof): nothing is written there, --overwrite or not. Choose a new "
            f"or empty folder for --out."
        )
    status = run.status()
    state, pid = status["state"], status.get("pid")
    if os.path.lexists(run.config_file) and not overwrite:
        raise RunError(
            f"{run.path} already holds a run (state: {state}). Choose another --out, "
            f"continue it with --resume, or replace it with --overwrite."
        )
    if state in ("queued", "running") and pid is not None and not is_mine(pid):
        raise RunError(
            f"{run.path} holds a {state} job (pid {pid} on {status.get('host', '?')}): two jobs "
            f"would write one folder. Cancel it (python -m pof runs cancel {run.path}) and wait "
            f"until it stops, or choose another --out."
        )
    if overwrite:
        _refuse_deleting_an_input(run, config)
    return state == "queued" and is_mine(pid)


def _refuse_deleting_an_input(run: RunFolder, config: dict) -> None:
    """The files overwriting deletes must not be an input of the new run."""
    doomed = {f.resolve() for f in [run.metrics_file, *run.checkpoints.glob("*.safetensors")]}
    for s in _strings(config):
        with suppress(OSError, ValueError):
            if Path(s).resolve() in doomed:
                raise RunError(
                    f"--overwrite of {run.path} would delete {s}, which this run reads. "
                    f"Choose another --out, or copy that file out of the folder first."
                )


def _strings(obj, depth: int = 3):
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, dict) and depth:
        for v in obj.values():
            yield from _strings(v, depth - 1)
    elif isinstance(obj, (list, tuple)) and depth:
        for v in obj:
            yield from _strings(v, depth - 1)


def _is_ours(run: RunFolder) -> bool:
    if os.path.lexists(run.status_file):
        return True
    try:
        cfg, _ = json_object(run.config_file, CONFIG_LIMIT)
    except OSError:
        return False
    return cfg is not None and "command" in cfg  # e.g. a model folder's config.json is not ours


def publish_config(run: RunFolder, text: str, overwrite: bool) -> None:
    """config.json appears whole and only once: os.link fails if the name exists (O_EXCL where
    the file system has no hard links)."""
    tmp = temp_name(run.config_file)
    try:
        write_new(tmp, text.encode())
        if overwrite:
            run.config_file.unlink(missing_ok=True)
        try:
            os.link(tmp, run.config_file)
        except OSError as e:  # FileExistsError (EEXIST) goes on: another creator won
            no_links = (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS, errno.EXDEV)
            if e.errno not in no_links:
                raise
            write_new(run.config_file, text.encode())
    except FileExistsError:
        raise RunError(
            f"another process created a run in {run.path} at the same moment; choose another --out."
        ) from None
    finally:
        with suppress(OSError):
            tmp.unlink()


def claim_for_resume(run: RunFolder) -> None:
    """See Run.begin_resume."""
    try:
        with folder_lock(run.path):
            status = run.status()
            state, pid = status["state"], status.get("pid")
            if state in ("queued", "running") and pid is not None and not is_mine(pid):
                raise RunError(
                    f"{run.path} is {state} (pid {pid} on {status.get('host', '?')}): it cannot "
                    f"be resumed twice. Wait for it, or cancel it (python -m pof runs cancel "
                    f"{run.path}) and resume once it has stopped."
                )
            if not (state == "queued" and is_mine(pid)):
                _drop_answered_cancel(run, status)
            run.set_status("running", pid=os.getpid(), error=None, message=None)
    except OSError as e:
        raise RunError(f"cannot resume {run.path}: {why(e)}.") from e


def _drop_answered_cancel(run: RunFolder, status: dict) -> None:
    """A cancel file the stopped job already answered (older than its last word) is stale; one
    written since (`runs cancel` racing this resume) is the user's and is kept: the job stops."""
    cancel = run.path / "cancel"
    try:
        written = cancel.stat().st_mtime
    except FileNotFoundError:
        return
    last_word = max(
        (v for k in ("heartbeat", "finished") if is_number(v := status.get(k))), default=None
    )
    if last_word is None or written <= last_word:
        cancel.unlink(missing_ok=True)
