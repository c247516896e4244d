"""Rows of a per-case metric table: one row per case and class, built in one place.

Fold evaluation, the test report and ``segflow metrics`` all write their tables through
:func:`per_case_rows`, so the columns mean the same everywhere: ``case_id``, ``class_name``,
``class``, the metric panel (``METRIC_NAMES``), ``empty``, then any extra columns.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any


def per_case_rows(
    case_id: str,
    metric_rows: Iterable[Mapping[str, Any]],
    class_name: Callable[[int], str],
    keys: Sequence[str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Table rows for one case.

    Args:
        case_id: The case.
        metric_rows: One mapping per class, as :func:`components.metrics.case_metrics` returns
            (``class``, the metrics, ``empty``; regional rows also carry ``region``).
        class_name: Class value -> name.
        keys: Keep only these keys of each metric row (in this order); all when None.
        extra: Columns appended to every row (e.g. spacing, file paths).
    """
    rows = []
    for m in metric_rows:
        kept = {k: m[k] for k in keys} if keys is not None else dict(m)
        rows.append({"case_id": case_id, "class_name": class_name(int(m["class"])), **kept, **(extra or {})})
    return rows
