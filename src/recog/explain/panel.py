"""The report's explanation panel: heatmaps of the most confident mistakes and a few correct predictions.

Used by ``recog evaluate --explain N``. Grad-CAM where the model has a
convolutional stage, else integrated gradients (ViT). Each card explains the
**predicted** label (why the model said that), with the true label beside it.
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


def explanation_cards(predictor: Any, sources: Sequence[Any], y: np.ndarray, probs: np.ndarray, n: int
                      ) -> list[dict[str, Any]]:
    """Cards for :func:`recog.metrics.report.write_report` (``explanations=``): ``kind``, ``true``,
    ``pred``, ``confidence``, ``source``, ``method``, ``thumb`` (a PNG data URI) or ``error``."""
    from recog.explain import Explainer

    explainer = Explainer(predictor)
    method = "gradcam"
    try:
        explainer.task.target_layer(explainer.model)
    except ConfigError:
        method = "ig"
    labels = predictor.labels
    cards = []
    for i, kind in choose(np.asarray(y), np.asarray(probs), n):
        card = {"kind": kind, "true": labels[int(y[i])], "pred": labels[int(probs[i].argmax())],
                "confidence": float(probs[i].max()), "source": str(sources[i]), "method": method,
                "thumb": None, "error": None}
        try:
            e = explainer.explain(sources[i], method=method)
        except ImageError as exc:
            card["error"] = str(exc)
        else:
            img = e.overlay()
            img.thumbnail((THUMB, THUMB))
            buf = io.BytesIO()
            img.save(buf, format="PNG")
            card["thumb"] = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
        cards.append(card)
    return cards
