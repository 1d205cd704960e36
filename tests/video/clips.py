"""Test clips rendered with PyAV from real photographs (scikit-image) moving over a background."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def sprites(size: int = 48) -> dict[str, np.ndarray]:
    """Real photographs (scikit-image's chelsea cat and astronaut) cut to ``size`` px squares."""
    from PIL import Image
    from skimage import data

    return {name: np.asarray(Image.fromarray(getattr(data, name)()).resize((size, size)))
            for name in ("chelsea", "astronaut")}


def render_clip(path: Path, *, frames: int = 30, size: tuple[int, int] = (320, 240), fps: int = 30,
                options: dict | None = None) -> list[dict[str, tuple[int, int, int, int]]]:
    """Write an H.264 clip where the cat moves right and the astronaut left across a photo background.

    Returns the true box (x1, y1, x2, y2) of each sprite per frame.
    """
    import av
    from PIL import Image
    from skimage import data

    w, h = size
    background = np.asarray(Image.fromarray(data.coffee()).resize((w, h)))
    cut = sprites()
    s = next(iter(cut.values())).shape[0]
    truth = []
    with av.open(str(path), "w", options=options or {}) as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        for i in range(frames):
            img = background.copy()
            t = i / max(1, frames - 1)
            boxes = {"chelsea": (int(t * (w - s)), h // 2 - s // 2 - 10),
                     "astronaut": (int((1 - t) * (w - s)), h // 2 - s // 2 + 10)}
            for name, (x, y) in boxes.items():
                img[y:y + s, x:x + s] = cut[name]
            truth.append({k: (x, y, x + s, y + s) for k, (x, y) in boxes.items()})
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return truth


def render_face_clip(path: Path, *, frames: int = 16, size: tuple[int, int] = (320, 240), fps: int = 8) -> None:
    """An H.264 clip of Grace Hopper's portrait (matplotlib's sample photo) sliding right across a photo."""
    import av
    import matplotlib.cbook
    from PIL import Image
    from skimage import data

    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as fh:
        face = np.asarray(Image.open(fh).convert("RGB").resize((120, 140)))
    w, h = size
    background = np.asarray(Image.fromarray(data.coffee()).resize((w, h)))
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        for i in range(frames):
            img = background.copy()
            x = int(i / max(1, frames - 1) * (w - 120))
            img[50:190, x:x + 120] = face
            container.mux(stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
        container.mux(stream.encode(None))
