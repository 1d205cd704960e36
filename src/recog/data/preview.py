"""A PNG grid of augmented training samples, to see what the model will see."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from recog.data.dataset import Sample
from recog.types import Preprocessing


def augmented_grid(samples: Sequence[Sample], prep: Preprocessing, *, augment: str, hflip: bool = True,
                   per_image: int = 4, seed: int = 0) -> np.ndarray:
    """Rows of ``per_image`` augmented views of each sample: ``(rows*H, per_image*W, 3)`` uint8.

    The first column is the un-augmented (resized) image.
    """
    import torch

    from recog.data.augment import Augmenter
    from recog.data.decode import decode_to_input

    torch.manual_seed(seed)
    aug = Augmenter(augment, prep.size, hflip=hflip)
    rows = []
    for s in samples:
        base = decode_to_input(s.path, prep)
        x = torch.from_numpy(base.copy()).permute(2, 0, 1).float().div(255).unsqueeze(0).repeat(per_image - 1, 1, 1, 1)
        views, _ = aug(x, torch.zeros(per_image - 1, dtype=torch.long))
        views = (views.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
        rows.append(np.concatenate([base, *views], axis=1))
    return np.concatenate(rows, axis=0)


def write_preview(samples: Sequence[Sample], prep: Preprocessing, out: str | Path, *, augment: str,
                  hflip: bool = True, per_image: int = 4, seed: int = 0) -> Path:
    """Write :func:`augmented_grid` as a PNG with a 2-px gap between tiles; labels in the file name order."""
    from PIL import Image

    grid = augmented_grid(samples, prep, augment=augment, hflip=hflip, per_image=per_image, seed=seed)
    h, w = prep.size
    rows, cols = grid.shape[0] // h, grid.shape[1] // w
    gap = 2
    canvas = np.full((rows * (h + gap) - gap, cols * (w + gap) - gap, 3), 255, np.uint8)
    for r in range(rows):
        for c in range(cols):
            canvas[r * (h + gap):r * (h + gap) + h, c * (w + gap):c * (w + gap) + w] = grid[r*h:(r+1)*h, c*w:(c+1)*w]
    scale = max(1, 96 // min(h, w))
    img = Image.fromarray(canvas)
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    img.save(out)
    return out
