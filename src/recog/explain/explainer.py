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
* Detectors explain **one box**: the logit of its class score at the output location
  that produced it (:meth:`recog.tasks.detect.Detect.box_anchor`: found from the
  detections, then fixed, so NMS is not differentiated and the score stays that box's
  for IG's and occlusion's many passes). The boxes are the ones ``recog predict``
  prints at the same ``min_score`` (default 0.3), in the same order: ``box=3`` is the
  fourth line of its ``boxes``. No box given: the top box, or with ``target`` the best
  box of that class. Every method works on a box (the score is one number either way);
  Grad-CAM weights its pyramid level per location (see :mod:`recog.explain.attribution`).
  One box per explanation, not every box in one overlay: a map normalised over several
  boxes lets the strongest hide the others (explain a folder or call once per box).
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


class NoBox(ConfigError):
    """The detector found nothing to explain in an image: no box at all, or none of the target class."""

    code = "no_box"


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
        box: a detector's explained box ``[x1, y1, x2, y2]`` (original pixels); None for a classifier.
        box_index: its position in the detections (as ``recog predict`` lists them); ``boxes``: how
            many boxes scored at least ``min_score``.
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
    box: list[float] | None = None
    box_index: int | None = None
    boxes: int | None = None
    min_score: float | None = None

    @property
    def peak_in_box(self) -> bool | None:
        """Whether the map's peak falls inside the explained box (None for a classifier)."""
        return None if self.box is None else render.inside(self.peak, self.box)

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
        shown = render.overlay(img, self.heat())
        if self.box is None:
            return shown
        from recog.detect.draw import draw_boxes

        return draw_boxes(shown, np.array([self.box]), [f"#{self.box_index} {self.target}"], scores=[self.score],
                          colors=[render.BOX_COLOUR])

    def to_dict(self) -> dict[str, Any]:
        out = {"method": self.method, "target": self.target, "target_index": self.target_index,
               "score": round(self.score, 6), "predicted": self.predicted,
               "predicted_score": round(self.predicted_score, 6), "peak": self.peak,
               "image_size": self.image_size, "map_shape": list(self.map.shape),
               "map_box": [round(v, 2) for v in self.map_box], "source": self.source}
        if self.box is not None:
            out.update(box_index=self.box_index, box=[round(v, 1) for v in self.box], peak_in_box=self.peak_in_box,
                       boxes=self.boxes, min_score=self.min_score)
        return out

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
    """Attribution maps for a loaded classifier or detector (one box at a time).

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
        require_task(predictor.manifest, "classify", "detect", command="recog explain")
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

    @property
    def is_detector(self) -> bool:
        return self.manifest.task == "detect"

    def check_target(self, target: str) -> int:
        """Index of the label ``target``.

        Raises:
            ConfigError: not one of the model's labels (close matches named; a detector's classes listed).
        """
        if target in self.labels:
            return self.labels.index(target)
        listing = ", ".join(self.labels[:20]) + (", ..." if len(self.labels) > 20 else "")
        kind = "classes" if self.is_detector else "labels"
        hint = did_you_mean(target, self.labels, cutoff=0.5) or f"{kind}: {listing}"
        message = f"unknown target label {target!r}: the model has {len(self.labels)} {kind}"
        raise ConfigError(message + (f" ({listing})." if self.is_detector else "."), hint=hint)

    def target_index(self, target: str | None, probs: np.ndarray) -> int:
        """The class to explain: ``target`` by name, or the top prediction.

        Raises:
            ConfigError: ``target`` is not one of the model's labels (close matches named).
        """
        return int(np.argmax(probs)) if target is None else self.check_target(target)

    def explain(self, source: Any, *, method: str = "gradcam", target: str | None = None, box: int | None = None,
                min_score: float | None = None, should_stop: Callable[[], bool] | None = None) -> Explanation:
        """Explain one image (path, bytes, PIL image or array) with ``method`` for ``target``.

        Detectors: ``box`` (index in the detections scoring at least ``min_score``) or the top box
        (of class ``target`` when given). ``should_stop``: checked before each forward pass; True
        ends the work (ExplanationStopped).

        Raises:
            ConfigError: unknown method or target; Grad-CAM on a transformer; ``box`` out of range
                or given to a classifier.
            ImageError: the safe loader refused the image.
        """
        import torch

        from recog.data.transforms import normalize, resize_to_input
        from recog.io import load_image

        check_method(method)
        if not self.is_detector and (box is not None or min_score is not None):
            raise ConfigError(f"box and min_score choose a detector's box; {self.manifest.path} is a "
                              f"{self.manifest.task!r} model.", hint="leave out --box and --min-score")
        prep = self.manifest.preprocessing
        image = load_image(source, max_pixels=self.max_pixels)
        p = next(self.model.parameters())
        x = torch.from_numpy(normalize(resize_to_input(image, prep), prep))[None].to(p.device, p.dtype)
        name = str(source) if isinstance(source, (str, Path)) else None
        with self._lock:
            with torch.no_grad():
                raw = self.task.forward(self.model, x).float().cpu().numpy()
            if self.is_detector:
                return self._explain_box(image, x, raw, method, target, box, min_score, should_stop, name)
            return self._explain_label(image, x, raw, method, target, should_stop, name)

    def _explain_label(self, image: "Image.Image", x: Any, logits: np.ndarray, method: str, target: str | None,
                       should_stop: Callable[[], bool] | None, name: str | None) -> Explanation:
        from recog.tasks.classify import probabilities

        probs = probabilities(logits, self.manifest.temperature)[0]
        idx = self.target_index(target, probs)
        amap = self._attribute(x, method, lambda inp: self.task.forward(self.model, inp)[:, idx],
                               lambda: self.task.target_layer(self.model), False, should_stop)
        top = int(np.argmax(probs))
        return self._explanation(image, amap, method, self.labels[idx], idx, float(probs[idx]), self.labels[top],
                                 float(probs[top]), name)

    def _explain_box(self, image: "Image.Image", x: Any, raw: np.ndarray, method: str, target: str | None,
                     box: int | None, min_score: float | None, should_stop: Callable[[], bool] | None,
                     name: str | None) -> Explanation:
        from recog.detect.postprocess import DEFAULT_MIN_SCORE

        floor = DEFAULT_MIN_SCORE if min_score is None else float(min_score)
        dets = self.task.postprocess(raw, self.manifest, sources=[None], image_sizes=[(image.width, image.height)],
                                     min_score=floor)[0]
        if target is not None:
            self.check_target(target)
        k = choose_box(dets, box, target, floor)
        h, w = self.manifest.preprocessing.size
        anchor = self.task.box_anchor(raw[0], dets, k, (w, h))
        c = int(dets.class_ids[k])
        amap = self._attribute(x, method, lambda inp: self.task.box_score(self.model, inp, anchor, c),
                               lambda: self.task.target_layer(self.model, x, anchor), True, should_stop)
        e = self._explanation(image, amap, method, dets.labels[k], c, float(dets.scores[k]), dets.labels[k],
                              float(dets.scores[k]), name)
        e.box, e.box_index, e.boxes, e.min_score = [float(v) for v in dets.boxes[k]], k, len(dets), floor
        return e

    def _attribute(self, x: Any, method: str, score: Callable[[Any], Any], layer: Callable[[], Any], box: bool,
                   should_stop: Callable[[], bool] | None) -> np.ndarray:
        prep = self.manifest.preprocessing
        return attribute(score, x, method, layer=layer, box=box, mean=prep.mean, std=prep.std,
                         options=self.options, should_stop=should_stop)

    def _explanation(self, image: "Image.Image", amap: np.ndarray, method: str, target: str, idx: int, score: float,
                     predicted: str, predicted_score: float, name: str | None) -> Explanation:
        box = list(render.input_box(image.width, image.height, self.manifest.preprocessing))
        return Explanation(method=method, target=target, target_index=idx, score=score, predicted=predicted,
                           predicted_score=predicted_score, map=amap.astype(np.float32), map_box=box,
                           image_size=[image.width, image.height],
                           peak=render.peak(amap, tuple(box), image.width, image.height), source=name, image=image)


def choose_box(detections: Any, box: int | None, target: str | None, min_score: float) -> int:
    """Which detection to explain: ``box`` (checked), else the best box of class ``target``, else the top box.

    Raises:
        ConfigError: ``box`` out of range (names how many boxes there are).
        NoBox: no box of ``target``; no box at all.
    """
    n = len(detections)
    found = f"the detector found {n} box{'es' if n != 1 else ''} scoring at least {min_score:g}"
    if box is not None:
        if not 0 <= box < n:
            raise ConfigError(f"box {box} does not exist: {found}" + (f" (0 to {n - 1})." if n else "."),
                              hint="pick an index that `recog predict` lists, or lower --min-score")
        if target is not None and detections.labels[box] != target:
            raise ConfigError(f"box {box} is a {detections.labels[box]!r}, not {target!r}.",
                              hint="give --box or --target, not both")
        return box
    if target is not None:
        if target not in detections.labels:
            counts = ", ".join(f"{v} {k}" for k, v in detections.counts.items() if v) or "none"
            raise NoBox(f"no {target!r} box scored at least {min_score:g} (boxes found: {counts}).",
                              hint="lower --min-score, or explain another class")
        return detections.labels.index(target)
    if n == 0:
        raise NoBox(f"nothing to explain: {found}.", hint="lower --min-score")
    return 0


def output_path(source: Path, root: Path | None, out_dir: Path) -> Path:
    """Where the overlay of ``source`` goes in a batch: ``out_dir/<path under root>/NAME.explain.png``."""
    rel = source.relative_to(root) if root is not None and source.is_relative_to(root) else Path(source.name)
    return out_dir / rel.parent / f"{rel.stem}.explain.png"


def explain_many(explainer: Explainer, sources: Sequence[Path], out_dir: Path, *, method: str = "gradcam",
                 target: str | None = None, min_score: float | None = None, root: Path | None = None,
                 progress: Callable[[int], None] | None = None) -> list[dict[str, Any]]:
    """Explain every file and save its outputs under ``out_dir``; a bad image is recorded, not raised.

    Detectors: the top box of each image (of class ``target`` when given); an image with no such
    box is recorded with its reason.

    Returns:
        One dict per source: the explanation's ``to_dict()`` plus ``"overlay"``, or
        ``{"source", "error"}`` for an image the safe loader refused.
    """
    check_method(method)
    rows: list[dict[str, Any]] = []
    for src in sources:
        try:
            e = explainer.explain(src, method=method, target=target, min_score=min_score)
        except NoBox as exc:
            rows.append({"source": str(src), "error": str(exc)})
        except ImageError as exc:
            rows.append({"source": str(src), "error": str(exc)})
        else:
            paths = e.save(output_path(Path(src), root, out_dir))
            rows.append({**e.to_dict(), "overlay": str(paths["png"])})
        if progress:
            progress(1)
    return rows


__all__ = ["METHODS", "Explainer", "Explanation", "MethodOptions", "NoBox", "choose_box", "explain_many", "output_path"]
