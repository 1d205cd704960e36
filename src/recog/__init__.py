"""recog: train, evaluate, explain, optimize and serve image recognition models.

Importing this package is cheap: torch, OpenCV, onnxruntime and dlib load only
when a function that needs them runs.

Example:
    >>> import recog
    >>> model = recog.load("runs/pets/best")           # doctest: +SKIP
    >>> model.predict("photo.jpg", top_k=3).to_dict()  # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from recog import errors
from recog.types import Classification, Label, ModelInfo, PredictionFailure, Preprocessing

__version__ = "0.1.0"

if TYPE_CHECKING:
    from recog.engine.evaluate import evaluate
    from recog.engine.train import fit as train
    from recog.runtime.predictor import Predictor, load

_LAZY = {
    "load": ("recog.runtime.predictor", "load"),
    "train": ("recog.engine.train", "fit"),
    "evaluate": ("recog.engine.evaluate", "evaluate"),
    "Predictor": ("recog.runtime.predictor", "Predictor"),
    "load_image": ("recog.io", "load_image"),
    "create_model": ("recog.models.registry", "create_model"),
    "list_presets": ("recog.models.registry", "list_presets"),
    "Client": ("recog.client", "Client"),
    "FaceAnalyzer": ("recog.faces", "FaceAnalyzer"),
    "FaceRecognizer": ("recog.faces", "FaceRecognizer"),
}

__all__ = ["Classification", "Client", "FaceAnalyzer", "FaceRecognizer", "Label", "ModelInfo", "PredictionFailure",
           "Predictor", "Preprocessing", "__version__", "create_model", "errors", "evaluate", "list_presets", "load",
           "load_image", "train"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'recog' has no attribute {name!r}")
