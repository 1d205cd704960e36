"""Explanations: heatmaps of which pixels made a classifier give its score.

Methods (:data:`METHODS`): ``gradcam`` (last convolutional stage; CNNs only),
``ig`` (Integrated Gradients) and ``occlusion``, both through captum and both
for any classifier including ViT. Results are in pixels of the original image
after EXIF orientation.

Example:
    >>> from recog.explain import explain
    >>> e = explain("runs/pets/best", "photo.jpg", method="gradcam")       # doctest: +SKIP
    >>> e.save("photo.explain.png"); e.to_dict()["peak"]                    # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

from recog.explain.attribution import METHODS, MethodOptions
from recog.explain.explainer import Explainer, Explanation, explain_many


def explain(model: Any, image: Any, *, method: str = "gradcam", target: str | None = None) -> Explanation:
    """One image's explanation; ``model`` is a Predictor, a bundle path or a ready preset."""
    return Explainer(model).explain(image, method=method, target=target)


__all__ = ["METHODS", "Explainer", "Explanation", "MethodOptions", "explain", "explain_many"]
