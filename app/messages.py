"""The engine's messages in the app's words: what a loader asks for (pof.hints marks it by concept)
named as the page's own field, and each file by the name the user knows it by (an upload's
original name, never where it is stored)."""

from __future__ import annotations

from app.uploads import list_uploads
from pof.hints import marked, render

# the Inspect page's fields, by the concept each one gives
INSPECT_FIELDS = {
    "arch": "Architecture",
    "arch_args": "Its arguments",
    "classifier": "Classifier layer",
    "key_map": "Rename keys",
    "weights_key": "Weights key",
    "dataset": "Data",
    "classes": "Class order",
    "label_column": "Label column (CSV)",
    "mean": "Normalization",
    "std": "Normalization",
}
# what the app offers for the rest, on whatever page
ELSEWHERE = {
    "import": "save it once as a project checkpoint (the Inspect page: fill in the fields, then "
    "'Save as a project checkpoint' under its card)",
    "data_root": "another data folder (the POF_DATA setting the app was started with)",
    "svhn_extra": "SVHN's extra split",
    "overwrite": "a new name",
    "out": "name",
}


def words_for(fields: dict[str, str], page: str = "Inspect"):
    """A renderer for pof.hints: a concept the page has is its field; one the Inspect page has is
    that field there; the others are said in ELSEWHERE's words."""

    def words(concept: str, value: str | None) -> str:
        if concept in fields:
            where = f"the '{fields[concept]}' field"
        elif concept in INSPECT_FIELDS and page != "Inspect":
            where = f"the '{INSPECT_FIELDS[concept]}' field of the Inspect page"
        else:
            return ELSEWHERE.get(concept, concept.replace("_", " "))
        return f"{value} in {where}" if value is not None else where

    return words


def say(
    message,
    fields: dict[str, str] = INSPECT_FIELDS,
    names: dict[str, str] | None = None,
    page: str = "Inspect",
) -> str:
    """An error, a pof.hints.Said or plain text, in the page's words, with files by their
    `names` (keyed by stored path; uploads always by the name they were uploaded with)."""
    names = {**{str(p): note["name"] for p, note in list_uploads()}, **(names or {})}
    return render(marked(message), words_for(fields, page), names)


def job_error(status: dict, **kw) -> str:
    """A failed job's error (its status), in the page's words."""
    return say(status.get("error_marked") or status.get("error", ""), **kw)


def human_size(n: int) -> str:
    """Bytes in the unit that reads best: 11.8 KB, 3.2 MB."""
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} bytes"
