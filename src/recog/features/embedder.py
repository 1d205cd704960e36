"""HOG as a ready embedder: ``--model hog`` for search, clustering, near-duplicates and audits, no training.

The search and clustering code takes embeddings from a bundle through the
``embed`` task (a network whose ``classifier`` head is replaced by a flatten,
outputs L2-normalised). The HOG network of the ``hog-svm`` model
(:class:`~recog.features.hog_net.HogLinear`) has fixed operations in front of
its head, so a bundle of it with an untrained one-unit head *is* a HOG
embedder: ``recog search index build --model hog``, ``recog cluster --model
hog``, ``recog dedup --method embedding --model hog`` use it like any preset.
The bundle is written once into the cache (``$RECOG_CACHE/presets/hog-SIZE``);
its weights file (the same fixed HOG for every run) gives the index a stable
model identity.

Names: ``hog`` (64 x 64 input, 1,764 dimensions) or ``hog-SIZE`` (SIZE a
multiple of 8 from 16 to 512; ``hog-128``: 8,100 dimensions). The image is
stretched to the square, as ``recog features --kind hog`` does. LBP, colour,
edges and corners have no torch module yet, so they are not embedders.
"""

from __future__ import annotations

import re
from pathlib import Path

from recog.errors import ConfigError

_NAME = re.compile(r"hog(?:-(\d+))?")


def feature_embedder_size(name: str) -> int | None:
    """The input size of feature embedder ``name`` (``hog`` → 64, ``hog-128`` → 128), or None for other names.

    Raises:
        ConfigError: ``hog-SIZE`` with a size that is not a multiple of 8 in 16..512.
    """
    m = _NAME.fullmatch(name)
    if m is None:
        return None
    size = int(m.group(1) or 64)
    if not (16 <= size <= 512 and size % 8 == 0):
        raise ConfigError(f"{name}: the HOG embedder's size must be a multiple of 8 from 16 to 512, got {size}.",
                          hint="use hog (64 px) or e.g. hog-128")
    return size


def feature_bundle(name: str) -> Path:
    """The bundle folder of HOG embedder ``name`` (written on first use), e.g. ``feature_bundle("hog")``."""
    import torch

    from recog.features.hog_net import build_hog_linear
    from recog.features.hog_svm import hog_preprocessing
    from recog.models.bundle import MANIFEST, save_bundle
    from recog.models.zoo import cache_dir

    size = feature_embedder_size(name)
    if size is None:
        raise ConfigError(f"{name!r} is not a feature embedder.", hint="use hog or hog-SIZE")
    folder = cache_dir() / "presets" / f"hog-{size}"
    if (folder / MANIFEST).is_file():
        return folder
    model = build_hog_linear(1, size, size).eval()
    with torch.no_grad():  # the head is replaced by a flatten when embedding; zeros keep the file deterministic
        model.classifier.weight.zero_()
        model.classifier.bias.zero_()
    return save_bundle(folder, model, labels=["hog"], preprocessing=hog_preprocessing(size), source_model=f"hog-{size}",
                       extra={"weights": "none: fixed HOG operations (recog.features.hog_net)", "metrics": {},
                              "classical": {"features": "hog", "embedder": True}})
