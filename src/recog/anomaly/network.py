"""The anomaly network: a pretrained backbone's mid-level patch features and a memory bank of good patches.

PatchCore (Roth et al., "Towards Total Recall in Industrial Anomaly
Detection", CVPR 2022), without the learning: a patch is anomalous when its
feature is far from every patch feature seen on good images.

* **Patch features**: two intermediate feature maps of the backbone, each
  locally aggregated with a 3x3 average and brought to one grid (a finer map
  average-pooled down, a coarser one upsampled bilinearly), concatenated:
  ``(N, D, h, w)``. For EfficientNet-Lite: the ends of its 2nd and 3rd
  stages (24 channels at stride 4, 40 at stride 8) on the stride-8 grid, so
  ``D = 64`` and ``h = ceil(H / 8)`` (lite0/1). Chosen on pcb (README) over
  stages 3+4, 3+5, 3+4+5, 2+3+4 and 2+3 on the stride-4 grid.
* **Memory bank**: ``(M, D)`` good patch features chosen by greedy k-center
  (:mod:`recog.anomaly.coreset`), a buffer of this module, so it is saved in
  ``model.safetensors`` beside the backbone weights and hashed with them.
* **Scores**: the exact Euclidean distance of every patch to its nearest bank
  entry, computed as ``|x|² - 2 x·b + |b|²`` in chunks of the bank (no
  ``(patches, M)`` matrix larger than ``chunk`` columns); the output is
  ``(N, h * w)`` (flattened so that every backend, the batcher and the ONNX
  export move one 2-D array; :func:`recog.anomaly.maps.grid_shape` recovers ``(h, w)``).

Cost: one backbone pass (lite0 truncated after its 3rd stage) plus ``h·w·M·D``
multiply-adds for the search, which dominates at large banks: see the
README's "Visual quality control" section for the measured bank-size /
latency trade-off.

Other backbones: any transformers image model from the registry works
through its ``hidden_states`` (4-D maps, or ViT tokens laid back on their
grid); the two middle hidden states are tapped. Only EfficientNet-Lite has
ImageNet weights that install offline here.

Importing this module imports torch.
"""

from __future__ import annotations

import json
import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from recog.errors import ConfigError
from recog.tasks.classify import hidden_states

#: EfficientNet-Lite stages whose outputs are the patch features (0-based; strides 4 and 8) ...
LITE_LAYERS = (1, 2)
#: ... and which of them sets the output grid (stride 8).
LITE_GRID_FROM = 1
#: bank rows per chunk of the nearest-neighbour search.
DEFAULT_CHUNK = 2048
#: Square input size for EfficientNet-Lite backbones, measured on pcb (README "Visual quality control").
DEFAULT_IMAGE_SIZE = 512


def _stage_ends(blocks: nn.ModuleList) -> list[int]:
    """Index of the last block of each stage: where the output channel count changes next."""
    outs = [b.project_conv.out_channels for b in blocks]
    return [i for i in range(len(outs)) if i == len(outs) - 1 or outs[i + 1] != outs[i]]


