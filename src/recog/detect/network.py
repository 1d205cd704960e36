"""The default detector: FCOS on a pretrained EfficientNet-Lite with a small feature pyramid.

Why FCOS (Tian et al., "FCOS: Fully Convolutional One-Stage Object
Detection", ICCV 2019; with the later centre sampling, GIoU and
stride-normalised regression) over the other anchor-free single stages:

* **vs CenterNet**: CenterNet predicts one peak per object on a single
  stride-4 map; overlapping objects of similar size (blood cells, shelf
  products) collide on the same peak, and it needs long schedules (140+
  epochs) to converge. FCOS lets every location inside an object's centre
  region vote, on the pyramid level that suits the object's size, which
  converges in tens of epochs on a few hundred photos: the budget here is
  30 minutes on 2 CPU cores.
* **vs YOLOX**: YOLOX's SimOTA assignment solves a small optimal-transport
  problem per image per step (cost matrices of all locations x objects plus
  a top-k per object), which costs more per step on a CPU, and its strong
  mosaic/mixup recipe assumes hundreds of epochs. FCOS's static
  assignment (inside the object's centre region and in the level's size
  range; the smallest object wins a location) is a few tensor comparisons.
* **vs anchors (RetinaNet, SSD)**: no anchor sizes or ratios to tune, so
  the same defaults hold on data sets we have not seen (the issue's two
  unseen single-class sets).

Network: EfficientNet-Lite stem and blocks to the end of its last stage
(the 1280-channel head conv and the classifier are dropped); the ends of
stages 3, 5 and 7 (strides 8, 16, 32; 40, 112, 320 channels for lite0)
feed a top-down feature pyramid of ``channels`` (64) channels; a head
shared across levels (``head_convs`` 3x3 conv + GroupNorm + ReLU per tower)
predicts per location the class logits, the distances to the box's four
sides (``exp(scale_level * t) * stride``), and the centre-ness logit.

Output (:meth:`FCOSLite.forward`, what every backend and the ONNX graph
move): ``(N, A, 4 + C)``: per location a decoded ``[x1, y1, x2, y2]`` box in
input pixels and ``C`` class scores ``sqrt(sigmoid(class) * sigmoid(centre-ness))``.
Score thresholding and per-class NMS run after the graph
(:func:`recog.detect.postprocess.decode_detections`).

Importing this module imports torch.
"""

from __future__ import annotations

import math
import torch
import torch.nn.functional as F
from torch import nn

from recog.errors import ConfigError

STRIDES = (8, 16, 32)
#: FCOS's size ranges per level (``max(l, t, r, b)`` of a location inside the box), in input pixels.
SIZE_RANGES = ((0.0, 64.0), (64.0, 128.0), (128.0, float("inf")))
DEFAULT_IMAGE_SIZE = 448
#: stem and first 5 blocks (strides 2-8: 0.6 vs 1.0 CPU-s per training image at 320 px with 3) keep ImageNet weights
FROZEN_BLOCKS = 5
_PRIOR = 0.01  # initial foreground probability of the class logits (focal loss's prior)


def _stage_ends(blocks: nn.ModuleList) -> list[int]:
    """Index of the last block of each of the backbone's 7 stages."""
    outs = [b.project_conv.out_channels for b in blocks]
    strides = [b.dw_conv.stride[0] for b in blocks]
    ends = []
    for i in range(len(blocks)):
        last = i == len(blocks) - 1
        if last or outs[i + 1] != outs[i] or strides[i + 1] != 1:
            ends.append(i)
    return ends


def _freeze(module: nn.Module) -> None:
    """Turn ``module``'s parameters into buffers: saved and loaded under the same names, never trained.

    (Buffers, not ``requires_grad=False``: the trainer sets ``requires_grad`` on every backbone
    parameter each epoch.)
    """
    for m in module.modules():
        for name, p in list(m._parameters.items()):
            if p is not None:
                del m._parameters[name]
                m.register_buffer(name, p.detach())


def _run(blocks: nn.ModuleList, first: int, last: int, x: torch.Tensor) -> torch.Tensor:
    """``x`` through ``blocks[first..last]``."""
    for block in blocks[first:last + 1]:
        x = block(x)
    return x


