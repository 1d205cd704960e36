"""Checks on the arrays handed to the metric functions (the metrics' input boundary)."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from recog.errors import InvalidInputError

#: How far a row of ``probs`` may sum from 1 (float32 softmax outputs are off by ~1e-7).
SUM_TOLERANCE = 1e-3

#: Group name used for a missing or blank group value.
NO_GROUP = "(none)"


def check_inputs(y_true: Any, probs: Any, labels: Sequence[str],
                 groups: Sequence[Any] | None = None) -> tuple[np.ndarray, np.ndarray, list[str], list[str] | None]:
    """Validate and normalise metric inputs.

    Args:
        y_true: ``(N,)`` integer class indices into ``labels``.
        probs: ``(N, C)`` class probabilities, rows summing to 1.
        labels: ``C`` unique class names.
        groups: ``N`` group names, or None.

    Returns:
        ``(y_true int64 (N,), probs float64 (N, C) renormalised, labels, groups)``;
        blank or None group values become ``"(none)"``.

    Raises:
        InvalidInputError: on any mismatch, with what was expected and the fix.
    """
    labels = [str(x) for x in labels]
    c = len(labels)
    if c < 2:
        raise InvalidInputError(f"classification metrics need at least 2 labels, got {c} ({labels}).",
                                hint="pass every class name of the model, in index order")
    if len(set(labels)) != c:
        dupes = sorted({x for x in labels if labels.count(x) > 1})
        raise InvalidInputError(f"labels must be unique; {dupes} appear more than once.",
                                hint="pass each class name once, in index order")

    y = np.asarray(y_true)
    if y.ndim != 1:
        raise InvalidInputError(
            f"y_true must be a 1-D array of class indices, got shape {y.shape}.",
            hint="for one-hot targets pass y_true.argmax(axis=1)" if y.ndim == 2 else "flatten it to shape (N,)")
    if y.size == 0:
        raise InvalidInputError("cannot compute metrics on an empty set: y_true has 0 samples.",
                                hint="evaluate on at least one labelled image")
    if not (np.issubdtype(y.dtype, np.integer) or y.dtype == np.bool_):
        raise InvalidInputError(
            f"y_true must hold integer class indices, got dtype {y.dtype}.",
            hint="map label names to indices with labels.index(name) and pass an int array")
    y = y.astype(np.int64)
    bad = (y < 0) | (y >= c)
    if bad.any():
        raise InvalidInputError(
            f"y_true holds indices outside 0..{c - 1} (for {c} labels): e.g. {int(y[bad][0])} "
            f"at position {int(np.flatnonzero(bad)[0])}.",
            hint="y_true must index into labels; check that labels is the model's full label list")

    p = np.asarray(probs)
    if p.ndim != 2:
        raise InvalidInputError(f"probs must be a 2-D (N, C) array, got shape {p.shape}.",
                                hint="stack one probability row per sample")
    if not np.issubdtype(p.dtype, np.number) or np.issubdtype(p.dtype, np.complexfloating):
        raise InvalidInputError(f"probs must be a real-valued array, got dtype {p.dtype}.")
    p = p.astype(np.float64)
    if p.shape[0] != y.shape[0]:
        raise InvalidInputError(
            f"y_true has {y.shape[0]} samples but probs has {p.shape[0]} rows.",
            hint="pass one probability row per label, in the same order")
    if p.shape[1] != c:
        raise InvalidInputError(f"probs has {p.shape[1]} columns but there are {c} labels.",
                                hint="pass one column per label, in the order of labels")
    if not np.isfinite(p).all():
        row = int(np.flatnonzero(~np.isfinite(p).all(axis=1))[0])
        raise InvalidInputError(f"probs contains NaN or infinite values (first in row {row}).",
                                hint="check the model output; a diverged model produces NaN logits")
    sums = p.sum(axis=1)
    off = np.abs(sums - 1.0) > SUM_TOLERANCE
    if (p < -1e-9).any() or (p > 1 + 1e-9).any() or off.any():
        row = int(np.flatnonzero(off)[0]) if off.any() else int(np.flatnonzero(((p < 0) | (p > 1)).any(axis=1))[0])
        raise InvalidInputError(
            f"probs rows must be probabilities in [0, 1] summing to 1; row {row} sums to {sums[row]:.6g} "
            f"(min {p[row].min():.4g}, max {p[row].max():.4g}).",
            hint="these look like logits or scores: apply a softmax first "
                 "(recog.tasks.classify.softmax(logits))")
    p = np.clip(p, 0.0, 1.0)
    p = p / p.sum(axis=1, keepdims=True)

    group_list: list[str] | None = None
    if groups is not None:
        group_list = [NO_GROUP if g is None or str(g).strip() == "" else str(g) for g in groups]
        if len(group_list) != y.shape[0]:
            raise InvalidInputError(f"groups has {len(group_list)} entries but y_true has {y.shape[0]} samples.",
                                    hint="pass one group name per sample, in the same order, or groups=None")
    return y, p, labels, group_list
