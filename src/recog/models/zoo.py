"""Presets usable without training: a preset with installed pretrained weights and labels becomes a bundle.

``recog.load("efficientnet-lite0")`` (and ``recog predict``/``embed``/``serve``
with a preset name) tags images with the ImageNet-1k labels, like a cloud
vision "labels" API, offline. The first use writes a real bundle (safetensors,
hashes, preprocessing, labels) under the cache folder, ``$RECOG_CACHE`` or
``~/.cache/recog``; later uses load it like any other bundle.
"""

from __future__ import annotations

import os
from pathlib import Path

from recog.errors import ModelNotFoundError


def cache_dir() -> Path:
    return Path(os.environ.get("RECOG_CACHE") or Path.home() / ".cache" / "recog")


def is_ready_preset(name: str) -> bool:
    """True when ``name`` is a preset that ships weights and labels (usable without training)."""
    from recog.models.registry import list_presets

    preset = next((p for p in list_presets() if p.name == name), None)
    return bool(preset and preset.native and preset.native.load_weights and preset.native.labels)


def preset_bundle(name: str) -> Path:
    """The bundle folder of a ready preset, written on first use.

    Raises:
        ModelNotFoundError: the preset has no installed weights and labels to predict with.
        WeightsUnavailableError: its weights package is not installed (the message names the fix).
    """
    from recog.models.bundle import MANIFEST, save_bundle
    from recog.models.registry import create_model, get_preset

    preset = get_preset(name)
    if not is_ready_preset(name):
        raise ModelNotFoundError(f"preset {name!r} has no labelled pretrained head to predict with.",
                                 hint=f"train it first: recog train DATA --model {name}; or use efficientnet-lite0")
    folder = cache_dir() / "presets" / name
    if (folder / MANIFEST).is_file():
        return folder
    labels = preset.native.labels()
    created = create_model(name, labels, weights="pretrained")
    try:
        return save_bundle(folder, created.model.eval(), labels=labels, preprocessing=created.preprocessing,
                           source_model=name, extra={"weights": "pretrained", "metrics": {}})
    except OSError:
        if (folder / MANIFEST).is_file():  # another process's first use wrote it while this one did
            return folder
        raise