class _LiteTrunk(nn.Module):
    """EfficientNet-Lite stem and blocks up to the last tapped stage; returns the tapped maps."""

    def __init__(self, variant: str, layers: list[int]) -> None:
        super().__init__()
        from recog.models.efficientnet_lite import build_efficientnet_lite

        full = build_efficientnet_lite(variant, num_classes=1)
        ends = _stage_ends(full.blocks)
        if not layers or any(not 0 <= s < len(ends) for s in layers) or sorted(set(layers)) != list(layers):
            raise ConfigError(f"EfficientNet-Lite stages to tap must be increasing indices in 0..{len(ends) - 1}, "
                              f"got {layers}.")
        self.taps = [ends[s] for s in layers]
        self.conv_stem, self.bn_stem = full.conv_stem, full.bn_stem
        self.blocks = nn.ModuleList(list(full.blocks)[:self.taps[-1] + 1])
        self.channels = [self.blocks[t].project_conv.out_channels for t in self.taps]

    @torch.no_grad()
    def fuse(self) -> "_LiteTrunk":
        """Fold every batch norm into the convolution before it (inference only; in place)."""
        pairs = [(self, "conv_stem", "bn_stem")]
        for block in self.blocks:
            pairs += [(block, c, b) for c, b in (("expand_conv", "expand_bn"), ("dw_conv", "dw_bn"),
                                                 ("project_conv", "project_bn")) if hasattr(block, c)]
        for owner, c, b in pairs:
            conv, bn = getattr(owner, c), getattr(owner, b)
            if isinstance(bn, nn.Identity):
                continue
            scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
            conv.weight.mul_(scale.view(-1, 1, 1, 1))
            bias = bn.bias - bn.running_mean * scale
            conv.bias = nn.Parameter(bias if conv.bias is None else conv.bias * scale + bias)
            setattr(owner, b, nn.Identity())
        return self

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = F.relu6(self.bn_stem(self.conv_stem(x)))
        out = []
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i in self.taps:
                out.append(x)
        return out


class _HiddenStates(nn.Module):
    """A transformers base model; returns the chosen ``hidden_states`` as ``(N, C, h, w)`` maps."""

    def __init__(self, config: dict[str, Any], layers: list[int]) -> None:
        super().__init__()
        from transformers import CONFIG_MAPPING, AutoModel

        model_type = config.get("model_type")
        if model_type not in CONFIG_MAPPING:
            raise ConfigError(f"unknown transformers model_type {model_type!r} for the anomaly backbone.")
        self.model = AutoModel.from_config(CONFIG_MAPPING[model_type].from_dict(config))
        pooler = getattr(self.model, "pooler", None)
        if isinstance(pooler, nn.Module) and any(True for _ in pooler.parameters()):
            self.model.pooler = None  # a trained pooler (ViT) is not used, and the classifier's base model has none
        self.layers = list(layers)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        states = hidden_states(self.model, x)
        maps = []
        for i in self.layers:
            h = states[i]
            if h.dim() == 3:  # tokens (ViT): drop the class/register tokens, lay the rest on the patch grid
                side = int(math.isqrt(h.shape[1]))
                grid = h[:, h.shape[1] - side * side:]
                h = grid.transpose(1, 2).reshape(h.shape[0], h.shape[2], side, side)
            maps.append(h)
        return maps


def _patch_features(maps: list[torch.Tensor], grid_from: int = 0) -> torch.Tensor:
    """Tapped maps → ``(N, D, h, w)`` on the grid of ``maps[grid_from]``: each 3x3-averaged, a finer map
    average-pooled down (by its integer factor), a coarser one upsampled bilinearly, concatenated."""
    h, w = maps[grid_from].shape[-2:]
    out = []
    for m in maps:
        m = F.avg_pool2d(m.float(), 3, stride=1, padding=1, count_include_pad=False)
        factor = m.shape[-2] // h
        if factor >= 2:
            m = F.avg_pool2d(m, factor, stride=factor, ceil_mode=True, count_include_pad=False)
        if m.shape[-2:] != (h, w):
            m = F.interpolate(m, size=(h, w), mode="bilinear", align_corners=False)
        out.append(m)
    return torch.cat(out, dim=1)


