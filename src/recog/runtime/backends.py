"""Backends: what runs a bundle's network on a batch. A lazy name → class table, no self-registration.

Every backend maps a float32 ``(N, 3, H, W)`` batch to the task's raw output
``(N, ...)`` (:meth:`recog.tasks.Task.forward` for torch; the exported graph
for ONNX Runtime). Modules are imported only when their backend is asked for,
so ``import recog.runtime.predictor`` pulls in neither onnxruntime nor a
circular import.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from recog.errors import ConfigError, did_you_mean

if TYPE_CHECKING:
    from recog.models.bundle import BundleManifest
    from recog.tasks import Task


class Backend(Protocol):
    """Maps a float32 ``(N, 3, H, W)`` batch to the task's float32 raw output ``(N, ...)``."""

    name: str

    def infer(self, batch: np.ndarray) -> np.ndarray: ...

    # Optional: ``infer_features(batch) -> (raw, features (N, D) or None)``, both from one forward pass
    # (classifiers: the head's pooled input, L2-normalised; used by the OOD score, recog.monitor.features).


class TorchBackend:
    """PyTorch eager inference on the bundle's safetensors weights."""

    name = "torch"

    def __init__(self, manifest: "BundleManifest", *, task: "Task | None" = None, device: str = "cpu",
                 threads: int | None = None, spin: bool = True) -> None:
        """``threads`` sets torch's intra-op threads (process-wide); ``spin`` is an ONNX Runtime
        setting, accepted so that ``load(path, spin=False)`` works whichever backend ``auto`` picks."""
        import torch

        from recog.tasks import get_task

        if threads:
            torch.set_num_threads(threads)
        self.task = task or get_task(manifest.task)
        self.device = torch.device(device)
        self.model = self.task.load(manifest).to(self.device)

    def infer(self, batch: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to(self.device)
            return self.task.forward(self.model, x).float().cpu().numpy()

    def infer_features(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """``(raw, features or None)`` from one forward pass (tasks with ``forward_features``)."""
        import torch

        both = getattr(self.task, "forward_features", None)
        if both is None:
            return self.infer(batch), None
        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to(self.device)
            raw, features = both(self.model, x)
            return raw.float().cpu().numpy(), None if features is None else features.cpu().numpy()


#: backend name → (module, class, fixed keyword arguments).
BACKENDS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "torch": ("recog.runtime.backends", "TorchBackend", {}),
    "onnx": ("recog.runtime.onnx", "OnnxBackend", {"export": "onnx"}),
    "onnx-int8": ("recog.runtime.onnx", "OnnxBackend", {"export": "onnx-int8"}),
}


def create_backend(name: str, manifest: "BundleManifest", **options: Any) -> Backend:
    """The backend called ``name`` for ``manifest``; unknown names list the known ones."""
    if name not in BACKENDS:
        raise ConfigError(f"unknown backend {name!r}; expected one of auto, {', '.join(sorted(BACKENDS))}.",
                          hint=did_you_mean(name, BACKENDS))
    module, cls, fixed = BACKENDS[name]
    try:
        factory = getattr(importlib.import_module(module), cls)
    except ImportError as exc:
        raise ConfigError(f"backend {name!r} needs a package that is not installed ({exc.name}).",
                          hint="pip install onnxruntime, or use --backend torch") from exc
    return factory(manifest, **fixed, **options)


def auto_backend(manifest: "BundleManifest") -> str:
    """The fastest exported artifact whose parity check passed (by ``speed_rank``), else torch."""
    verified = sorted((v.get("speed_rank", 99), name) for name, v in manifest.exports.items()
                      if v.get("verified") and v.get("file") in manifest.files and name in BACKENDS)
    return verified[0][1] if verified else "torch"
