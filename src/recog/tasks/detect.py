"""Object detection (the ``detect`` task): where, as well as what.

The network is :class:`recog.detect.network.FCOSLite` (FCOS on a pretrained
EfficientNet-Lite; the choice is argued there); its raw output, the one
array every backend moves, is ``(N, A, 4 + C)``: a decoded box in
model-input pixels and ``C`` class scores per location.
:meth:`Detect.postprocess` keeps scores above ``min_score``, runs per-class
NMS and scales boxes to the original image (:mod:`recog.detect.postprocess`)
into :class:`~recog.detect.result.Detections`.

Data: any box format :func:`recog.detect.formats.load_boxes` reads (VOC,
COCO, YOLO, CSV); images are resized by ``stretch`` to a square input
(:data:`recog.detect.network.DEFAULT_IMAGE_SIZE`), boxes with them.
Training: the engine's trainer with the loss of :mod:`recog.detect.loss`,
box-moving augmentation (:mod:`recog.detect.augment`), and validation mAP@0.5
(pycocotools) picking the best checkpoint. Defaults that differ from
classification are in :attr:`Detect.defaults` (README: how they were chosen).

Original image sizes come from each source's header (EXIF rotation applied)
or ``image_sizes=[(w, h), ...]`` (the service passes them for uploads); for
arrays without either, boxes stay in model-input pixels and ``image_size``
says so.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from recog.detect.result import Detections
from recog.errors import ConfigError
from recog.tasks.base import EvaluationResult, Task, register_task

if TYPE_CHECKING:
    import torch

    from recog.models.bundle import BundleManifest

#: backbone names accepted by --model for the default detector (and their EfficientNet-Lite variant).
BACKBONES = {"efficientnet-lite0": "lite0", "efficientnet-lite1": "lite1", "efficientnet-lite2": "lite2",
             "fcos-lite0": "lite0", "fcos-lite1": "lite1", "fcos-lite2": "lite2"}


@register_task
class Detect(Task):
    """Object detection: ``(N, A, 4 + C)`` → :class:`Detections` per image."""

    name = "detect"
    result = Detections
    output = "detections"
    monitor = "map50"
    min_labels = 1
    #: int8 quantizes the convolutions only: boxes (0..input size) and scores (0..1) leave the graph in
    #: one tensor, and one int8 scale for both would erase the scores.
    int8_op_types = ["Conv"]
    #: training defaults where detection differs from classification (flags and --config override them).
    defaults = {"model": "efficientnet-lite0", "epochs": 14, "batch_size": 8, "lr": 1e-3, "warmup_epochs": 1.0,
                "grad_clip": 10.0, "label_smoothing": 0.0}

    # ------------------------------------------------------------------ model
    def build(self, source: str, labels: Sequence[str], *, weights: str | None = None,
              image_size: int | None = None):
        """FCOS on EfficientNet-Lite ``source`` (``efficientnet-lite0`` by default), or a detect bundle to go on from."""
        from recog.detect.network import DEFAULT_IMAGE_SIZE, FCOSLite
        from recog.models.efficientnet_lite import IMAGENET_PREPROCESSING
        from recog.models.registry import CreatedModel
        from recog.types import Preprocessing

        if (Path(source) / "recog.json").is_file():
            return _from_bundle(source, labels)
        if source not in BACKBONES:
            return _from_transformers(source, labels, image_size)
        variant = BACKBONES[source]
        model = FCOSLite(variant, num_classes=len(labels))
        loaded = "none"
        if weights in (None, "pretrained"):
            model.load_pretrained()
            loaded = "imagenet (efficientnet-lite package)"
        elif weights != "none":
            raise ConfigError(f"--weights for the detector is pretrained or none, got {weights!r}.")
        size = image_size or DEFAULT_IMAGE_SIZE
        base = IMAGENET_PREPROCESSING[variant]
        prep = Preprocessing(size=(size, size), resize="stretch", crop_pct=1.0, mean=base["mean"], std=base["std"])
        return CreatedModel(model, prep, source, loaded)

    def load(self, manifest: "BundleManifest") -> "torch.nn.Module":
        """The bundle's network: the default detector (native) or a transformers detector."""
        from recog.models import native
        from recog.models.bundle import load_network
        from recog.models.checks import read_config

        if native.CONFIG_KEY in read_config(manifest.path / "config.json"):
            return load_network(manifest)
        from recog.detect import hf

        return hf.load(manifest.path)

    def forward(self, model: "torch.nn.Module", x: "torch.Tensor") -> "torch.Tensor":
        from recog.detect.hf import is_transformers, pack

        if is_transformers(model):
            return pack(model, model(pixel_values=x), tuple(x.shape[-2:]))
        return model(x)

    def head(self, model: "torch.nn.Module") -> "torch.nn.Module":
        """The feature pyramid and FCOS head (new; the rest is the pretrained backbone)."""
        if not hasattr(model, "head"):
            raise ConfigError(f"{type(model).__name__} has no separate detection head; train it with --strategy full.")
        return model.head

    # ------------------------------------------------------------------ training
    def open_dataset(self, path: Any) -> Any:
        from recog.detect.formats import load_boxes

        return load_boxes(path)

    def decode_split(self, samples: Sequence[Any], labels: Sequence[str], prep: Any, *, strict: bool, threads: int,
                     cache_gb: float, progress: Any = None) -> Any:
        from recog.detect.data import load_box_split

        return load_box_split(samples, labels, prep, strict=strict, threads=threads, progress=progress)

    def setup_training(self, config: Any, labels: Sequence[str], targets: np.ndarray, prep: Any,
                       device: str) -> None:
        import torch

        from recog.detect.augment import BoxAugmenter

        self.labels = list(labels)
        self.input_size = (prep.size[1], prep.size[0])
        self.augment = BoxAugmenter(config.augment, hflip=config.hflip)
        self.mean = torch.tensor(prep.mean, device=device).view(1, 3, 1, 1)
        self.std = torch.tensor(prep.std, device=device).view(1, 3, 1, 1)

    def inputs(self, images: "torch.Tensor", targets: Any, *, train: bool = True):
        import torch

        targets = torch.as_tensor(targets, device=images.device, dtype=torch.float32)
        if train:
            images, targets = self.augment(images, targets)
        return (images - self.mean) / self.std, targets

    def loss(self, model: "torch.nn.Module", x: "torch.Tensor", target: "torch.Tensor") -> dict[str, "torch.Tensor"]:
        from recog.detect import hf
        from recog.detect.loss import fcos_loss
        from recog.detect.network import pack

        if hf.is_transformers(model):
            return hf.loss(model, x, target)
        raw = model.raw(x)
        out = fcos_loss(raw, target)
        out["output"] = pack({k: v.detach() for k, v in raw.items()})
        return out

    def metric(self, *, keep_outputs: bool = False):
        from recog.detect.metrics import DetectionMetric

        return DetectionMetric(getattr(self, "labels", []), getattr(self, "input_size", (1, 1)),
                               keep_outputs=keep_outputs)

    def evaluate(self, predictor: Any, data: Any, *, split: str | None, out: Path, batch_size: int,
                 progress_factory: Callable[[str, int], Any] | None, explain: int = 0, **_: Any) -> EvaluationResult:
        """mAP@0.5, mAP@0.5:0.95, per-class AP, PR curves, confusion matrix, worst images: ``report.html``;
        ``explain`` > 0 adds heatmaps of that many confident false positives (and right boxes per class)."""
        from recog.detect.evaluate import evaluate_detector

        return evaluate_detector(predictor, data, Path(out), split=split, batch_size=batch_size,
                                 progress_factory=progress_factory, explain=explain)

    # ------------------------------------------------------------------ inference
    def postprocess(self, raw: np.ndarray, manifest: "BundleManifest", *, sources: Sequence[str | None],
                    min_score: float | None = None, iou: float | None = None, max_detections: int | None = None,
                    image_sizes: Sequence[tuple[int, int] | None] | None = None, **options: Any) -> list[Detections]:
        """Raw ``(N, A, 4 + C)`` → one :class:`Detections` per image.

        Args:
            min_score: lowest score kept (default 0.3); iou: NMS overlap (0.6); max_detections: per image (100).
            image_sizes: ``(width, height)`` of each original image; default: each source's header.
        """
        from recog.detect.postprocess import (DEFAULT_IOU, DEFAULT_MAX_DETECTIONS, DEFAULT_MIN_SCORE,
                                              decode_detections)

        h, w = manifest.preprocessing.size
        sizes = [image_sizes[i] if image_sizes is not None and image_sizes[i] is not None else source_size(s)
                 for i, s in enumerate(sources)]
        try:
            return decode_detections(np.asarray(raw), manifest.labels, (w, h), sizes, sources,
                                     min_score=DEFAULT_MIN_SCORE if min_score is None else float(min_score),
                                     iou=DEFAULT_IOU if iou is None else float(iou),
                                     max_detections=DEFAULT_MAX_DETECTIONS if max_detections is None
                                     else int(max_detections))
        except ValueError as exc:
            raise ConfigError(str(exc)) from None

    # ------------------------------------------------------------------ explanations
    def box_anchor(self, raw: np.ndarray, detections: Detections, index: int, input_size: tuple[int, int]) -> int:
        """The output location (row of the raw ``(A, 4 + C)`` of one image) that produced box ``index``.

        Postprocessing copies a box's score from its row unchanged (threshold, NMS and scaling only
        select and move boxes), so the row is the one holding exactly that score in the box's class
        column; among equal scores, the one whose box scales to the detected box. Fixing the row
        before explaining keeps the explained score stable: NMS is not part of what is differentiated.

        Args:
            input_size: ``(width, height)`` of the model input.
        """
        from recog.detect.boxes import scale_boxes

        raw = np.asarray(raw, np.float32)
        c = int(detections.class_ids[index])
        column = raw[:, 4 + c]
        rows = np.flatnonzero(column == np.float32(detections.scores[index]))
        if len(rows) == 0:  # a score clipped to [0, 1]: the nearest one
            rows = np.array([int(np.argmin(np.abs(column - detections.scores[index])))])
        frame = detections.image_size or input_size
        boxes = scale_boxes(scale_boxes(raw[rows, :4], input_size, input_size), input_size, tuple(frame))
        return int(rows[np.argmin(np.abs(boxes - detections.boxes[index]).sum(1))])

    def box_score(self, model: "torch.nn.Module", x: "torch.Tensor", anchor: int, class_id: int) -> "torch.Tensor":
        """``(N,)`` logit of the class score at output location ``anchor``: what an explanation of one box explains.

        The logit (``log(s / (1 - s))`` of the score ``s`` a box is reported with) rather than ``s``:
        it does not saturate for confident boxes, as classification explains logits, not probabilities.
        """
        import torch

        s = self.forward(model, x)[:, anchor, 4 + class_id].clamp(1e-6, 1 - 1e-6)
        return torch.log(s) - torch.log1p(-s)

    def target_layer(self, model: "torch.nn.Module", x: "torch.Tensor", anchor: int) -> "torch.nn.Module":
        """Grad-CAM's layer for the box at ``anchor``: the feature-pyramid level that box was predicted from.

        The level's resolution suits the object's size (stride 8 for small objects, 32 for large), and
        it is the feature map the head reads for that box. ``x``: the normalized input (the level of a
        location depends on the input size).

        Raises:
            ConfigError: a transformers detector (no pyramid level to name); ig and occlusion work.
        """
        import torch

        from recog.detect.hf import is_transformers
        from recog.detect.network import STRIDES

        if is_transformers(model) or not hasattr(model, "raw"):
            raise ConfigError(f"Grad-CAM of a box needs the default detector (FCOS); {type(model).__name__} "
                              "has no feature-pyramid level to name.",
                              hint="use --method ig (integrated gradients) or --method occlusion")
        with torch.no_grad():
            stride = float(model.raw(x[:1])["strides"][anchor])
        return model.head.smooth[STRIDES.index(int(stride))]

    # ------------------------------------------------------------------ export
    def export_sets(self, manifest: "BundleManifest", calibration: Any, validation: Any, **sizes: Any):
        """Calibration and validation images with boxes (see :mod:`recog.detect.exportset`)."""
        from recog.detect.exportset import export_sets

        return export_sets(manifest, calibration, validation, **sizes)

    def parity(self, reference: np.ndarray, candidate: np.ndarray, y: np.ndarray | None) -> dict[str, Any]:
        """``images``, ``max_abs_score_diff``, ``max_abs_box_diff`` (input pixels) and, with ground truth
        ``y`` (padded ``(N, M, 5)``), ``map50_reference``, ``map50`` and ``map50_drop_points``."""
        from recog.detect.metrics import DetectionMetric

        ref, cand = np.asarray(reference, np.float64), np.asarray(candidate, np.float64)
        out: dict[str, Any] = {"images": int(len(ref)),
                               "max_abs_score_diff": float(np.abs(ref[..., 4:] - cand[..., 4:]).max()) if ref.size else 0.0,
                               "max_abs_box_diff": float(np.abs(ref[..., :4] - cand[..., :4]).max()) if ref.size else 0.0}
        if y is not None and len(ref):
            labels = [str(i) for i in range(ref.shape[-1] - 4)]
            size = int(round(np.abs(ref[..., :4]).max())) or 1
            figures = []
            for raw in (ref, cand):
                metric = DetectionMetric(labels, (size, size), keep_outputs=True)
                metric.update(raw.astype(np.float32), y)
                figures.append(metric.compute()["map50"])
            out.update(map50_reference=round(figures[0], 6), map50=round(figures[1], 6),
                       map50_drop_points=round(100.0 * (figures[0] - figures[1]), 4))
        return out

    def judge(self, parity: dict[str, Any], *, max_drop: float, atol_rel: float | None) -> str | None:
        """Refuse an mAP@0.5 drop above ``max_drop`` points; fp32 (``atol_rel``) must also match scores."""
        if "map50_drop_points" in parity and parity["map50_drop_points"] > max_drop:
            return (f"mAP@0.5 drops {parity['map50_drop_points']:.2f} points ({100 * parity['map50_reference']:.2f} → "
                    f"{100 * parity['map50']:.2f}) on {parity['images']} images, more than --max-drop {max_drop:g}")
        if "map50_drop_points" not in parity and parity["max_abs_score_diff"] > max(max_drop / 100.0, 1e-3):
            return (f"class scores differ by up to {parity['max_abs_score_diff']:.3g} on {parity['images']} unlabelled "
                    f"images (more than {max_drop / 100:.3g}); give labelled validation boxes to judge by mAP")
        if atol_rel is not None and parity["max_abs_score_diff"] > atol_rel:
            return f"class scores differ by up to {parity['max_abs_score_diff']:.3g}, above {atol_rel:g}"
        return None


