"""Training augmentation presets, run in batches with kornia on the training device.

Presets (``--augment``):

========  =====================================================================
none      nothing
light     random resized crop (scale 0.8-1), ±10° rotation / 10% shift, h-flip
standard  resized crop (0.5-1), ±15°, h-flip, colour jitter, random erasing
strong    standard with wider ranges, plus mixup or cutmix on half the batches
========  =====================================================================

Horizontal flips are wrong for some data (digits, text, left/right organs):
pass ``hflip=False``. Inputs are float ``(B, 3, H, W)`` in [0, 1], before
normalization.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from recog.errors import ConfigError

if TYPE_CHECKING:
    import torch

PRESETS = ("none", "light", "standard", "strong")


@dataclass(frozen=True)
class AugmentSpec:
    crop_scale: tuple[float, float] | None
    degrees: float
    translate: float
    color: float
    erasing: float
    mix: bool


_SPECS = {
    "none": AugmentSpec(None, 0.0, 0.0, 0.0, 0.0, False),
    "light": AugmentSpec((0.8, 1.0), 10.0, 0.1, 0.0, 0.0, False),
    "standard": AugmentSpec((0.5, 1.0), 15.0, 0.1, 0.3, 0.25, False),
    "strong": AugmentSpec((0.35, 1.0), 25.0, 0.15, 0.4, 0.4, True),
}


class Augmenter:
    """Callable ``(images, labels) -> (images, targets)`` for one preset.

    ``targets`` is the ``(B,)`` label tensor, or, when mixup/cutmix applied,
    a ``(B, 3)`` tensor ``[label_a, label_b, lam]`` (kornia's convention: ``lam``
    is the share of the image taken from ``label_b``'s sample);
    :func:`mixed_cross_entropy` handles both.
    """

    def __init__(self, preset: str, size: tuple[int, int], *, hflip: bool = True, seed: int | None = None) -> None:
        import kornia.augmentation as K

        if preset not in _SPECS:
            raise ConfigError(f"unknown augmentation preset {preset!r}; expected one of {', '.join(PRESETS)}.")
        spec = _SPECS[preset]
        self.preset = preset
        ops = []
        if spec.crop_scale:
            ops.append(K.RandomResizedCrop(size, scale=spec.crop_scale, ratio=(0.8, 1.25)))
        if hflip and preset != "none":
            ops.append(K.RandomHorizontalFlip())
        if spec.degrees or spec.translate:
            ops.append(K.RandomAffine(degrees=spec.degrees, translate=(spec.translate, spec.translate), p=0.8))
        if spec.color:
            c = spec.color
            ops.append(K.ColorJitter(c, c, c, min(0.05, c / 4), p=0.8))
        if spec.erasing:
            ops.append(K.RandomErasing(p=spec.erasing))
        self.pipeline = K.AugmentationSequential(*ops) if ops else None
        self.mixers = ([K.RandomMixUpV2(data_keys=["input", "class"]),
                        K.RandomCutMixV2(data_keys=["input", "class"], use_correct_lambda=True)]
                       if spec.mix else [])
        self._step = 0

    def __call__(self, images: "torch.Tensor", labels: "torch.Tensor") -> tuple["torch.Tensor", "torch.Tensor"]:
        if self.pipeline is not None:
            images = self.pipeline(images)
        if self.mixers:
            self._step += 1
            if self._step % 2 == 0:
                mixer = self.mixers[(self._step // 2) % 2]
                images, targets = mixer(images, labels)
                if targets.ndim == 3:  # cutmix: (num_mix, B, 3), one mix here; its lambda is the share
                    targets = targets[-1].clone()  # of image a kept, so flip it to mixup's share of image b
                    targets[:, 2] = 1 - targets[:, 2]
                return images.clamp(0, 1), targets
        return images.clamp(0, 1), labels


def mixed_cross_entropy(logits: "torch.Tensor", targets: "torch.Tensor", *, weight: "torch.Tensor | None" = None,
                        label_smoothing: float = 0.0) -> "torch.Tensor":
    """Cross-entropy for plain ``(B,)`` labels or kornia's ``(B, 3)`` mixed targets.

    Mixed targets are ``[label_a, label_b, lam]`` where kornia made the image
    ``(1 - lam) * image_a + lam * image_b`` (cutmix: ``lam`` = pasted area share),
    so the loss is ``(1 - lam) * CE(label_a) + lam * CE(label_b)``.
    """
    import torch.nn.functional as F

    if targets.ndim == 1:
        return F.cross_entropy(logits, targets, weight=weight, label_smoothing=label_smoothing)
    a, b, lam = targets[:, 0].long(), targets[:, 1].long(), targets[:, 2]
    la = F.cross_entropy(logits, a, weight=weight, label_smoothing=label_smoothing, reduction="none")
    lb = F.cross_entropy(logits, b, weight=weight, label_smoothing=label_smoothing, reduction="none")
    return ((1 - lam) * la + lam * lb).mean()
