"""Classical image features: HOG, LBP, colour histograms, Canny edges, Harris / Shi-Tomasi corners.

:func:`extract` turns one RGB image into a fixed-length vector for a kind in
:data:`KINDS`; :func:`draw` renders what the vector measured over the image.
``recog features`` writes them for a folder; the ``hog-svm`` model
(:mod:`recog.features.hog_svm`) is a classifier on HOG; ``--model hog``
(:mod:`recog.features.embedder`) is HOG as the embedding for search, dedup and
clustering; ``recog evaluate --baseline`` (:mod:`recog.features.baseline`) puts
a baseline beside the model in the report.
"""

from recog.features.classical import KINDS, draw, extract, feature_names

__all__ = ["KINDS", "draw", "extract", "feature_names"]
