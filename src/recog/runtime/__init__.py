"""Inference: one :class:`Predictor` interface over interchangeable backends."""

from recog.runtime.predictor import Backend, Predictor, load

__all__ = ["Backend", "Predictor", "load"]
