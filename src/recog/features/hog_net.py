"""HOG as a torch network: the feature extractor of the ``hog-svm`` model, exportable like any other.

:class:`HogLinear` computes a histogram of oriented gradients with fixed
(untrained) operations and feeds it to one linear layer, the ``classifier``
head whose weights a linear SVM fitted (:mod:`recog.features.hog_svm`). Being a
native network (``config.json`` + ``model.safetensors``, no pickle), a hog-svm
bundle is a plain ``classify`` bundle: predict, evaluate, serve, ONNX export
and int8 work unchanged.

The HOG follows Dalal & Triggs as scikit-image does: grey input, centred
``[-1, 0, 1]`` gradients, unsigned orientations in ``bins`` bins with linear
interpolation between neighbouring bins, ``cell x cell`` cells, 2x2-cell
blocks with stride one cell, L2-Hys block normalisation (clip 0.2). Orientation
is taken from the doubled-angle vector (``acos`` of a cosine), not ``atan2``,
so the graph exports to ONNX with standard operators. Values differ slightly
from ``skimage.feature.hog`` (no cell-centre spatial interpolation), so the
SVM is always fitted on this module's own output.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F


def hog_feature_size(height: int, width: int, cell: int = 8, bins: int = 9) -> int:
    """Length of the HOG vector for an ``height x width`` input: ``(cells_y - 1) * (cells_x - 1) * 4 * bins``.

    Example:
        >>> hog_feature_size(64, 64)
        1764
    """
    cy, cx = height // cell, width // cell
    if cy < 2 or cx < 2:
        raise ValueError(f"a {height}x{width} input has fewer than 2x2 cells of {cell} pixels")
    return (cy - 1) * (cx - 1) * 4 * bins


class Hog(nn.Module):
    """``(N, 3, H, W)`` RGB in [0, 1] → ``(N, D)`` HOG vectors (:func:`hog_feature_size`)."""

    def __init__(self, cell: int = 8, bins: int = 9) -> None:
        super().__init__()
        self.cell, self.bins = cell, bins
        centres = (torch.arange(bins, dtype=torch.float32) + 0.5) * (math.pi / bins)
        # bin centres in the doubled-angle plane: cos(2 phi), sin(2 phi)
        self.register_buffer("cos2", torch.cos(2 * centres).view(1, bins, 1, 1), persistent=False)
        self.register_buffer("sin2", torch.sin(2 * centres).view(1, bins, 1, 1), persistent=False)
        self.register_buffer("grey", torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = (x * self.grey).sum(1, keepdim=True)
        p = F.pad(g, (1, 1, 1, 1), mode="replicate")
        gx = p[:, :, 1:-1, 2:] - p[:, :, 1:-1, :-2]
        gy = p[:, :, 2:, 1:-1] - p[:, :, :-2, 1:-1]
        mag2 = gx * gx + gy * gy
        mag = torch.sqrt(mag2)
        # clamp, not "+ eps": ONNX Runtime turned (0 + 1e-12) into 0 here (NaN on flat regions)
        denom = mag2.clamp_min(1e-10)
        c2, s2 = (gx * gx - gy * gy) / denom, 2 * gx * gy / denom
        cos_diff = (c2 * self.cos2 + s2 * self.sin2).clamp(-1.0, 1.0)          # cos(2 (theta - phi_b))
        dist = torch.acos(cos_diff) * 0.5                                        # |theta - phi_b| in [0, pi/2]
        votes = mag * F.relu(1.0 - dist * (self.bins / math.pi))                 # linear bin interpolation
        n, _, h, w = votes.shape
        cy, cx = h // self.cell, w // self.cell
        cells = F.avg_pool2d(votes[:, :, : cy * self.cell, : cx * self.cell], self.cell)
        blocks = torch.cat([cells[:, :, :-1, :-1], cells[:, :, :-1, 1:], cells[:, :, 1:, :-1], cells[:, :, 1:, 1:]], 1)
        blocks = blocks / torch.sqrt((blocks * blocks).sum(1, keepdim=True).clamp_min(1e-10))
        blocks = blocks.clamp(max=0.2)
        blocks = blocks / torch.sqrt((blocks * blocks).sum(1, keepdim=True).clamp_min(1e-10))
        return blocks.permute(0, 2, 3, 1).reshape(n, -1)


class HogLinear(nn.Module):
    """HOG features then a linear ``classifier``: ``(N, 3, H, W)`` → ``(N, num_classes)`` scores."""

    def __init__(self, num_classes: int, height: int = 64, width: int = 64, cell: int = 8, bins: int = 9) -> None:
        super().__init__()
        self.features = Hog(cell, bins)
        self.classifier = nn.Linear(hog_feature_size(height, width, cell, bins), num_classes)
        self.recog_config = {"architecture": "hog-linear", "num_classes": num_classes, "height": height,
                             "width": width, "cell": cell, "bins": bins}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def build_hog_linear(num_classes: int, height: int = 64, width: int = 64, cell: int = 8, bins: int = 9) -> HogLinear:
    """The native builder named ``hog-linear`` in :data:`recog.models.native.ARCHITECTURES`."""
    if not (1 <= cell <= 64 and 2 <= bins <= 36 and 1 <= num_classes <= 100_000 and 0 < height * width <= 4096 * 4096):
        raise ValueError(f"hog-linear: cell {cell}, bins {bins}, {num_classes} classes, {height}x{width} out of range")
    return HogLinear(num_classes, height, width, cell, bins)
