"""What every figure module shares: reading results into their types, and one colour per label."""

from __future__ import annotations

from analysis.results import Result, as_result


def typed(kind: str, reports: dict) -> dict:
    """{label: result} with each result of `kind`'s type (analysis.reports.KINDS); a dict in the
    result's to_dict() form (the Learn page's experiments) is read into that type."""
    if all(isinstance(r, Result) for r in reports.values()):
        return reports  # typed already: analysis.reports (it imports torch) is not needed
    from analysis.reports import KINDS

    return {label: as_result(KINDS[kind], r) for label, r in reports.items()}


COLORS = {"before": "#1f77b4", "after": "#d62728"}


def label_color(label: str, i: int) -> str:
    """The colour of the i-th label: fixed for "before" and "after", the others in turn."""
    return COLORS.get(label, ["#2ca02c", "#9467bd", "#8c564b"][i % 3])
