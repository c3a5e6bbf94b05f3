"""Katib's ``metricStrategies``: a trial's value for a metric is the min, max or latest of what
it reported. :func:`metric_value` is the one rule every reader uses: the searcher
(:mod:`raytune_k8s.search.strategy`), the goal stop (``control``), the progress line, the Optuna
mirror and the summary, so none of them can disagree about a trial. No Ray: the summary and the
report read it too."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any, Literal


def metric_value(
    reports: Iterable[Mapping[str, Any]], metric: str, strategy: Literal["min", "max", "latest"], so_far: float | None = None
) -> float | None:
    """A trial's value for ``metric`` by ``strategy`` over its reports: the min, max or latest
    finite number it reported (booleans, text, NaN and infinities are not values), None if none.

    ``so_far`` is the value over the reports before these, so a reader that sees one report at a
    time keeps ``v = metric_value([report], metric, strategy, v)``. A metric ``a/b`` is also
    found nested, as ``report["a"]["b"]`` (Tune's results nest; its tables flatten).
    """
    value = so_far
    for report in reports:
        x = report.get(metric)
        if x is None and "/" in metric:
            x = report
            for part in metric.split("/"):
                x = x.get(part) if isinstance(x, Mapping) else None
        if not isinstance(x, (int, float)) or isinstance(x, bool) or not math.isfinite(x):
            continue
        if value is None or strategy == "latest":
            value = float(x)
        else:
            value = min(value, float(x)) if strategy == "min" else max(value, float(x))
    return value
