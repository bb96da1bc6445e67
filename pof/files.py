"""The one way this project replaces a file: written beside it, on disk (fsync), then renamed.

Readers see the old file or the new one, never half of one, and after a crash or power cut the new
one is either complete or absent. On failure (a full disk, a read-only folder) the old file is left
untouched, the temporary file removed and the OSError raised.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import uuid
from collections.abc import Iterator
from pathlib import Path

from .hints import Hinted, file_ref


def temp_name(path: Path) -> Path:
    """A hidden name beside `path`, unique to this process and call (run-folder readers skip it)."""
    return path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(folder: Path) -> None:
    """Make a rename in `folder` durable (a no-op where directories cannot be opened)."""
    with contextlib.suppress(OSError):
        fsync_file(folder)


@contextlib.contextmanager
def replacing(path: str | Path) -> Iterator[Path]:
    """`with replacing(p) as tmp: write(tmp)`, for writers that take a path (safetensors, torch);
    `p` is replaced by what was written to `tmp` only if the block finishes."""
    path = Path(path)
    tmp = temp_name(path)
    try:
        yield tmp
        fsync_file(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    fsync_dir(path.parent)


def write_new(path: Path, data: bytes) -> None:
    """Create `path` (it must not exist) holding `data`, on disk before the call returns."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: str | Path, data: bytes | str) -> None:
    """Replace `path` with `data` (str is written as UTF-8)."""
    path = Path(path)
    if isinstance(data, str):
        data = data.encode()
    tmp = temp_name(path)
    try:
        write_new(tmp, data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    fsync_dir(path.parent)


def write_json_atomic(path: str | Path, obj) -> None:
    """Replace `path` with `obj` as JSON; an object that cannot be saved fails before any write."""
    write_atomic(path, json.dumps(obj, indent=1))


_KINDS = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


class NotRegularFile(Hinted, OSError):
    """A path that names something other than a regular file; the message says what it is."""


def regular_file(path: str | Path, what: str = "file") -> Path:
    """`path` if it names a regular file (links followed), checked by its type before anything
    opens it: a FIFO or a socket would block its reader forever and a device would never end.
    FileNotFoundError if nothing is there, NotRegularFile naming what is there instead (or why
    the path cannot be followed)."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise
    except OSError as e:  # a loop of links, a name too long, a file where a folder should be
        raise NotRegularFile(f"{file_ref(path)} cannot be opened: {e.strerror or e}.") from None
    if not stat.S_ISREG(mode):
        kind = next((name for test, name in _KINDS if test(mode)), "not a regular file")
        raise NotRegularFile(
            f"{file_ref(path)} is {kind}, not a file; give the path of the {what} itself."
        )
    return Path(path)
