"""The app's own files beside the runs: uploads, kept under generated names in RUNS/.uploads, each
with a small JSON note of its original name, listed and deletable (the bytes are never interpreted
here; pof.models.loading.load_checkpoint reads them, tensors only), and the project checkpoints the
Inspect page saves from the user's own models, in RUNS/imported."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

from app.classroom import session_token, shared
from app.jobs import runs_root
from pof.files import regular_file, write_atomic, write_json_atomic

# The largest upload Streamlit accepts, in MB: server.maxUploadSize in .streamlit/config.toml.
MAX_UPLOAD_MB = 200
KNOWN_SUFFIXES = (".safetensors", ".pt", ".pth", ".ckpt", ".pt2", ".bin")


def uploads_dir() -> Path:
    """RUNS/.uploads; shared with a class, each browser session has its own folder in it."""
    return runs_root() / ".uploads" / (session_token() if shared() else "")


def imported_dir() -> Path:
    """Project checkpoints the Inspect page saved from the user's own models (listed under my
    runs)."""
    return runs_root() / "imported"


def save_upload(original_name: str, data: bytes) -> Path:
    """Store the bytes as <sha256 prefix><suffix>; the same file uploaded twice is stored once.
    The suffix is kept only when it is a known model suffix: names never come from the user."""
    folder = uploads_dir()
    folder.mkdir(parents=True, exist_ok=True)
    suffix = Path(original_name).suffix.lower()
    name = hashlib.sha256(data).hexdigest()[:16] + (suffix if suffix in KNOWN_SUFFIXES else ".bin")
    path = folder / name
    if not path.exists():
        write_atomic(path, data)
        note = {"name": Path(original_name).name[:200], "bytes": len(data), "uploaded": time.time()}
        write_json_atomic(path.with_name(path.name + ".json"), note)
    return path


def list_uploads() -> list[tuple[Path, dict]]:
    """(stored file, its note), newest first; a file whose note is unreadable is listed by its
    name."""
    folder = uploads_dir()
    if not folder.is_dir():
        return []
    out = []
    for path in folder.iterdir():
        # only what save_upload wrote: not its notes, nor a file still being written (hidden)
        if path.suffix == ".json" or path.name.startswith(".") or path.is_symlink():
            continue
        if not path.is_file():
            continue
        try:
            # by its type first: a FIFO put there would hang every page that lists uploads
            note = json.loads(regular_file(path.with_name(path.name + ".json")).read_text())
            ok = (
                isinstance(note, dict)
                and isinstance(note.get("name"), str)
                and all(isinstance(note.get(k), (int, float)) for k in ("bytes", "uploaded"))
            )
        except (OSError, ValueError):
            ok = False
        if not ok:
            note = {
                "name": path.name,
                "bytes": path.stat().st_size,
                "uploaded": path.stat().st_mtime,
            }
        out.append((path, note))
    return sorted(out, key=lambda item: item[1].get("uploaded", 0), reverse=True)


def delete_upload(path: Path) -> None:
    """Delete a stored upload (only ever a file directly inside the uploads folder)."""
    path = Path(path)
    if path.parent.resolve() != uploads_dir().resolve():
        raise ValueError(f"{path} is not an upload")
    path.unlink(missing_ok=True)
    path.with_name(path.name + ".json").unlink(missing_ok=True)


def free_file(folder: Path, stem: str) -> Path:
    """folder/STEM.safetensors, or STEM-2, -3 ... when taken; the stem keeps only safe
    characters."""
    safe = (
        "".join(c if c.isalnum() or c in "-_." else "-" for c in stem).strip(".-")[:80] or "model"
    )
    path, n = folder / f"{safe}.safetensors", 2
    while path.exists():
        path, n = folder / f"{safe}-{n}.safetensors", n + 1
    return path
