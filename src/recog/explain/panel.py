"""The report's explanation panel: heatmaps of the most confident mistakes and a few correct predictions.

Used by ``recog evaluate --explain N``. Grad-CAM where the model has a
convolutional stage, else integrated gradients (ViT, transformers detectors). Each
card explains the **predicted** label (why the model said that), with the true
label beside it. A detector's cards explain one box each (its class score, the box
outlined): the most confident false positives, then a few right boxes per class.
"""

from __future__ import annotations

import base64
import io
from typing import Any, Sequence

import numpy as np

from recog.errors import ConfigError, ImageError

#: longest side of a heatmap thumbnail in the report, pixels.
THUMB = 160
#: correct predictions shown per class, most confident first.
CORRECT_PER_CLASS = 2


def choose(y: np.ndarray, probs: np.ndarray, mistakes: int, correct_per_class: int = CORRECT_PER_CLASS
           ) -> list[tuple[int, str]]:
    """``(row, "mistake" | "correct")``: the ``mistakes`` most confident wrong rows, then per class the
    ``correct_per_class`` most confident right ones."""
    pred, conf = probs.argmax(1), probs.max(1)
    wrong = np.flatnonzero(pred != y)
    rows = [(int(i), "mistake") for i in wrong[np.argsort(-conf[wrong], kind="stable")][:mistakes]]
    for c in range(probs.shape[1]):
        right = np.flatnonzero((pred == y) & (y == c))
        rows += [(int(i), "correct") for i in right[np.argsort(-conf[right], kind="stable")][:correct_per_class]]
    return rows


def choose_boxes(outcomes: Sequence[tuple[int, int, int, int, float]], mistakes: int,
                 correct_per_class: int = CORRECT_PER_CLASS) -> list[tuple[int, int, str]]:
    """``(image, box, "false positive" | "correct")`` from a detector's judged boxes.

    ``outcomes``: ``(image, box, predicted class, matched true class, score)`` per detection at the
    report's score floor, the matched class -1 for a false alarm. A false positive is a box that
    matched no true box, or one of another class. The ``mistakes`` most confident false positives come
    first, then per predicted class its ``correct_per_class`` most confident right boxes.

    Example:
        >>> choose_boxes([(0, 0, 1, 1, .9), (0, 1, 0, -1, .8), (1, 0, 0, 1, .95), (1, 1, 1, 1, .7)], 5)
        [(1, 0, 'false positive'), (0, 1, 'false positive'), (0, 0, 'correct'), (1, 1, 'correct')]
    """
    order = sorted(outcomes, key=lambda o: -o[4])
    rows = [(i, k, "false positive") for i, k, c, t, _ in order if c != t][:mistakes]
    for cls in sorted({o[2] for o in outcomes}):
        rows += [(i, k, "correct") for i, k, c, t, _ in order if c == t == cls][:correct_per_class]
    return rows


def default_method(explainer: Any) -> str:
    """``gradcam`` where the model has a layer for it (a convolutional stage, a detector's pyramid level),
    else ``ig`` (ViT, transformers detectors)."""
    try:
        if explainer.is_detector:
            import torch

            h, w = explainer.manifest.preprocessing.size
            p = next(explainer.model.parameters())
            explainer.task.target_layer(explainer.model, torch.zeros(1, 3, h, w, dtype=p.dtype, device=p.device), 0)
        else:
            explainer.task.target_layer(explainer.model)
    except ConfigError:
        return "ig"
    return "gradcam"


def _card(explainer: Any, source: Any, method: str, card: dict[str, Any], **choice: Any) -> dict[str, Any]:
    """``card`` completed with ``source``, ``method`` and ``thumb`` (the overlay thumbnail as a PNG data
    URI), or ``error`` when the safe loader refused the image."""
    card.update(source=str(source), method=method, thumb=None, error=None)
    try:
        e = explainer.explain(source, method=method, **choice)
    except ImageError as exc:
        card["error"] = str(exc)
        return card
    img = e.overlay()
    img.thumbnail((THUMB, THUMB))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    card["thumb"] = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
    return card


def explanation_cards(predictor: Any, sources: Sequence[Any], y: np.ndarray, probs: np.ndarray, n: int
                      ) -> list[dict[str, Any]]:
    """Cards for :func:`recog.metrics.report.write_report` (``explanations=``): ``kind``, ``true``,
    ``pred``, ``confidence``, ``source``, ``method``, ``thumb`` (a PNG data URI) or ``error``."""
    from recog.explain import Explainer

    explainer = Explainer(predictor)
    method = default_method(explainer)
    labels = predictor.labels
    return [_card(explainer, sources[i], method, {"kind": kind, "true": labels[int(y[i])],
                                                  "pred": labels[int(probs[i].argmax())],
                                                  "confidence": float(probs[i].max())})
            for i, kind in choose(np.asarray(y), np.asarray(probs), n)]


def box_cards(predictor: Any, sources: Sequence[Any], outcomes: Sequence[tuple[int, int, int, int, float]], n: int,
              *, min_score: float) -> list[dict[str, Any]]:
    """Cards of a detector's boxes (:func:`choose_boxes`), each explaining one box's class score with the
    box drawn: ``pred`` is the box's class and index (``#k``, as ``recog predict`` lists the image's boxes
    at ``min_score``), ``true`` the class of the true box it matched or ``background``."""
    from recog.explain import Explainer

    explainer = Explainer(predictor)
    method = default_method(explainer)
    labels = predictor.labels
    found = {(i, k): (c, t, s) for i, k, c, t, s in outcomes}
    cards = []
    for i, k, kind in choose_boxes(outcomes, n):
        c, t, s = found[(i, k)]
        card = {"kind": kind, "true": labels[t] if t >= 0 else "background", "pred": f"{labels[c]} #{k}",
                "confidence": float(s)}
        cards.append(_card(explainer, sources[i], method, card, box=k, min_score=min_score))
    return cards
