"""The user's own CSV files: one with a split column (train/test), one without (split here: a
seeded split stratified by label, stated and recorded), or two (train, test) matched by column
name. Every column but the label (and split) must be numeric: a text (categorical) or empty
(missing) cell is refused by line and column, saying what to do, since no rule would encode or fill
it without guessing. Labels are integers 0..K-1 (an integer-valued number such as 1.0 counts as
one) or class names; numbers with a fraction (0.5, a regression target) are refused.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..hints import ask
from .dataset import Dataset, existing_file, integer_classes, own_dataset
from .names import SPLIT_SEED, TEST_FRACTION, DatasetError, short_repr

if TYPE_CHECKING:
    import pandas as pd

# Integer labels are decimal digits with an optional sign ("07" is 7); anything else ("0.5",
# "1e3", "seven") makes every label of the file a class name.
_INT = re.compile(r"[+-]?[0-9]+")


class _Long:
    """A row with more cells than the header, kept in its place as one cell (by on_bad_lines)."""

    def __init__(self, cells: list[str]):
        self.cells = cells


def _parse(path: Path, on_bad_lines) -> pd.DataFrame:
    import pandas as pd  # on first use: importing pof.data need not import pandas

    # Every cell as its text (dtype=object, no "NA"/"null" read as missing), so labels stay what
    # the file says and numbers are parsed below. The python engine leaves the cells a short row
    # lacks as None, distinct from an empty cell; blank lines stay rows, so that row numbers can
    # be turned into line numbers. -sig: spreadsheet exports start with a BOM.
    return pd.read_csv(
        path,
        header=None,
        dtype=object,
        keep_default_na=False,
        skip_blank_lines=False,
        engine="python",
        encoding="utf-8-sig",
        on_bad_lines=on_bad_lines,
    )


def _read_csv(path: Path) -> tuple[list[str], pd.DataFrame, np.ndarray]:
    """The header, the non-blank rows as text cells (columns named by the header) and each row's
    line number (for error messages)."""
    import pandas as pd

    long_rows = False
    try:
        try:
            raw = _parse(path, "error")
        except pd.errors.ParserError as e:
            if not str(e).startswith("Expected "):  # "Expected 2 fields in line 3, saw 4"
                raise
            if str(e).startswith("Expected 0 "):  # nothing to keep a long row in
                raise DatasetError(
                    f"{path}: the header row (line 1) is blank; a CSV needs a header row naming "
                    f"its columns."
                ) from None
            # Every row was read, but one is longer than the header, and pandas names only the
            # first such by its row count. Read again with those rows kept in place, so that
            # rows are checked in file order below. (A callable on_bad_lines would also drop a
            # row the csv module cannot read, so it is used only once the file is known to read.)
            raw, long_rows = _parse(path, lambda cells: [_Long(cells)]), True
    except pd.errors.EmptyDataError:
        raise DatasetError(
            f"{path} is empty; a CSV needs a header row naming its columns."
        ) from None
    except UnicodeDecodeError as e:
        raise DatasetError(f"{path} is not a UTF-8 text CSV file ({e}).") from e
    except pd.errors.ParserError as e:
        raise DatasetError(f"{path} is not a readable CSV file: {e}.") from e
    if raw.empty:  # blank lines only
        return [], pd.DataFrame(), np.zeros(0, dtype=np.int64)
    header = [h.strip() for h in raw.iloc[0]]
    cells = raw.notna().sum(axis=1).to_numpy(copy=True)  # a short row's missing cells are None
    if long_rows:
        for i in np.flatnonzero(raw[0].map(lambda c: isinstance(c, _Long)).to_numpy()):
            cells[i] = len(raw.iat[i, 0].cells)
            raw.iat[i, 0] = "".join(raw.iat[i, 0].cells)  # blank if its cells are; keeps breaks
    lines = np.arange(1, len(raw) + 1)
    with open(path, encoding="utf-8-sig", newline="") as f:
        physical = sum(1 for _ in f)  # lines as the csv module and an editor count them
    if physical != len(raw):
        # A quoted cell spans lines: count its line breaks, so that a row's number is the line on
        # which it ends.
        breaks = raw.apply(lambda col: col.str.count(r"\r\n|\r|\n")).fillna(0).sum(axis=1)
        lines += breaks.cumsum().to_numpy(dtype=np.int64)
    # Rows of empty or blank cells are skipped, whatever their length: look at a column only in
    # the rows that are blank so far (usually none after the first column).
    keep = np.zeros(len(raw), dtype=bool)
    for column in raw.columns:
        blank = ~keep
        keep[blank] = raw[column][blank].str.strip().fillna("").ne("").to_numpy()
        if keep.all():
            break
    keep[0] = False  # the header
    rows, lines, cells = raw[keep], lines[keep], cells[keep]
    odd = np.flatnonzero(cells != len(header))
    if len(odd):
        raise DatasetError(
            f"{path} line {lines[odd[0]]}: {cells[odd[0]]} cells, but the header names "
            f"{len(header)} columns."
        )
    if not all(header) or len(set(header)) != len(header):
        raise DatasetError(
            f"{path}: every column needs its own non-empty name in the header row; found {header}."
        )
    rows.columns = header
    return header, rows, lines


def _csv_table(path: Path, label_column: str, two_files: bool) -> dict:
    """Features (float32), labels (stripped strings), split (or None) and line numbers of one CSV
    file."""
    header, rows, lines = _read_csv(path)
    if label_column not in header:
        raise DatasetError(
            f"{path} has no label column {label_column!r}; its columns are {header}. "
            f"Name the label column with {ask('label_column')}."
        )
    has_split = "split" in header and label_column != "split"
    if has_split and two_files:
        raise DatasetError(
            f"{path} has a split column, but two files were given; give one file with a split "
            f"column (csv:FILE), or two files without one (csv:TRAIN.csv,TEST.csv)."
        )
    features = [h for h in header if h != label_column and not (has_split and h == "split")]
    if not features:
        raise DatasetError(f"{path} has no feature columns besides {label_column!r}.")
    if rows.empty:
        raise DatasetError(f"{path} has a header but no rows.")
    labels = rows[label_column].str.strip()
    empty = np.flatnonzero((labels == "").to_numpy())
    if len(empty):
        raise DatasetError(f"{path} line {lines[empty[0]]}: the label ({label_column!r}) is empty.")
    split = None
    if has_split:
        split = rows["split"].str.strip().str.lower()
        odd = np.flatnonzero(~split.isin(("train", "test")).to_numpy())
        if len(odd):
            raise DatasetError(
                f"{path} line {lines[odd[0]]}: split is {split.iloc[odd[0]]!r}; it must be "
                f"'train' or 'test'."
            )
        split = split.tolist()
    text = rows[features].to_numpy()
    try:
        # float() of each cell, as Python reads a number (surrounding spaces, "1e3", "inf")
        x = text.astype(np.float64)  # float32 (checked for overflow) below
    except ValueError:
        _refuse_cells(path, text, features, lines, has_split)
        raise
    with np.errstate(over="ignore"):
        x = x.astype(np.float32)
    bad = np.argwhere(~np.isfinite(x))
    if len(bad):
        r, j = bad[0]
        raise DatasetError(
            f"{path} line {lines[r]}, column {features[j]!r}: {short_repr(text[r, j])} is "
            f"NaN or infinite (as float32); {len(bad)} such cells. Remove or impute them first."
        )
    return {
        "features": features,
        "x": x,
        "labels": labels.tolist(),
        "split": split,
        "lines": lines.tolist(),
    }


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _refuse_cells(path: Path, text: np.ndarray, features: list[str], lines, has_split) -> None:
    """Name the first cell that is not a number: an empty one is a missing value (fill it), a text
    one a category (encode it); say how many the column holds."""
    numeric = np.vectorize(_is_number, otypes=[bool])(text) if text.size else text
    r, j = np.argwhere(~numeric)[0]
    column = text[:, j]
    empty = np.char.strip(column.astype(str)) == ""
    name = features[j]
    if empty[r]:
        raise DatasetError(
            f"{path} line {lines[r]}, column {name!r}: the cell is empty (a missing value; "
            f"{int(empty.sum())} in this column). Fill the missing cells first (e.g. with the "
            f"column's mean or median) or drop those rows or the column."
        )
    words = sorted({c.strip() for c in column[~numeric[:, j] & ~empty]})
    raise DatasetError(
        f"{path} line {lines[r]}, column {name!r}: {short_repr(column[r])} is not a number; the "
        f"column holds text in {int((~numeric[:, j]).sum())} rows ({short_repr(words[:5], 80)}"
        f"{', ...' if len(words) > 5 else ''}), a categorical column. Encode it as numbers first "
        f"(e.g. one 0/1 column per category) or drop it: every column except the label"
        f"{' and split' if has_split else ''} must be numeric."
    )


def _integer_labels(labels: list[str], lines: list[tuple[Path, int]], where: str) -> list[str]:
    """Labels that are all numbers: integer-valued ones ("1.0", "2e0") as integer text; a number
    with a fraction (0.5, a regression target) or NaN/inf refused, naming its line."""
    out = []
    for i, v in enumerate(labels):
        f = float(v)
        if not (np.isfinite(f) and f == int(f)):
            path, line = lines[i]
            raise DatasetError(
                f"{path} line {line}: the label {v!r} is a number but not an integer; labels are "
                f"classes, integers 0..K-1 or names. A continuous target cannot be classified: "
                f"bin it into classes (or round it) first, or check that the label column is the "
                f"right one ({where})."
            )
        out.append(str(int(f)))
    return out


def _csv_label_indices(
    labels: list[str], lines: list[tuple[Path, int]], stated: list[str] | None, where: str
) -> tuple[np.ndarray, list[str], str]:
    if labels and not all(_INT.fullmatch(v) for v in labels) and all(map(_is_number, labels)):
        labels = _integer_labels(labels, lines, where)
    if all(_INT.fullmatch(v) for v in labels):
        values = [int(v) for v in labels]
        if any(not -(2**63) <= v < 2**63 for v in values):
            raise DatasetError(
                f"{where}: labels must be integers 0..K-1; found values beyond int64."
            )
        y = np.array(values, dtype=np.int64) if labels else np.zeros(0, np.int64)
        classes, order = integer_classes(y, stated, where)
        return y, classes, order
    classes, order = (
        (list(stated), "stated") if stated is not None else (sorted(set(labels)), "alphabetical")
    )
    index = {c: i for i, c in enumerate(classes)}
    unknown = next((i for i, v in enumerate(labels) if v not in index), None)
    if unknown is not None:
        path, line = lines[unknown]
        raise DatasetError(
            f"{path} line {line}: label {labels[unknown]!r} is not among the stated classes "
            f"{short_repr(classes, 200)}; add it to {ask('classes')} (in label order)."
        )
    return np.array([index[v] for v in labels], dtype=np.int64), classes, order


def _stratified_split(
    path: Path, y: np.ndarray, classes: list[str], test_fraction: float, seed: int
) -> tuple[np.ndarray, str]:
    """Rows for training (a mask): scikit-learn's train_test_split stratified by label, so that
    each class keeps its share in both splits; and the split stated."""
    from sklearn.model_selection import train_test_split

    counts = np.bincount(y, minlength=len(classes))
    few = [classes[c] for c in np.flatnonzero((counts > 0) & (counts < 2))]
    if few:
        raise DatasetError(
            f"{path} has no split column and class {short_repr(few[0])} has a single row: a "
            f"stratified split needs at least two rows of each class. Add rows, or add a column "
            f"named 'split' with values train/test."
        )
    try:
        _, test = train_test_split(
            np.arange(len(y)), test_size=test_fraction, random_state=seed, stratify=y
        )
    except ValueError as e:  # fewer test (or training) rows than classes
        raise DatasetError(
            f"{path}: a {test_fraction:g} test fraction of {len(y)} rows cannot hold every one "
            f"of the {int((counts > 0).sum())} classes in both splits ({e}). Change test_fraction "
            f"(--test-fraction), add rows, or add a column named 'split' with values train/test."
        ) from None
    is_train = np.ones(len(y), dtype=bool)
    is_train[test] = False
    stated = (
        f"split drawn here (no split column): {int((~is_train).sum())} of {len(y)} rows "
        f"({test_fraction:g}) for testing, stratified by label, seed {seed}"
    )
    return is_train, stated


def csv_dataset(
    text: str,
    label_column: str | None,
    stated: list[str] | None,
    test_fraction: float | None = None,
    split_seed: int | None = None,
) -> Dataset:
    label_column = label_column or "label"
    whole = Path(text.strip()).expanduser()
    parts = (
        [text] if "," not in text or whole.is_file() else text.split(",")
    )  # a comma in a real name wins
    if len(parts) > 2 or not all(p.strip() for p in parts):
        raise DatasetError(
            f"csv:{text}: give one file (with a split column) or two as csv:TRAIN.csv,TEST.csv."
        )
    paths = [existing_file(p) for p in parts]
    tables = [_csv_table(p, label_column, len(paths) == 2) for p in paths]
    drawn = {}  # the split's options, when it is drawn here
    split_text = ""
    asked = test_fraction is not None or split_seed is not None
    if len(paths) == 1:
        t = tables[0]
        if asked and t["split"] is not None:
            raise DatasetError(
                f"{paths[0]} has a split column, which says which rows are for testing: "
                f"test_fraction / split_seed apply to a CSV without one; leave them out."
            )
        lines = [(paths[0], line) for line in t["lines"]]
        y, classes, order = _csv_label_indices(t["labels"], lines, stated, f"csv:{paths[0]}")
        if t["split"] is None:
            fraction = TEST_FRACTION if test_fraction is None else test_fraction
            seed = SPLIT_SEED if split_seed is None else split_seed
            is_train, split_text = _stratified_split(paths[0], y, classes, fraction, seed)
            drawn = {"test_fraction": fraction, "split_seed": seed}
        else:
            is_train = np.array([s == "train" for s in t["split"]])
        for name, mask in (("train", is_train), ("test", ~is_train)):
            if not mask.any():
                raise DatasetError(f"{paths[0]}: no row has split={name}; both splits need rows.")
        xtr, xte, ytr, yte = t["x"][is_train], t["x"][~is_train], y[is_train], y[~is_train]
        features, name = t["features"], f"csv:{paths[0]}"
    else:
        if asked:
            raise DatasetError(
                f"csv:{text} names a training and a test file: test_fraction / split_seed apply "
                f"to a single CSV without a split column; leave them out."
            )
        train, test = tables
        features = train["features"]
        if set(test["features"]) != set(features):
            raise DatasetError(
                f"{paths[1]} and {paths[0]} need the same columns; only in train: "
                f"{sorted(set(features) - set(test['features']))}, only in test: "
                f"{sorted(set(test['features']) - set(features))}."
            )
        reorder = [
            test["features"].index(h) for h in features
        ]  # match columns by name, not position
        lines = [(paths[0], line) for line in train["lines"]] + [
            (paths[1], line) for line in test["lines"]
        ]
        name = f"csv:{paths[0]},{paths[1]}"
        y, classes, order = _csv_label_indices(
            train["labels"] + test["labels"], lines, stated, name
        )
        xtr, xte = train["x"], test["x"][:, reorder]
        ytr, yte = y[: len(xtr)], y[len(xtr) :]
    source = (
        f"CSV {', '.join(map(str, paths))}: {len(features)} feature columns, label column "
        f"{label_column!r}"
        + (", split column" if len(paths) == 1 and not drawn else "")
        + (f"; {split_text}" if split_text else "")
    )
    d = own_dataset(
        name,
        torch.from_numpy(np.ascontiguousarray(xtr)),
        ytr,
        torch.from_numpy(np.ascontiguousarray(xte)),
        yte,
        classes,
        order,
        source,
    )
    d.options, d.split = drawn, split_text
    return d