def source_size(source: str | None) -> tuple[int, int] | None:
    """(width, height) of an image file after EXIF rotation, None without a readable path."""
    if source is None or not Path(source).is_file():
        return None
    from recog.detect.formats import image_frame

    return image_frame(Path(source))


def _from_transformers(source: str, labels: Sequence[str], image_size: int | None):
    """A transformers detector (Hub id or folder); ImageNet normalisation, stretched square input."""
    from recog.detect import hf
    from recog.models.registry import IMAGENET, CreatedModel
    from recog.types import Preprocessing

    if not Path(source).is_dir() and "/" not in source:
        raise ConfigError(f"--model {source!r} is not a detector: expected {', '.join(BACKBONES)}, a transformers "
                          "object-detection folder or Hub id (owner/name), or a detect bundle.",
                          hint="omit --model for the default detector (FCOS on efficientnet-lite0)")
    model, size = hf.create(source, labels, image_size=image_size)
    prep = Preprocessing(size=(size, size), resize="stretch", crop_pct=1.0, **IMAGENET)
    return CreatedModel(model, prep, source, "transformers")


def _from_bundle(source: str, labels: Sequence[str]):
    from recog.models.bundle import read_manifest
    from recog.models.registry import CreatedModel
    from recog.tasks.base import require_task

    manifest = read_manifest(source)
    require_task(manifest, "detect", command="recog train --task detect --model BUNDLE")
    if list(manifest.labels) != list(labels):
        raise ConfigError(f"{source} detects {', '.join(manifest.labels)}; the data has {', '.join(labels)}.",
                          hint="train from efficientnet-lite0 for a new label set")
    return CreatedModel(Detect().load(manifest).train(), manifest.preprocessing, str(source), "bundle")
