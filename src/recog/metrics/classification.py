"""Classification metrics as one JSON-ready dict, computed with scikit-learn.

Decisions, written down once:

- The prediction is ``argmax(probs)`` (ties go to the lower class index).
- ``macro`` and ``weighted`` precision/recall/F1 follow scikit-learn's default
  label set: the classes that occur in ``y_true`` or in the predictions. A
  class that is neither present nor ever predicted carries no information; it
  is listed in ``per_class`` with ``support`` 0 and null scores. Undefined
  ratios (a class never predicted has no precision) count as 0.
- ROC AUC and average precision are one-vs-rest per class. A class without
  positive samples in ``y_true`` (or, for AUC, without negative ones) has no
  defined value: it is null and left out of the macro average, with a note.
- ``top5_accuracy`` is top-k accuracy with ``k = min(5, C)``; ``top_k`` says k.
- ECE: see :func:`recog.metrics.calibration.expected_calibration_error`.
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager
from typing import Any, Iterator, Sequence

import numpy as np

from recog.metrics._validate import check_inputs
from recog.metrics.calibration import DEFAULT_NUM_BINS, expected_calibration_error
from recog.metrics.groups import largest_gap


@contextmanager
def _quiet_sklearn() -> Iterator[None]:
    """Silence scikit-learn's undefined-metric warnings; the cases are reported in ``notes``."""
    from sklearn.exceptions import UndefinedMetricWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        warnings.filterwarnings("ignore", message=".*'k' .* greater than or equal to 'n_classes'.*")
        warnings.filterwarnings("ignore", message="No positive class found in y_true")
        warnings.filterwarnings("ignore", message="No negative samples in y_true")
        warnings.filterwarnings("ignore", message="No positive samples in y_true")
        yield


def _f(x: Any) -> float | None:
    """A finite float, or None (JSON has no NaN)."""
    if x is None:
        return None
    v = float(x)
    return v if np.isfinite(v) else None