class PatchCoreNet(nn.Module):
    """Backbone trunk + memory bank: normalized ``(N, 3, H, W)`` → nearest-bank distances ``(N, h * w)``.

    Attributes:
        memory_bank: ``(M, D)`` float32 good patch features (a buffer, saved in safetensors).
        feature_dim: ``D``.
        recog_config: what rebuilds this module from a bundle's config.json (see recog.models.native).

    Example:
        >>> net = build_patchcore("lite0", [1, 2], bank_size=1, feature_dim=64, grid_from=1).eval()
        >>> net(torch.zeros(1, 3, 64, 64)).shape
        torch.Size([1, 64])
    """

    def __init__(self, backbone: str, layers: list[int], bank_size: int, feature_dim: int,
                 backbone_config: dict[str, Any] | None = None, chunk: int = DEFAULT_CHUNK,
                 grid_from: int = 0) -> None:
        super().__init__()
        if not 0 <= grid_from < len(layers):
            raise ConfigError(f"grid_from must index the {len(layers)} tapped layers, got {grid_from}.")
        if bank_size < 1 or feature_dim < 1 or chunk < 1:
            raise ConfigError(f"bank_size, feature_dim and chunk must be >= 1, got {bank_size}, {feature_dim}, {chunk}.")
        if backbone == "transformers":
            if not isinstance(backbone_config, dict):
                raise ConfigError("a transformers anomaly backbone needs its backbone_config.")
            self.trunk: nn.Module = _HiddenStates(backbone_config, layers)
        elif backbone in ("lite0", "lite1", "lite2"):
            self.trunk = _LiteTrunk(backbone, list(layers))
        else:
            raise ConfigError(f"unknown anomaly backbone {backbone!r}; expected lite0, lite1, lite2 or transformers.")
        self.feature_dim = feature_dim
        self.chunk = chunk
        self.grid_from = grid_from
        self.register_buffer("memory_bank", torch.zeros(bank_size, feature_dim))
        self.recog_config = {"architecture": "patchcore", "backbone": backbone, "layers": list(layers),
                             "bank_size": bank_size, "feature_dim": feature_dim, "chunk": chunk,
                             "grid_from": grid_from}
        if backbone_config is not None:
            self.recog_config["backbone_config"] = backbone_config

    def fuse(self) -> "PatchCoreNet":
        """Fold the backbone's batch norms into its convolutions for inference (EfficientNet-Lite; in place).

        The result gives the same scores (to float rounding) about 10% faster on a CPU; its state dict
        no longer matches config.json, so fuse only a loaded network, never one about to be saved.
        """
        if isinstance(self.trunk, _LiteTrunk):
            self.trunk.fuse()
        return self.eval()

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Normalized ``(N, 3, H, W)`` → patch features ``(N, D, h, w)``."""
        f = _patch_features(self.trunk(x), self.grid_from)
        if f.shape[1] != self.feature_dim:
            raise ConfigError(f"the backbone gives {f.shape[1]}-dim patch features, the bank holds "
                              f"{self.feature_dim}-dim ones.")
        return f

    def set_bank(self, bank: torch.Tensor) -> None:
        """Replace the memory bank with ``(M, D)`` features (the recorded ``bank_size`` follows)."""
        if bank.dim() != 2 or bank.shape[1] != self.feature_dim or len(bank) < 1:
            raise ConfigError(f"a memory bank must be (M >= 1, {self.feature_dim}), got {tuple(bank.shape)}.")
        self.memory_bank = bank.detach().float().contiguous().to(self.memory_bank.device)
        self.recog_config["bank_size"] = int(bank.shape[0])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.features(x)
        n, d = f.shape[:2]
        return nearest_distance(f.flatten(2).transpose(1, 2).reshape(-1, d), self.memory_bank,
                                self.chunk).reshape(n, -1)


def nearest_distance(x: torch.Tensor, bank: torch.Tensor, chunk: int = DEFAULT_CHUNK) -> torch.Tensor:
    """Euclidean distance of each row of ``x`` ``(P, D)`` to its nearest row of ``bank`` ``(M, D)`` → ``(P,)``.

    Exact; the ``(P, chunk)`` distance block is the largest temporary.

    Example:
        >>> nearest_distance(torch.tensor([[0.0, 0.0], [3.0, 4.0]]), torch.tensor([[0.0, 0.0]]))
        tensor([0., 5.])
    """
    xx = (x * x).sum(1, keepdim=True)
    best = None
    for start in range(0, bank.shape[0], chunk):
        b = bank[start:start + chunk]
        d2 = (xx - 2.0 * (x @ b.T) + (b * b).sum(1)[None, :]).amin(dim=1)
        best = d2 if best is None else torch.minimum(best, d2)
    return best.clamp_min(0.0).sqrt()


def build_patchcore(backbone: str, layers: list, bank_size: int, feature_dim: int,
                    backbone_config: dict | None = None, chunk: int = DEFAULT_CHUNK,
                    grid_from: int = 0) -> PatchCoreNet:
    """A :class:`PatchCoreNet` with a zero bank and random weights (the bundle loader fills both)."""
    return PatchCoreNet(backbone, [int(v) for v in layers], bank_size, feature_dim, backbone_config, chunk,
                        grid_from)


def create_anomaly_model(source: str, *, weights: str | None = None, image_size: int | None = None) -> Any:
    """A :class:`~recog.models.registry.CreatedModel` holding a :class:`PatchCoreNet` on ``source``'s backbone
    (one-row zero bank) and its preprocessing: the backbone's mean/std, ``stretch`` resizing (the whole
    image is inspected) and, for EfficientNet-Lite, :data:`DEFAULT_IMAGE_SIZE` unless ``image_size`` is given.
    """
    import dataclasses

    from recog.models.efficientnet_lite import EfficientNetLite
    from recog.models.registry import CreatedModel, create_model

    created = create_model(source, ["feature"], weights=weights, image_size=image_size)
    prep = dataclasses.replace(created.preprocessing, resize="stretch", crop_pct=1.0)
    if image_size is None and isinstance(created.model, EfficientNetLite):
        prep = dataclasses.replace(prep, size=(DEFAULT_IMAGE_SIZE, DEFAULT_IMAGE_SIZE))
    return CreatedModel(from_classifier(created.model).eval(), prep, created.source, created.weights)


def from_classifier(model: nn.Module) -> PatchCoreNet:
    """A :class:`PatchCoreNet` sharing ``model``'s backbone weights (EfficientNet-Lite or transformers), bank of 1.

    The trunk is built fresh and the classifier's matching weights are copied
    in, so the result is independent of ``model``.
    """
    from recog.models.efficientnet_lite import EfficientNetLite

    if isinstance(model, EfficientNetLite):
        net = PatchCoreNet(model.variant, list(LITE_LAYERS), 1, 1, grid_from=LITE_GRID_FROM)
        own = net.trunk.state_dict()
        net.trunk.load_state_dict({k: v for k, v in model.state_dict().items() if k in own})
    elif hasattr(model, "config") and hasattr(model, "base_model"):
        config = json.loads(model.base_model.config.to_json_string(use_diff=False))
        for key in ("id2label", "label2id", "num_labels", "architectures", "transformers_version", "torch_dtype",
                    "dtype"):
            config.pop(key, None)
        n_states = _count_hidden_states(model.base_model)
        mid = max(1, min(n_states // 2, n_states - 2))
        net = PatchCoreNet("transformers", [mid, mid + 1], 1, 1, backbone_config=config)
        own = net.trunk.model.state_dict()
        net.trunk.model.load_state_dict({k: v for k, v in model.base_model.state_dict().items() if k in own})
    else:
        raise ConfigError(f"{type(model).__name__} is neither EfficientNet-Lite nor a transformers image model; "
                          "the anomaly task cannot tap its feature maps.",
                          hint="use --model efficientnet-lite0 (the default)")
    dim = _feature_dim(net)
    net.feature_dim = dim
    net.memory_bank = torch.zeros(1, dim)
    net.recog_config["feature_dim"] = dim
    return net


def _count_hidden_states(base: nn.Module) -> int:
    cfg = base.config
    size = getattr(cfg, "image_size", 32)
    size = size if isinstance(size, int) else 32
    with torch.no_grad():
        return len(hidden_states(base, torch.zeros(1, getattr(cfg, "num_channels", 3), size, size)))


def _feature_dim(net: PatchCoreNet) -> int:
    trunk = net.trunk
    if isinstance(trunk, _LiteTrunk):
        return sum(trunk.channels)
    cfg = trunk.model.config
    size = getattr(cfg, "image_size", 32)
    size = size if isinstance(size, int) else 32
    with torch.no_grad():
        return int(_patch_features(trunk.eval()(torch.zeros(1, 3, size, size)), net.grid_from).shape[1])
