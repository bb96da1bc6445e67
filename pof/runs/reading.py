"""Reading a run folder's small files without trusting them: a hand-edited, foreign or torn file
never crashes or hangs a reader (a FIFO is not read, a huge file is refused, bad JSON is reported).
"""

from __future__ import annotations

import errno
import json
import math
import os
import stat
from pathlib import Path

STATES = ("queued", "running", "done", "failed", "cancelled")
FINAL_STATES = ("done", "failed", "cancelled")
BROKEN = "broken"  # never written by a job: what readers see when status.json cannot be read
STATUS_LIMIT, CONFIG_LIMIT = 1 << 20, 16 << 20  # bytes; a bigger file is not ours
_NUMBERS = ("created", "heartbeat", "started", "finished", "progress")


class RunError(Exception):
    pass


class ConfigMissing(RunError, FileNotFoundError):
    """No config.json: a RunError, and still the FileNotFoundError that older callers catch."""


def open_regular(path: Path):
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
    with open_regular(path) as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise OSError(errno.EFBIG, f"larger than {limit} bytes")
    return data


def why(e: Exception) -> str:
    """An error in a few words, for a message that names the file."""
    return e.strerror if isinstance(e, OSError) and e.strerror else f"{type(e).__name__}: {e}"


def json_object(path: Path, limit: int) -> tuple[dict | None, str | None]:
    """(the JSON object in `path`, None) or (None, why not). FileNotFoundError is raised."""
    try:
        data = _read_small(path, limit)
    except FileNotFoundError:
        raise
    except OSError as e:
        return None, f"unreadable ({why(e)})"
    try:
        obj = json.loads(data)
    except (ValueError, RecursionError) as e:  # bad UTF-8 is a ValueError too
        if not data.strip():
            return None, "empty"
        return None, f"not valid JSON ({str(e)[:100] or type(e).__name__})"
    if not isinstance(obj, dict):
        return None, f"holds a JSON {type(obj).__name__}, not an object"
    return obj, None


def number_text(value, spec: str = ".4f") -> str:
    """A value read from a run folder, formatted, or "n/a": a hand-edited or foreign file may hold
    anything (a bool is not a number here)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return format(value, spec)
    return "n/a"


def is_number(v) -> bool:
    """A finite int or float (not a bool)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return False
    try:
        return math.isfinite(float(v))
    except OverflowError:
        return False


def status_problem(s: dict) -> str | None:
    """Why a status object cannot be trusted, or None: a reader formats its fields unchecked."""
    if s.get("state") not in STATES:
        return f"state is {s.get('state')!r:.40}, not one of {', '.join(STATES)}"
    for k in _NUMBERS:
        if k in s and not is_number(s[k]):
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
