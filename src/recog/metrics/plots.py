"""PNG plots of classification metrics.

Every function returns PNG bytes. Figures are built with
``matplotlib.figure.Figure`` and ``FigureCanvasAgg`` directly: no pyplot, no
global backend switch, safe from threads and servers.

Readability with many classes: per-class ROC/PR curves are drawn for at most
:data:`MAX_CURVES` classes (the micro and macro averages always are); the
confusion matrix shows numbers in cells up to :data:`MAX_ANNOTATED` classes
and tick labels up to :data:`MAX_TICK_LABELS`.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

if TYPE_CHECKING:
    from matplotlib.figure import Figure

MAX_CURVES = 20
MAX_ANNOTATED = 30
MAX_TICK_LABELS = 60
MAX_GROUP_BARS = 40
DPI = 100


def _figure(width: float, height: float) -> "Figure":
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _png(fig: "Figure") -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    return buf.getvalue()


def _short_label(name: str, limit: int = 18) -> str:
    return name if len(name) <= limit else name[: limit - 1] + "…"


def confusion_matrix_png(cm: Sequence[Sequence[float]], labels: Sequence[str], *, normalized: bool) -> bytes:
    """Heat map of a ``(C, C)`` confusion matrix (rows true, columns predicted).

    Args:
        cm: counts, or row-normalised fractions when ``normalized``.
        labels: the ``C`` class names.
        normalized: colour scale 0..1 and two-decimal cell values.
    """
    m = np.asarray(cm, dtype=np.float64)
    c = m.shape[0]
    side = float(np.clip(0.32 * c + 3.0, 5.0, 16.0))
    fig = _figure(side + 1.2, side)
    ax = fig.add_subplot()
    vmax = 1.0 if normalized else max(float(m.max()), 1.0)
    im = ax.imshow(m, cmap="Blues", vmin=0.0, vmax=vmax, interpolation="nearest")
    fig.colorbar(im, ax=ax, shrink=0.8, label="fraction of true class" if normalized else "images")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("Confusion matrix" + (" (row-normalized)" if normalized else " (counts)"))
    if c <= MAX_TICK_LABELS:
        size = 9 if c <= 15 else max(5, int(9 - c / 10))
        names = [_short_label(x) for x in labels]
        ax.set_xticks(range(c), names, rotation=90, fontsize=size)
        ax.set_yticks(range(c), names, fontsize=size)
    else:
        ax.set_xlabel("predicted (class index)")
        ax.set_ylabel("true (class index)")
    if c <= MAX_ANNOTATED:
        size = 9 if c <= 10 else 7 if c <= 20 else 5
        for i in range(c):
            for j in range(c):
                v = m[i, j]
                text = f"{v:.2f}" if normalized else f"{int(v)}"
                ax.text(j, i, text, ha="center", va="center", fontsize=size,
                        color="white" if v > 0.6 * vmax else "black")
    return _png(fig)


def _curve_classes(y: np.ndarray, c: int, need_negatives: bool) -> list[int]:
    counts = np.bincount(y, minlength=c)
    return [j for j in range(c) if counts[j] > 0 and (not need_negatives or counts[j] < len(y))]


def _colors(n: int) -> list[Any]:
    from matplotlib import colormaps

    cmap = colormaps["tab20" if n > 10 else "tab10"]
    return [cmap(i % cmap.N) for i in range(n)]


def _curves_setup(y_true: np.ndarray, probs: np.ndarray, *, need_negatives: bool) -> tuple:
    """``(one-hot targets, classes to draw, figure, axes, a 201-point unit grid, whether per-class curves are drawn)``."""
    c = probs.shape[1]
    classes = _curve_classes(y_true, c, need_negatives=need_negatives)
    fig = _figure(7.5, 6.0)
    return (np.eye(c, dtype=np.int64)[y_true], classes, fig, fig.add_subplot(), np.linspace(0.0, 1.0, 201),
            len(classes) <= MAX_CURVES)


def roc_png(y_true: np.ndarray, probs: np.ndarray, labels: Sequence[str]) -> bytes:
    """One-vs-rest ROC curves: per class (up to MAX_CURVES), micro and macro average.

    Args:
        y_true: ``(N,)`` class indices.
        probs: ``(N, C)`` probabilities.
        labels: the ``C`` class names.
    """
    from sklearn.metrics import auc, roc_curve

    onehot, classes, fig, ax, grid, draw = _curves_setup(y_true, probs, need_negatives=True)
    tprs = []
    for color, j in zip(_colors(len(classes)), classes):
        fpr, tpr, _ = roc_curve(onehot[:, j], probs[:, j])
        tprs.append(np.interp(grid, fpr, tpr))
        if draw:
            ax.plot(fpr, tpr, lw=1.2, color=color, label=f"{_short_label(labels[j])} (AUC {auc(fpr, tpr):.3f})")
    if 0 < onehot.sum() < onehot.size:
        fpr, tpr, _ = roc_curve(onehot.ravel(), probs.ravel())
        ax.plot(fpr, tpr, lw=2.2, color="black", ls="--", label=f"micro-average (AUC {auc(fpr, tpr):.3f})")
    if tprs:
        mean = np.mean(tprs, axis=0)
        mean[0] = 0.0
        ax.plot(grid, mean, lw=2.2, color="crimson", ls=":", label=f"macro-average (AUC {auc(grid, mean):.3f})")
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="-", alpha=0.5)
    _finish_curves(ax, "false positive rate", "true positive rate", "ROC, one-vs-rest", len(classes), draw,
                   "lower right")
    return _png(fig)


def _finish_curves(ax, xlabel: str, ylabel: str, title: str, n_classes: int, per_class_drawn: bool,
                   legend_loc: str) -> None:
    """Unit axes, labels, a title that says when only the averages are drawn, and the legend."""
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title if per_class_drawn else f"{title} ({n_classes} classes: averages only)")
    ax.legend(loc=legend_loc, fontsize=7 if n_classes > 10 else 8)


def pr_png(y_true: np.ndarray, probs: np.ndarray, labels: Sequence[str]) -> bytes:
    """Precision-recall curves: per class (up to MAX_CURVES), micro and macro average.

    The macro average is the mean over classes of the interpolated precision
    (best precision at recall >= r) on a recall grid.
    """
    from sklearn.metrics import average_precision_score, precision_recall_curve

    onehot, classes, fig, ax, grid, draw = _curves_setup(y_true, probs, need_negatives=False)
    interp, aps = [], []
    for color, j in zip(_colors(len(classes)), classes):
        prec, rec, _ = precision_recall_curve(onehot[:, j], probs[:, j])
        ap = average_precision_score(onehot[:, j], probs[:, j])
        aps.append(ap)
        # recall is decreasing; interpolated precision = max precision at recall >= r
        best = np.maximum.accumulate(prec)
        interp.append(np.interp(grid, rec[::-1], best[::-1]))
        if draw:
            ax.step(rec, prec, where="post", lw=1.2, color=color, label=f"{_short_label(labels[j])} (AP {ap:.3f})")
    if onehot.sum() > 0:
        prec, rec, _ = precision_recall_curve(onehot.ravel(), probs.ravel())
        ap = average_precision_score(onehot.ravel(), probs.ravel())
        ax.step(rec, prec, where="post", lw=2.2, color="black", ls="--", label=f"micro-average (AP {ap:.3f})")
    if interp:
        ax.plot(grid, np.mean(interp, axis=0), lw=2.2, color="crimson", ls=":",
                label=f"macro-average (mean AP {np.mean(aps):.3f})")
    _finish_curves(ax, "recall", "precision", "Precision-recall, one-vs-rest", len(classes), draw, "lower left")
    return _png(fig)


def reliability_png(bins: Sequence[dict[str, Any]], ece: float) -> bytes:
    """Reliability diagram (accuracy vs confidence per bin) over a confidence histogram.

    Args:
        bins: the ``reliability.bins`` of :func:`classification_metrics`.
        ece: the expected calibration error, shown in the title.
    """
    fig = _figure(6.5, 7.0)
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    lower = np.array([b["lower"] for b in bins])
    width = np.array([b["upper"] - b["lower"] for b in bins])
    counts = np.array([b["count"] for b in bins])
    filled = counts > 0
    acc = np.array([b["accuracy"] if b["accuracy"] is not None else 0.0 for b in bins])
    conf = np.array([b["confidence"] if b["confidence"] is not None else 0.0 for b in bins])
    top.bar(lower[filled], acc[filled], width=width[filled], align="edge", color="steelblue",
            edgecolor="black", lw=0.6, label="accuracy")
    top.bar(lower[filled], conf[filled] - acc[filled], bottom=acc[filled], width=width[filled], align="edge",
            fill=False, edgecolor="crimson", hatch="///", lw=0.8, label="gap to mean confidence")
    top.plot([0, 1], [0, 1], color="grey", ls="--", lw=1, label="perfect calibration")
    top.set_xlim(0, 1)
    top.set_ylim(0, 1)
    top.set_ylabel("accuracy")
    top.set_title(f"Reliability diagram (ECE {ece:.4f}, {len(bins)} bins)")
    top.legend(loc="upper left", fontsize=8)
    bottom.bar(lower, counts, width=width, align="edge", color="grey", edgecolor="black", lw=0.6)
    bottom.set_xlabel("confidence (max probability)")
    bottom.set_ylabel("images")
    return _png(fig)


def groups_png(groups: dict[str, dict[str, Any]], largest_gap: dict[str, Any]) -> bytes:
    """Horizontal bars of per-group accuracy; best group green, worst red.

    With more than MAX_GROUP_BARS groups, the worst and best halves are shown.
    """
    best, worst = largest_gap["best_group"], largest_gap["worst_group"]
    # worst at the bottom, best at the top, also when accuracies tie
    items = sorted(groups.items(), key=lambda kv: (kv[0] != worst, kv[1]["accuracy"], kv[0] == best, kv[0]))
    hidden = 0
    if len(items) > MAX_GROUP_BARS:
        half = MAX_GROUP_BARS // 2
        hidden = len(items) - 2 * half
        items = items[:half] + items[-half:]
    fig = _figure(8.0, float(np.clip(0.35 * len(items) + 1.8, 3.0, 16.0)))
    ax = fig.add_subplot()
    names = [_short_label(k, 28) for k, _ in items]
    accs = [v["accuracy"] for _, v in items]
    colors = ["seagreen" if k == best else "crimson" if k == worst else "steelblue" for k, _ in items]
    ax.barh(range(len(items)), accs, color=colors)
    for i, (_, v) in enumerate(items):
        text = f"{v['accuracy']:.3f}  (n={v['num_samples']})"
        if v["accuracy"] > 0.7:
            ax.text(v["accuracy"] - 0.01, i, text, va="center", ha="right", fontsize=8, color="white")
        else:
            ax.text(v["accuracy"] + 0.01, i, text, va="center", ha="left", fontsize=8)
    ax.set_yticks(range(len(items)), names, fontsize=8)
    ax.set_ylim(-0.6, len(items) - 0.4)
    ax.set_xlim(0, 1.0)
    ax.set_xlabel("accuracy")
    title = f"Accuracy per group (largest gap {largest_gap['gap']:.3f})"
    if hidden:
        title += f"; {hidden} middle groups not shown"
    ax.set_title(title)
    return _png(fig)
