"""A small fitted anomaly bundle for the service tests: crops of scikit-image's gravel photo are the good parts,
a disk of the astronaut photo pasted on a fresh crop is the defect (as in tests/tasks/test_anomaly.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def gravel_parts(root: Path, n_good: int = 10, seed: int = 0) -> dict[str, Path]:
    """``root/good/*.png`` (256 px crops), ``root/defect.png`` (a fresh crop with a disk of radius 20 pasted at
    (160, 96)) and ``root/part.png`` (a fresh good crop)."""
    from PIL import Image
    from skimage import data

    gravel, astronaut = data.gravel(), data.astronaut()
    rng = np.random.default_rng(seed)

    def crop() -> np.ndarray:
        y, x = rng.integers(0, gravel.shape[0] - 256, 2)
        return np.stack([gravel[y:y + 256, x:x + 256]] * 3, axis=-1)

    (root / "good").mkdir(parents=True)
    for i in range(n_good):
        Image.fromarray(crop()).save(root / "good" / f"g{i:02d}.png")
    Image.fromarray(crop()).save(root / "part.png")
    defect = crop()
    yy, xx = np.mgrid[:256, :256]
    inside = (xx - 160) ** 2 + (yy - 96) ** 2 <= 20 ** 2
    defect[inside] = astronaut[100:356, 150:406][inside]
    Image.fromarray(defect).save(root / "defect.png")
    return {"good": root / "good", "defect": root / "defect.png", "part": root / "part.png"}


def fit_parts_bundle(root: Path) -> Path:
    """Fit ``root/good`` at 128 px (EfficientNet-Lite0 ImageNet weights, one thread) into ``root/bundle``."""
    import torch

    from recog.anomaly.fit import FitOptions, fit_anomaly, good_images
    from recog.tasks.anomaly import save_fit

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        fitted = fit_anomaly(good_images(root / "good"), image_size=128, options=FitOptions(holdout=0.25), threads=1)
    finally:
        torch.set_num_threads(before)
    return save_fit(fitted, root / "bundle")
