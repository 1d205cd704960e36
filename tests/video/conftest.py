"""Video fixtures: clips rendered with PyAV from real photographs moving over a background, a tiny detector."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.video.clips import render_clip


@pytest.fixture(scope="session")
def clip(tmp_path_factory) -> Path:
    """A 30-frame 320x240 H.264 .mp4 (1 s at 30 fps) of two photographs crossing."""
    path = tmp_path_factory.mktemp("clips") / "crossing.mp4"
    render_clip(path, options={"movflags": "faststart"})
    return path


@pytest.fixture(scope="session")
def untrained_detector(tmp_path_factory) -> Path:
    """A randomly initialised FCOS detector bundle at 128 px (boxes are random: the pipeline, not accuracy)."""
    import torch

    from recog.models import save_bundle
    from recog.tasks import get_task

    torch.manual_seed(0)
    created = get_task("detect").build("efficientnet-lite0", ["cat", "person"], weights="none", image_size=128)
    return save_bundle(tmp_path_factory.mktemp("bundles") / "detector", created.model, labels=["cat", "person"],
                       preprocessing=created.preprocessing, task="detect", source_model="efficientnet-lite0")