def _tower(channels: int, convs: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for _ in range(convs):
        layers += [nn.Conv2d(channels, channels, 3, padding=1, bias=False), nn.GroupNorm(16, channels), nn.ReLU()]
    return nn.Sequential(*layers)


class DetectionHead(nn.Module):
    """The feature pyramid and the shared FCOS head (everything trained from scratch)."""

    def __init__(self, in_channels: list[int], channels: int, num_classes: int, head_convs: int) -> None:
        super().__init__()
        self.lateral = nn.ModuleList(nn.Conv2d(c, channels, 1) for c in in_channels)
        self.smooth = nn.ModuleList(nn.Conv2d(channels, channels, 3, padding=1) for _ in in_channels)
        self.cls_tower = _tower(channels, head_convs)
        self.reg_tower = _tower(channels, head_convs)
        self.cls_out = nn.Conv2d(channels, num_classes, 3, padding=1)
        self.reg_out = nn.Conv2d(channels, 4, 3, padding=1)
        self.ctr_out = nn.Conv2d(channels, 1, 3, padding=1)
        self.scales = nn.Parameter(torch.ones(len(in_channels)))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, std=0.01)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        nn.init.constant_(self.cls_out.bias, -math.log((1 - _PRIOR) / _PRIOR))

    def forward(self, feats: list[torch.Tensor]) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        laterals = [conv(f) for conv, f in zip(self.lateral, feats)]
        for i in range(len(laterals) - 1, 0, -1):
            laterals[i - 1] = laterals[i - 1] + F.interpolate(laterals[i], size=laterals[i - 1].shape[-2:],
                                                              mode="nearest")
        out = []
        for level, (smooth, lat) in enumerate(zip(self.smooth, laterals)):
            p = smooth(lat)
            c, r = self.cls_tower(p), self.reg_tower(p)
            reg = (self.scales[level] * self.reg_out(r)).clamp(max=8.0)
            out.append((self.cls_out(c), reg, self.ctr_out(r)))
        return out


