"""The user's own CSV files: one with a split column (train/test) or two (train, test) matched by
column name; every column but the label (and split) must be numeric, and errors name the file,
line and column.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
import torch

from .dataset import Dataset, existing_file, integer_classes, own_dataset
from .names import DatasetError, short_repr

_INT = re.compile(r"[+-]?[0-9]+")


def _read_csv(path: Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """The header and the non-blank rows, each with its line number (for error messages)."""
    rows: list[tuple[int, list[str]]] = []
    try:
        with open(
            path, newline="", encoding="utf-8-sig"
        ) as f:  # -sig: spreadsheet exports start with a BOM
            reader = csv.reader(f)
            try:
                header = [h.strip() for h in next(reader)]
            except StopIteration:
                raise DatasetError(
                    f"{path} is empty; a CSV needs a header row naming its columns."
                ) from None
            for row in reader:
                if not any(cell.strip() for cell in row):
                    continue
                if len(row) != len(header):
                    raise DatasetError(
                        f"{path} line {reader.line_num}: {len(row)} cells, but the header names "
                        f"{len(header)} columns."
                    )
                rows.append((reader.line_num, row))
    except UnicodeDecodeError as e:
        raise DatasetError(f"{path} is not a UTF-8 text CSV file ({e}).") from e
    except csv.Error as e:
        raise DatasetError(f"{path} is not a readable CSV file: {e}.") from e
    if not all(header) or len(set(header)) != len(header):
        raise DatasetError(
            f"{path}: every column needs its own non-empty name in the header row; found {header}."
        )
    return header, rows


def _csv_table(path: Path, label_column: str, two_files: bool) -> dict:
    """Features (float32), labels (stripped strings), split (or None) and line numbers of one CSV
    file."""
    header, rows = _read_csv(path)
    if label_column not in header:
        raise DatasetError(
            f"{path} has no label column {label_column!r}; its columns are {header}. "
            f"Name the label column with label_column / --label-column."
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
    if not rows:
        raise DatasetError(f"{path} has a header but no rows.")
    lab = header.index(label_column)
    labels = [row[lab].strip() for _, row in rows]
    empty = next((line for (line, _), v in zip(rows, labels, strict=True) if not v), None)
    if empty is not None:
        raise DatasetError(f"{path} line {empty}: the label ({label_column!r}) is empty.")
    split = None
    if has_split:
        split = [row[header.index("split")].strip().lower() for _, row in rows]
        odd = next(
            (
                (line, v)
                for (line, _), v in zip(rows, split, strict=True)
                if v not in ("train", "test")
            ),
            None,
        )
        if odd:
            raise DatasetError(
                f"{path} line {odd[0]}: split is {odd[1]!r}; it must be 'train' or 'test'."
            )
    cols = [header.index(h) for h in features]
    x = np.empty((len(rows), len(cols)), dtype=np.float64)  # float32 (checked for overflow) below
    for r, (line, row) in enumerate(rows):
        for j, c in enumerate(cols):
            try:
                x[r, j] = float(row[c])
            except ValueError:
                raise DatasetError(
                    f"{path} line {line}, column {header[c]!r}: {short_repr(row[c])} is not a "
                    f"number; "
                    f"every column except the label{' and split' if has_split else ''} must be "
                    f"numeric."
                ) from None
    with np.errstate(over="ignore"):
        x = x.astype(np.float32)
    bad = np.argwhere(~np.isfinite(x))
    if len(bad):
        r, j = bad[0]
        raise DatasetError(
            f"{path} line {rows[r][0]}, column {features[j]!r}: "
            f"{short_repr(rows[r][1][cols[j]])} is "
            f"NaN or infinite (as float32); {len(bad)} such cells. Remove or impute them first."
        )
    return {
        "features": features,
        "x": x,
        "labels": labels,
        "split": split,
        "lines": [line for line, _ in rows],
    }


def _csv_label_indices(
    labels: list[str], lines: list[tuple[Path, int]], stated: list[str] | None, where: str
) -> tuple[np.ndarray, list[str], str]:
    if all(_INT.fullmatch(v) for v in labels):
        y = np.array([int(v) for v in labels], dtype=np.int64) if labels else np.zeros(0, np.int64)
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
            f"{short_repr(classes, 200)}; add it to classes / --classes (in label order)."
        )
    return np.array([index[v] for v in labels], dtype=np.int64), classes, order


def csv_dataset(text: str, label_column: str | None, stated: list[str] | None) -> Dataset:
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
    if len(paths) == 1:
        t = tables[0]
        if t["split"] is None:
            raise DatasetError(
                f"{paths[0]} says nothing about which rows are for training: add a column named "
                f"'split' with values train/test, or give two files as csv:TRAIN.csv,TEST.csv."
            )
        is_train = np.array([s == "train" for s in t["split"]])
        for name, mask in (("train", is_train), ("test", ~is_train)):
            if not mask.any():
                raise DatasetError(f"{paths[0]}: no row has split={name}; both splits need rows.")
        lines = [(paths[0], line) for line in t["lines"]]
        y, classes, order = _csv_label_indices(t["labels"], lines, stated, f"csv:{paths[0]}")
        xtr, xte, ytr, yte = t["x"][is_train], t["x"][~is_train], y[is_train], y[~is_train]
        features, name = t["features"], f"csv:{paths[0]}"
    else:
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
        f"{label_column!r}" + (", split column" if len(paths) == 1 else "")
    )
    return own_dataset(
        name,
        torch.from_numpy(np.ascontiguousarray(xtr)),
        ytr,
        torch.from_numpy(np.ascontiguousarray(xte)),
        yte,
        classes,
        order,
        source,
    )
