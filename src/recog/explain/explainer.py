"""The explainer: one image → which pixels made the model say that, at the original image's size.

Decisions, and why:

* Maps explain the **logit** of the target class (the pre-softmax score): softmax
  gradients saturate for confident predictions. The ``score`` reported is the
  calibrated probability of that class (the bundle's temperature).
* The map is computed over the model input and mapped back through the bundle's
  resize policy (:func:`recog.explain.render.input_box`): the overlay and the peak
  are in pixels of the original image after EXIF orientation; pixels a centre
  crop cut off get no heat.
* The ``.npy`` holds the raw map at the model input's resolution (the values the
  method produced, not interpolated); ``map_box`` in the JSON is the rectangle
  of the original image (``[x1, y1, x2, y2]`` pixels) that its edges correspond to.
* The explainer holds its own torch model (never an ONNX session: attribution
  needs gradients), and one lock: Grad-CAM hooks a layer for the duration of a
  call, so calls on one explainer run one at a time.
* ViT / DINOv2: ``ig`` and ``occlusion`` work; ``gradcam`` is refused with
  a message naming them (no convolutional stage to weight).
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from recog.errors import ConfigError, ImageError, did_you_mean
from recog.explain import render
from recog.explain.attribution import METHODS, MethodOptions, attribute, check_method
from recog.io import DEFAULT_MAX_PIXELS

if TYPE_CHECKING:
    from PIL import Image

    from recog.runtime.predictor import Predictor


@dataclass
class Explanation:
    """Why the model gave ``target`` its score for one image.

    Attributes:
        method: ``gradcam``, ``ig`` or ``occlusion``.
        target: the explained label; ``target_index`` its index.
        score: calibrated probability of ``target``.
        predicted: the top label and ``predicted_score`` its probability.
        map: ``(h, w)`` float32 raw attribution over the model input.
        map_box: ``[x1, y1, x2, y2]`` original pixels that the map's edges correspond to.
        image_size: ``[width, height]`` of the original image (after EXIF orientation).
        peak: ``[x, y]`` original pixel of the map's maximum.
        source: the file name, when explaining a file.
    """

    method: str
    target: str
    target_index: int
    score: float
    predicted: str
    predicted_score: float
    map: np.ndarray
    map_box: list[float]
    image_size: list[int]
    peak: list[int]
    source: str | None = None
    image: "Image.Image | None" = field(default=None, repr=False)

    def heat(self) -> np.ndarray:
        """``(height, width)`` display map in ``[0, 1]`` over the original image."""
        amap = self.map
        if self.method == "ig":  # pixel-level gradients: blur to regions before display
            amap = render.smooth(amap, sigma=max(amap.shape) / 56)
        w, h = self.image_size
        return render.display_map(render.to_original(amap, tuple(self.map_box), w, h))

    def overlay(self, image: "Image.Image | None" = None) -> "Image.Image":
        """The heat over the original image (the image it was computed on unless given)."""
        img = image if image is not None else self.image
        if img is None:
            raise ConfigError("this explanation has no image to draw on; pass one.")
        return render.overlay(img, self.heat())

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "target": self.target, "target_index": self.target_index,
                "score": round(self.score, 6), "predicted": self.predicted,
                "predicted_score": round(self.predicted_score, 6), "peak": self.peak,
                "image_size": self.image_size, "map_shape": list(self.map.shape),
                "map_box": [round(v, 2) for v in self.map_box], "source": self.source}

    def save(self, out_png: str | Path) -> dict[str, Path]:
        """Write the overlay PNG at ``out_png``, the raw map beside it (``.npy``) and a JSON summary."""
        out = Path(out_png)
        out.parent.mkdir(parents=True, exist_ok=True)
        stem = str(out.with_suffix(""))  # photo.explain.png → photo.explain.npy, photo.explain.json
        paths = {"png": out, "npy": Path(stem + ".npy"), "json": Path(stem + ".json")}
        self.overlay().save(paths["png"], format="PNG")
        np.save(paths["npy"], self.map.astype(np.float32))
        paths["json"].write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
        return paths


class Explainer:
    """Attribution maps for a loaded classifier.

    Args:
        model: a :class:`~recog.runtime.predictor.Predictor`, or a bundle path / ready preset.
        options: method knobs (:class:`~recog.explain.attribution.MethodOptions`).
        share_model: reuse the predictor's torch model when it has one (the CLI); False loads
            a private copy (the service: its batcher keeps using the predictor's).

    Example:
        >>> ex = Explainer("runs/pets/best")                                 # doctest: +SKIP
        >>> e = ex.explain("cat.jpg", method="gradcam"); e.save("cat.explain.png")  # doctest: +SKIP
    """

    def __init__(self, model: "Predictor | str | Path", *, options: MethodOptions = MethodOptions(),
                 share_model: bool = True, device: str = "cpu", max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
        import recog
        from recog.tasks.base import require_task

        predictor = model if hasattr(model, "manifest") else recog.load(model, backend="torch", device=device)
        require_task(predictor.manifest, "classify", command="recog explain")
        self.manifest = predictor.manifest
        self.task = predictor.task
        self.options = options
        self.max_pixels = getattr(predictor, "max_pixels", max_pixels)
        torch_model = getattr(predictor.backend, "model", None) if share_model else None
        if torch_model is None:
            torch_model = self.task.load(self.manifest).to(device)
            for p in torch_model.parameters():  # gradients are wanted for inputs only
                p.requires_grad_(False)
        self.model = torch_model.eval()
        self._lock = threading.Lock()

    @property
    def labels(self) -> tuple[str, ...]:
        return self.manifest.labels

    def target_index(self, target: str | None, probs: np.ndarray) -> int:
        """The class to explain: ``target`` by name, or the top prediction.

        Raises:
            ConfigError: ``target`` is not one of the model's labels (close matches named).
        """
        if target is None:
            return int(np.argmax(probs))
        if target in self.labels:
            return self.labels.index(target)
        hint = did_you_mean(target, self.labels, cutoff=0.5) or f"labels: {', '.join(self.labels[:20])}" + (
            ", ..." if len(self.labels) > 20 else "")
        raise ConfigError(f"unknown target label {target!r}: the model has {len(self.labels)} labels.", hint=hint)

    def explain(self, source: Any, *, method: str = "gradcam", target: str | None = None,
                should_stop: Callable[[], bool] | None = None) -> Explanation:
        """Explain one image (path, bytes, PIL image or array) with ``method`` for ``target``.

        ``should_stop``: checked before each forward pass; True ends the work (ExplanationStopped).

        Raises:
            ConfigError: unknown method or target; Grad-CAM on a transformer.
            ImageError: the safe loader refused the image.
        """
        import torch

        from recog.data.transforms import normalize, resize_to_input
        from recog.io import load_image
        from recog.tasks.classify import probabilities

        check_method(method)
        prep = self.manifest.preprocessing
        image = load_image(source, max_pixels=self.max_pixels)
        p = next(self.model.parameters())
        x = torch.from_numpy(normalize(resize_to_input(image, prep), prep))[None].to(p.device, p.dtype)
        with self._lock:
            with torch.no_grad():
                logits = self.task.forward(self.model, x).float().cpu().numpy()
            probs = probabilities(logits, self.manifest.temperature)[0]
            idx = self.target_index(target, probs)
            amap = attribute(self.task, self.model, x, idx, method, mean=prep.mean, std=prep.std,
                             options=self.options, should_stop=should_stop)
        box = list(render.input_box(image.width, image.height, prep))
        top = int(np.argmax(probs))
        return Explanation(method=method, target=self.labels[idx], target_index=idx, score=float(probs[idx]),
                           predicted=self.labels[top], predicted_score=float(probs[top]),
                           map=amap.astype(np.float32), map_box=box, image_size=[image.width, image.height],
                           peak=render.peak(amap, tuple(box), image.width, image.height),
                           source=str(source) if isinstance(source, (str, Path)) else None, image=image)


def output_path(source: Path, root: Path | None, out_dir: Path) -> Path:
    """Where the overlay of ``source`` goes in a batch: ``out_dir/<path under root>/NAME.explain.png``."""
    rel = source.relative_to(root) if root is not None and source.is_relative_to(root) else Path(source.name)
    return out_dir / rel.parent / f"{rel.stem}.explain.png"


def explain_many(explainer: Explainer, sources: Sequence[Path], out_dir: Path, *, method: str = "gradcam",
                 target: str | None = None, root: Path | None = None,
                 progress: Callable[[int], None] | None = None) -> list[dict[str, Any]]:
    """Explain every file and save its outputs under ``out_dir``; a bad image is recorded, not raised.

    Returns:
        One dict per source: the explanation's ``to_dict()`` plus ``"overlay"``, or
        ``{"source", "error"}`` for an image the safe loader refused.
    """
    check_method(method)
    rows: list[dict[str, Any]] = []
    for src in sources:
        try:
            e = explainer.explain(src, method=method, target=target)
        except ImageError as exc:
            rows.append({"source": str(src), "error": str(exc)})
        else:
            paths = e.save(output_path(Path(src), root, out_dir))
            rows.append({**e.to_dict(), "overlay": str(paths["png"])})
        if progress:
            progress(1)
    return rows


__all__ = ["METHODS", "Explainer", "Explanation", "MethodOptions", "explain_many", "output_path"]