class FCOSLite(nn.Module):
    """FCOS on EfficientNet-Lite (see the module docstring).

    Attributes:
        head: the pyramid and head (:meth:`recog.tasks.Task.head`: trained from scratch).
        num_classes: class outputs per location.

    Example:
        >>> m = FCOSLite("lite0", num_classes=3).eval()
        >>> m(torch.zeros(1, 3, 128, 128)).shape      # 16*16 + 8*8 + 4*4 locations
        torch.Size([1, 336, 7])
    """

    def __init__(self, variant: str = "lite0", num_classes: int = 1, channels: int = 64, head_convs: int = 2,
                 frozen_blocks: int = FROZEN_BLOCKS) -> None:
        super().__init__()
        from recog.models.efficientnet_lite import build_efficientnet_lite

        if num_classes < 1:
            raise ConfigError(f"a detector needs at least one class, got num_classes={num_classes}.")
        self.recog_config = {"architecture": "fcos-lite", "variant": variant, "num_classes": num_classes,
                             "channels": channels, "head_convs": head_convs, "frozen_blocks": frozen_blocks}
        self.num_classes = num_classes
        self.variant = variant
        self.backbone = build_efficientnet_lite(variant, num_classes=1)
        ends = _stage_ends(self.backbone.blocks)
        self.taps = [ends[2], ends[4], ends[6]]
        self.backbone.blocks = nn.ModuleList(list(self.backbone.blocks)[:self.taps[-1] + 1])
        # the classification parts of the backbone are not used by the detector
        del self.backbone.conv_head, self.backbone.bn_head, self.backbone.classifier, self.backbone.dropout
        in_channels = [self.backbone.blocks[t].project_conv.out_channels for t in self.taps]
        self.head = DetectionHead(in_channels, channels, num_classes, head_convs)
        for module in [self.backbone.conv_stem, self.backbone.bn_stem, *self.backbone.blocks[:frozen_blocks]]:
            _freeze(module)

    def train(self, mode: bool = True) -> "FCOSLite":
        """Train mode for the head; the backbone's batch norms keep their ImageNet statistics (batches of
        8 images estimate them badly, as in FCOS's frozen BN)."""
        super().train(mode)
        for m in self.backbone.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.eval()
        return self

    def load_pretrained(self) -> "FCOSLite":
        """The installed ImageNet weights into the backbone (the head stays fresh)."""
        from recog.models.efficientnet_lite import build_efficientnet_lite, load_imagenet_weights

        full = load_imagenet_weights(build_efficientnet_lite(self.variant))
        state = {k: v for k, v in full.state_dict().items()
                 if k.startswith(("conv_stem", "bn_stem")) or
                 (k.startswith("blocks.") and int(k.split(".")[1]) <= self.taps[-1])}
        missing, unexpected = self.backbone.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise ConfigError(f"EfficientNet-Lite weights do not fit the detector backbone "
                              f"(missing {missing[:3]}, unexpected {unexpected[:3]}).")
        return self

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The tapped stage ends: ``[(N, 40, H/8, W/8), (N, 112, H/16, W/16), (N, 320, H/32, W/32)]`` for lite0."""
        b = self.backbone
        x = F.relu6(b.bn_stem(b.conv_stem(x)))
        feats = []
        starts = [0] + [t + 1 for t in self.taps[:-1]]
        for start, tap in zip(starts, self.taps):
            x = _run(b.blocks, start, tap, x)
            feats.append(x)
        return feats

    def raw(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Training outputs, locations flattened over the levels (``A`` in total).

        Returns:
            ``cls`` ``(N, A, C)`` logits, ``ltrb`` ``(N, A, 4)`` distances in input pixels,
            ``ctr`` ``(N, A)`` centre-ness logits, ``points`` ``(A, 2)`` location centres (x, y),
            ``strides`` ``(A,)``, ``ranges`` ``(A, 2)`` the level's size range.
        """
        levels = self.head(self.features(x))
        cls, ltrb, ctr, points, strides, ranges = [], [], [], [], [], []
        for (c, r, t), stride, (lo, hi) in zip(levels, STRIDES, SIZE_RANGES):
            n, _, h, w = c.shape
            cls.append(c.permute(0, 2, 3, 1).reshape(n, h * w, -1))
            ltrb.append(torch.exp(r).permute(0, 2, 3, 1).reshape(n, h * w, 4) * stride)
            ctr.append(t.reshape(n, h * w))
            ys = (torch.arange(h, device=c.device, dtype=c.dtype) + 0.5) * stride
            xs = (torch.arange(w, device=c.device, dtype=c.dtype) + 0.5) * stride
            gy, gx = torch.meshgrid(ys, xs, indexing="ij")
            points.append(torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=1))
            strides.append(torch.full((h * w,), float(stride), device=c.device, dtype=c.dtype))
            ranges.append(torch.tensor([lo, hi], device=c.device, dtype=c.dtype).expand(h * w, 2))
        return {"cls": torch.cat(cls, 1), "ltrb": torch.cat(ltrb, 1), "ctr": torch.cat(ctr, 1),
                "points": torch.cat(points, 0), "strides": torch.cat(strides, 0), "ranges": torch.cat(ranges, 0)}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, 3, H, W)`` normalized pixels → ``(N, A, 4 + C)`` boxes (input pixels) and class scores."""
        return pack(self.raw(x))


def pack(raw: dict[str, torch.Tensor]) -> torch.Tensor:
    """Raw outputs → ``(N, A, 4 + C)``: decoded xyxy boxes and ``sqrt(sigmoid(cls) * sigmoid(ctr))`` scores."""
    p, d = raw["points"], raw["ltrb"]
    boxes = torch.cat([p - d[..., :2], p + d[..., 2:]], dim=-1)
    scores = torch.sqrt(torch.sigmoid(raw["cls"]) * torch.sigmoid(raw["ctr"]).unsqueeze(-1))
    return torch.cat([boxes, scores], dim=-1)


def build_fcos(variant: str = "lite0", num_classes: int = 1, channels: int = 64, head_convs: int = 2,
               frozen_blocks: int = FROZEN_BLOCKS) -> FCOSLite:
    """A randomly initialised :class:`FCOSLite` from its ``config.json`` fields (see :mod:`recog.models.native`)."""
    return FCOSLite(variant, num_classes, channels, head_convs, frozen_blocks)
