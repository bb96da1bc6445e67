"""The one cache of analysis results: a result is stored under a key of what it was computed from.

The key is a hash of the checkpoint files' bytes, the data (its name, options and subset, and the
bytes of a user's own data file) and every option of the computation, so asking the same question
again reads the stored result, and any change to a file or an option asks a new one. Results are
stored in `analysis.results`' format; one that cannot be read is computed again.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

from analysis import results
from analysis.results import Result, Saved
from pof.files import regular_file

_digests: dict[tuple, str] = {}  # (path, size, mtime) -> sha256: each file version is read once


def file_digest(path: str | Path) -> str:
    """SHA-256 of a file's bytes. Remembered in this process for the same (path, size, mtime), so
    that a page drawn every second does not read a 200 MB upload each time; the key is the bytes."""
    path = Path(path).resolve()
    st = path.stat()
    memo = (str(path), st.st_size, st.st_mtime_ns)
    if memo not in _digests:
        h = hashlib.sha256()
        with open(regular_file(path), "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        _digests[memo] = h.hexdigest()
    return _digests[memo]


def data_digests(dataset: str) -> list[str]:
    """The bytes of the user's own data files that a dataset name points at (npz:/csv: files);
    registry datasets and folders are named by their spec alone."""
    kind, _, rest = dataset.partition(":")
    if kind not in ("npz", "csv"):
        return []
    return [file_digest(p) for p in rest.split(",") if Path(p).is_file()]


def key(kind: str, files: Iterable[str | Path] = (), **parts) -> str:
    """KIND-HASH over the files' bytes and the JSON of `parts` (the data, the options)."""
    about = {"files": [file_digest(f) for f in files], **parts}
    text = json.dumps(about, sort_keys=True, default=str)
    return f"{kind}-{hashlib.sha256(text.encode()).hexdigest()[:16]}"


def warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def cached(
    path: Path, kind: str, cls: type, compute: Callable[[], dict[str, Result]], **about
) -> tuple[Saved, bool]:
    """The results stored at `path` (named by `key`), or `compute()`'s, then stored there with
    `about`. Returns (results, whether they came from the cache)."""
    saved = results.load(path, kind, cls, on_problem=warn)
    if saved is not None:
        return saved, True
    fresh = compute()
    results.save(path, kind, fresh, **about)
    return Saved(kind, fresh, about), False
