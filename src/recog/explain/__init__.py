"""Explanations: heatmaps of which pixels made a classifier give its score, or a detector one box.

Methods (:data:`METHODS`): ``gradcam`` (a convolutional stage; CNNs only), ``ig``
(Integrated Gradients) and ``occlusion``, through captum, ``ig`` and ``occlusion`` for any
classifier including ViT. A detector (task ``detect``) explains one box's class score.
Results are in pixels of the original image after EXIF orientation.

Example:
    >>> from recog.explain import explain
    >>> e = explain("runs/pets/best", "photo.jpg", method="gradcam")       # doctest: +SKIP
    >>> e.save("photo.explain.png"); e.to_dict()["peak"]                    # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

from recog.explain.attribution import METHODS, MethodOptions
from recog.explain.explainer import Explainer, Explanation, NoBox, explain_many


def explain(model: Any, image: Any, *, method: str = "gradcam", target: str | None = None, box: int | None = None,
            min_score: float | None = None) -> Explanation:
    """One image's explanation; ``model`` is a Predictor, a bundle path or a ready preset.

    A detector explains one box: ``box`` (index in its detections at ``min_score``), else the top box.
    """
    return Explainer(model).explain(image, method=method, target=target, box=box, min_score=min_score)


__all__ = ["METHODS", "Explainer", "Explanation", "MethodOptions", "NoBox", "explain", "explain_many"]
