"""Transformers detectors (RT-DETR, D-FINE, DETR, YOLOS, ...) through the same detect task.

``--model`` takes a Hub id or a local folder holding a transformers object
detection model (``AutoModelForObjectDetection``; never remote code). The
class head is rebuilt for the data's labels. These models predict a fixed
set of queries: normalised ``(cx, cy, w, h)`` boxes and class logits.
:func:`pack` turns them into recog's detector output ``(N, Q, 4 + C)``
(boxes in input pixels, class scores: sigmoid for the focal-loss families
in :data:`SIGMOID_FAMILIES`, else a softmax without the "no object" column),
so postprocessing, evaluation, export and the service are the same as for
the default detector. Training passes the boxes as the models expect
(``labels=[{"class_labels", "boxes"}]``, normalised centre format) and uses
the model's own Hungarian-matched loss.

Importing this module imports torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import torch

from recog.errors import BundleError, ConfigError, WeightsUnavailableError

#: model types whose class logits are independent sigmoids (no "no object" class).
SIGMOID_FAMILIES = {"rt_detr", "rt_detr_v2", "d_fine", "deformable_detr", "conditional_detr", "dab_detr",
                    "deta", "grounding_dino", "rf_detr"}
DEFAULT_IMAGE_SIZE = 640


def is_transformers(model: Any) -> bool:
    return hasattr(getattr(model, "config", None), "model_type")


def create(source: str, labels: Sequence[str], *, image_size: int | None = None) -> tuple[Any, int]:
    """A transformers detector from ``source`` (folder or Hub id) with a head for ``labels``; and its input size."""
    from transformers import AutoModelForObjectDetection
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    kwargs = {"num_labels": len(labels), "id2label": dict(enumerate(labels)),
              "label2id": {name: i for i, name in enumerate(labels)}}
    try:
        model = AutoModelForObjectDetection.from_pretrained(source, ignore_mismatched_sizes=True,
                                                            trust_remote_code=False, **kwargs)
    except OSError as exc:
        raise WeightsUnavailableError(f"cannot load the detector {source!r}: not a local folder with a transformers "
                                      f"object-detection model, and the Hub is not reachable ({exc}).",
                                      hint="download it where there is network and pass the folder") from None
    except ValueError as exc:
        raise ConfigError(f"{source!r} is not an object-detection model ({exc}).") from None
    size = image_size or _config_size(model.config) or DEFAULT_IMAGE_SIZE
    return model, int(size)


def _config_size(config: Any) -> int | None:
    size = getattr(config, "image_size", None)
    if isinstance(size, (list, tuple)):
        return int(max(size))
    return int(size) if isinstance(size, int) else None


def load(path: Path) -> Any:
    """A detect bundle's transformers network, in eval mode."""
    from transformers import AutoModelForObjectDetection

    try:
        model = AutoModelForObjectDetection.from_pretrained(str(path), local_files_only=True, use_safetensors=True,
                                                            trust_remote_code=False)
    except (OSError, ValueError, RuntimeError) as exc:
        raise BundleError(f"{path}: model.safetensors does not load with config.json ({exc}).") from exc
    return model.eval()


def pack(model: Any, out: Any, size: tuple[int, int]) -> torch.Tensor:
    """Model outputs → ``(N, Q, 4 + C)``: xyxy boxes in pixels of the ``(height, width)`` input, class scores."""
    h, w = size
    cx, cy, bw, bh = out.pred_boxes.unbind(-1)
    boxes = torch.stack([(cx - bw / 2) * w, (cy - bh / 2) * h, (cx + bw / 2) * w, (cy + bh / 2) * h], -1)
    logits = out.logits
    if model.config.model_type in SIGMOID_FAMILIES:
        scores = torch.sigmoid(logits)
    else:
        scores = torch.softmax(logits, -1)[..., :-1]
    return torch.cat([boxes, scores], -1)


def loss(model: Any, x: torch.Tensor, gt: torch.Tensor) -> dict[str, torch.Tensor]:
    """The model's own loss for padded ``(N, M, 5)`` ground truth in input pixels."""
    h, w = x.shape[-2:]
    scale = torch.tensor([w, h, w, h], dtype=gt.dtype, device=gt.device)
    labels = []
    for rows in gt:
        rows = rows[rows[:, 4] >= 0]
        b = rows[:, :4] / scale
        labels.append({"class_labels": rows[:, 4].long(),
                       "boxes": torch.stack([(b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2,
                                             b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]], -1)})
    out = model(pixel_values=x, labels=labels)
    return {"loss": out.loss, "output": pack(model, out, (h, w)).detach()}
