"""The one helper for per-group gaps (fairness): which group fares best, which worst, by how much.

Used by classification reports (accuracy per group) and face verification
reports (accuracy, FMR, FNMR per group).
"""

from __future__ import annotations

from typing import Any, Mapping


def largest_gap(values: Mapping[str, float | None], *, higher_is_better: bool = True,
                sizes: Mapping[str, int] | None = None) -> dict[str, Any] | None:
    """Best and worst group of one metric and the gap between them.

    Args:
        values: group name → metric value; None (undefined for that group) is left out.
        higher_is_better: True for accuracy, False for error rates (FMR, FNMR).
        sizes: group name → number of samples; on ties the larger group is
            named (its figure is the more reliable), then the name.

    Returns:
        ``{"best_group", "worst_group", "best", "worst", "gap"}`` (gap >= 0),
        or None when no group has a value.

    Example:
        >>> largest_gap({"a": 0.9, "b": 0.7})["worst_group"]
        'b'
        >>> largest_gap({"a": 0.1, "b": 0.3}, higher_is_better=False)["gap"]
        0.19999999999999998
    """
    vals = {k: float(v) for k, v in values.items() if v is not None}
    if not vals:
        return None
    size = sizes or {}
    sign = 1.0 if higher_is_better else -1.0
    best = min(vals, key=lambda k: (-sign * vals[k], -size.get(k, 0), k))
    worst = min(vals, key=lambda k: (sign * vals[k], -size.get(k, 0), k))
    return {"best_group": best, "worst_group": worst, "best": vals[best], "worst": vals[worst],
            "gap": abs(vals[best] - vals[worst])}
