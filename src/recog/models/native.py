"""Networks written in recog itself (not transformers), saved as config.json + model.safetensors.

A native network carries ``recog_config``: a JSON-able dict with its
``architecture`` name and the keyword arguments that rebuild it. The bundle
writes that dict as ``config.json`` and the state dict as safetensors; loading
looks the architecture up in :data:`ARCHITECTURES` (a lazy name → builder
table, so no architecture module is imported until one is used) and never
runs code named by a file.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from recog.errors import BundleError, did_you_mean

if TYPE_CHECKING:
    import torch

#: architecture name → "module:builder"; the builder takes the config's keyword arguments.
ARCHITECTURES = {"efficientnet-lite": "recog.models.efficientnet_lite:build_efficientnet_lite",
                 "patchcore": "recog.anomaly.network:build_patchcore",
                 "hog-linear": "recog.features.hog_net:build_hog_linear",
                 "fcos-lite": "recog.detect.network:build_fcos"}
CONFIG_KEY = "recog_architecture"


def is_native(model: Any) -> bool:
    return isinstance(getattr(model, "recog_config", None), dict)


def build(config: dict[str, Any]) -> "torch.nn.Module":
    """A randomly initialised network from a native ``config.json`` dict."""
    kwargs = dict(config)
    name = kwargs.pop(CONFIG_KEY, None)
    if name not in ARCHITECTURES:
        raise BundleError(f"unknown native architecture {name!r} in config.json.",
                          hint=did_you_mean(str(name), ARCHITECTURES) or "upgrade recog, or re-export the bundle")
    module, attr = ARCHITECTURES[name].split(":")
    return getattr(importlib.import_module(module), attr)(**kwargs)


def save(model: "torch.nn.Module", folder: Path) -> None:
    """Write ``config.json`` and ``model.safetensors`` for a native network."""
    from safetensors.torch import save_file

    config = {CONFIG_KEY: model.recog_config["architecture"],
              **{k: v for k, v in model.recog_config.items() if k != "architecture"}}
    (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(state, str(folder / "model.safetensors"))


def load(folder: Path, config: dict[str, Any]) -> "torch.nn.Module":
    """Rebuild a native network and load its weights; a head saved without weights (an embedder) stays fresh."""
    from safetensors.torch import load_file

    model = build(config)
    state = load_file(str(folder / "model.safetensors"))
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.startswith("classifier.")]
    if missing or unexpected:
        raise BundleError(f"{folder}: model.safetensors does not match config.json "
                          f"(missing {missing[:3]}, unexpected {unexpected[:3]}).")
    return model
