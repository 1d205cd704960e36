"""Inference: one :class:`Predictor` interface over interchangeable backends."""

from recog.runtime.backends import Backend
from recog.runtime.predictor import Predictor, load

__all__ = ["Backend", "Predictor", "load"]
