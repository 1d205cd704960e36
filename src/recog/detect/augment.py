"""Augmentation that moves boxes with the pixels: flip, scale/crop (zoom in and out), colour.

Per batch on the training device: each image gets its own random zoom
``s`` and shift (one affine warp, :func:`kornia.geometry.transform.warp_affine`;
``s > 1`` crops into the image, ``s < 1`` shrinks it onto a black border),
a horizontal flip with probability 0.5 (unless ``hflip=False``), and a
colour jitter (:class:`kornia.augmentation.ColorJiggle`). Boxes follow the
same ``x' = s x + t`` map, are clipped to the frame, and a box that keeps
less than :data:`MIN_VISIBLE` of its area (or gets narrower than 2 px) is
dropped (its class becomes ``-1``, the padding value).

Presets (``--augment``): ``none``; ``light`` (flip, colour 0.1);
``standard`` (flip, zoom 0.75-1.33, colour 0.2; the default);
``strong`` (flip, zoom 0.5-1.6, colour 0.3). No rotation: it would turn an
axis-aligned box into a looser one. Mosaic was not added: with zoom-out
already giving small objects and a 30-minute CPU budget, it did not pay
for its cost in this code's first version.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from recog.errors import ConfigError

MIN_VISIBLE = 0.35


@dataclass(frozen=True)
class BoxAugmentSpec:
    zoom: tuple[float, float] | None
    color: float
    flip: bool


SPECS = {
    "none": BoxAugmentSpec(None, 0.0, False),
    "light": BoxAugmentSpec(None, 0.1, True),
    "standard": BoxAugmentSpec((0.75, 1.33), 0.2, True),
    "strong": BoxAugmentSpec((0.5, 1.6), 0.3, True),
}


class BoxAugmenter:
    """Augments ``(N, 3, H, W)`` float images in [0, 1] and their ``(N, M, 5)`` padded boxes together.

    Example:
        >>> aug = BoxAugmenter("standard", hflip=True)
        >>> x, gt = aug(torch.rand(2, 3, 64, 64), torch.tensor([[[8., 8., 32., 32., 0.]]] * 2))
        >>> x.shape, gt.shape
        (torch.Size([2, 3, 64, 64]), torch.Size([2, 1, 5]))
    """

    def __init__(self, preset: str = "standard", *, hflip: bool = True, generator: torch.Generator | None = None
                 ) -> None:
        if preset not in SPECS:
            raise ConfigError(f"unknown augmentation preset {preset!r}; expected one of {', '.join(SPECS)}.")
        self.spec = SPECS[preset]
        self.hflip = hflip and self.spec.flip
        self.generator = generator
        self.color = None
        if self.spec.color > 0:
            import kornia.augmentation as K

            c = self.spec.color
            self.color = K.ColorJiggle(brightness=c, contrast=c, saturation=c, hue=c / 4, p=0.8)

    def _uniform(self, n: int, lo: float, hi: float, device: torch.device) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(n, generator=self.generator).to(device)

    def __call__(self, images: torch.Tensor, gt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n, _, h, w = images.shape
        gt = gt.clone()
        boxes, cls = gt[..., :4], gt[..., 4]
        before = (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])
        if self.spec.zoom is not None:
            from kornia.geometry.transform import warp_affine

            lo, hi = self.spec.zoom
            s = torch.exp(self._uniform(n, float(torch.log(torch.tensor(lo))), float(torch.log(torch.tensor(hi))),
                                        images.device))
            free_x, free_y = w * (1 - s), h * (1 - s)
            tx = torch.minimum(free_x, torch.zeros_like(s)) + self._uniform(n, 0, 1, images.device) * free_x.abs()
            ty = torch.minimum(free_y, torch.zeros_like(s)) + self._uniform(n, 0, 1, images.device) * free_y.abs()
            m = torch.zeros(n, 2, 3, device=images.device, dtype=images.dtype)
            m[:, 0, 0], m[:, 1, 1], m[:, 0, 2], m[:, 1, 2] = s, s, tx, ty
            images = warp_affine(images, m, dsize=(h, w), align_corners=False)
            boxes = boxes * s.view(n, 1, 1) + torch.stack([tx, ty, tx, ty], 1).view(n, 1, 4)
            before = before * (s ** 2).view(n, 1)
        if self.hflip:
            flip = self._uniform(n, 0, 1, images.device) < 0.5
            images = torch.where(flip.view(n, 1, 1, 1), images.flip(-1), images)
            flipped = torch.stack([w - boxes[..., 2], boxes[..., 1], w - boxes[..., 0], boxes[..., 3]], -1)
            boxes = torch.where(flip.view(n, 1, 1), flipped, boxes)
        boxes = torch.stack([boxes[..., 0].clamp(0, w), boxes[..., 1].clamp(0, h),
                             boxes[..., 2].clamp(0, w), boxes[..., 3].clamp(0, h)], -1)
        bw, bh = boxes[..., 2] - boxes[..., 0], boxes[..., 3] - boxes[..., 1]
        keep = (bw >= 2) & (bh >= 2) & (bw * bh >= MIN_VISIBLE * before)
        gt = torch.cat([boxes, torch.where(keep, cls, torch.full_like(cls, -1)).unsqueeze(-1)], -1)
        if self.color is not None:
            images = self.color(images).clamp(0, 1)
        return images, gt