def _nanmean(values: Sequence[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return float(np.mean(kept)) if kept else None


def classification_metrics(y_true: np.ndarray, probs: np.ndarray, labels: Sequence[str],
                           groups: Sequence[str] | None = None) -> dict[str, Any]:
    """Every classification metric of a set of predictions, as a JSON-ready dict.

    Args:
        y_true: ``(N,)`` integer class indices into ``labels``, N >= 1.
        probs: ``(N, C)`` class probabilities (rows sum to 1, within 1e-3).
        labels: the ``C`` class names, in index order, C >= 2.
        groups: ``N`` group names (e.g. a manifest's ``group`` column), or None.

    Returns:
        A dict with ``num_samples``, ``num_classes``, ``labels``, ``accuracy``,
        ``top_k``, ``top5_accuracy``, ``macro`` and ``weighted``
        (``{precision, recall, f1}``), ``per_class`` (label →
        ``{precision, recall, f1, support}``), ``confusion_matrix`` (counts,
        rows = true class, columns = predicted class) and
        ``confusion_matrix_normalized`` (rows sum to 1; all-zero rows for
        absent classes), ``roc_auc`` and ``average_precision`` (each
        ``{per_class, macro, micro}``), ``ece`` and ``reliability``
        (``{num_bins, bins}``), ``notes`` (list of strings) and, with groups,
        ``groups`` (name → ``{accuracy, macro_f1, num_samples}``) and
        ``largest_gap`` (``{metric, best_group, worst_group, gap}``).
        Undefined values are None (JSON null), never NaN.

    Raises:
        InvalidInputError: empty input, mismatched lengths, indices out of
            range, probabilities that are not probabilities.

    Example:
        >>> import numpy as np
        >>> m = classification_metrics(np.array([0, 1, 1]),
        ...                            np.array([[.9, .1], [.2, .8], [.6, .4]]), ["cat", "dog"])
        >>> round(m["accuracy"], 4), m["confusion_matrix"]
        (0.6667, [[1, 0], [1, 1]])
    """
    from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

    y, p, labels, group_list = check_inputs(y_true, probs, labels, groups)
    n, c = p.shape
    pred = p.argmax(axis=1)
    idx = np.arange(c)
    notes: list[str] = []

    with _quiet_sklearn():
        out: dict[str, Any] = {"num_samples": int(n), "num_classes": int(c), "labels": list(labels)}
        out["accuracy"] = float(accuracy_score(y, pred))
        k = min(5, c)
        out["top_k"] = k
        out["top5_accuracy"] = _top_k_accuracy(y, p, k)

        present = np.union1d(np.unique(y), np.unique(pred))
        for avg in ("macro", "weighted"):
            pr, rc, f1, _ = precision_recall_fscore_support(y, pred, labels=present, average=avg, zero_division=0)
            out[avg] = {"precision": float(pr), "recall": float(rc), "f1": float(f1)}
        pr, rc, f1, sup = precision_recall_fscore_support(y, pred, labels=idx, average=None, zero_division=0)
        in_set = np.isin(idx, present)
        out["per_class"] = {
            labels[j]: {"precision": float(pr[j]) if in_set[j] else None,
                        "recall": float(rc[j]) if in_set[j] else None,
                        "f1": float(f1[j]) if in_set[j] else None,
                        "support": int(sup[j])}
            for j in idx}
        unseen = [labels[j] for j in idx if not in_set[j]]
        if unseen:
            notes.append(f"{len(unseen)} class(es) neither present nor predicted, left out of macro/weighted "
                         f"precision/recall/F1: {_short(unseen)}.")

        cm = confusion_matrix(y, pred, labels=idx)
        out["confusion_matrix"] = cm.astype(int).tolist()
        out["confusion_matrix_normalized"] = confusion_matrix(y, pred, labels=idx, normalize="true").tolist()

        out["roc_auc"], out["average_precision"] = _ranking_metrics(y, p, labels, notes)

    ece, bins = expected_calibration_error(y, p, DEFAULT_NUM_BINS)
    out["ece"] = ece
    out["reliability"] = {"num_bins": DEFAULT_NUM_BINS, "bins": bins}

    if group_list is not None:
        out["groups"], out["largest_gap"] = _group_metrics(y, pred, group_list, notes)
    out["notes"] = notes
    return out


def _short(names: Sequence[str], limit: int = 10) -> str:
    head = ", ".join(names[:limit])
    return head + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _top_k_accuracy(y: np.ndarray, p: np.ndarray, k: int) -> float:
    from sklearn.metrics import top_k_accuracy_score

    c = p.shape[1]
    if c == 2:
        # scikit-learn takes binary scores as the positive-class column.
        return float(top_k_accuracy_score(y, p[:, 1], k=k, labels=[0, 1]))
    return float(top_k_accuracy_score(y, p, k=k, labels=np.arange(c)))


def _ranking_metrics(y: np.ndarray, p: np.ndarray, labels: Sequence[str],
                     notes: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """One-vs-rest ROC AUC and average precision per class, macro and micro."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    c = p.shape[1]
    onehot = np.eye(c, dtype=np.int64)[y]
    positives = onehot.sum(axis=0)
    auc: dict[str, float | None] = {}
    ap: dict[str, float | None] = {}
    no_pos, no_neg = [], []
    for j, name in enumerate(labels):
        if positives[j] == 0:
            no_pos.append(name)
            auc[name] = ap[name] = None
            continue
        ap[name] = _f(average_precision_score(onehot[:, j], p[:, j]))
        if positives[j] == len(y):
            no_neg.append(name)
            auc[name] = None
            continue
        auc[name] = _f(roc_auc_score(onehot[:, j], p[:, j]))
    if no_pos:
        notes.append(f"{len(no_pos)} class(es) absent from y_true have no ROC AUC or average precision "
                     f"(null, left out of the macro average): {_short(no_pos)}.")
    if no_neg:
        notes.append(f"every sample is of class {no_neg[0]!r}: its ROC AUC is undefined (null).")
    micro_auc = None
    if 0 < onehot.sum() < onehot.size:
        micro_auc = _f(roc_auc_score(onehot, p, average="micro"))
    micro_ap = _f(average_precision_score(onehot, p, average="micro"))
    return ({"per_class": auc, "macro": _nanmean(list(auc.values())), "micro": micro_auc},
            {"per_class": ap, "macro": _nanmean(list(ap.values())), "micro": micro_ap})


def _group_metrics(y: np.ndarray, pred: np.ndarray, groups: Sequence[str],
                   notes: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Accuracy and macro F1 per group; the largest accuracy gap between two groups."""
    from sklearn.metrics import accuracy_score, f1_score

    g = np.asarray(groups, dtype=object)
    out: dict[str, Any] = {}
    for name in sorted(set(groups)):
        mask = g == name
        out[name] = {"accuracy": float(accuracy_score(y[mask], pred[mask])),
                     "macro_f1": float(f1_score(y[mask], pred[mask], average="macro", zero_division=0)),
                     "num_samples": int(mask.sum())}
    names = list(out)
    gap = largest_gap({k: v["accuracy"] for k, v in out.items()},
                      sizes={k: v["num_samples"] for k, v in out.items()})
    gap = {"metric": "accuracy", "best_group": gap["best_group"], "worst_group": gap["worst_group"],
           "gap": gap["gap"]}
    if len(names) == 1:
        notes.append(f"only one group ({names[0]!r}): the largest gap is 0.")
    small = [k for k in names if out[k]["num_samples"] < 30]
    if small and len(names) > 1:
        notes.append(f"{len(small)} group(s) have fewer than 30 samples; their accuracy is noisy: {_short(small)}.")
    return out, gap
