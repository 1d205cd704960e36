"""Predictor: preprocessing, a backend that maps batches to logits, postprocessing.

Backends implement :class:`Backend` (``infer(batch) -> logits``). The torch
backend runs the bundle's safetensors weights; other backends (ONNX Runtime)
register themselves in :data:`BACKENDS`.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Callable, Protocol, Sequence

import numpy as np

from recog.errors import ConfigError, ImageError, RecogError
from recog.io import DEFAULT_MAX_PIXELS, load_image
from recog.io.image import ImageSource
from recog.models.bundle import BundleManifest, read_manifest
from recog.types import Classification, Label, ModelInfo, PredictionFailure


class Backend(Protocol):
    """Maps a float32 ``(N, 3, H, W)`` batch to float32 ``(N, C)`` logits."""

    name: str

    def infer(self, batch: np.ndarray) -> np.ndarray: ...


class TorchBackend:
    """PyTorch eager inference on the bundle's weights."""

    name = "torch"

    def __init__(self, manifest: BundleManifest, *, device: str = "cpu", threads: int | None = None,
                 spin: bool = True) -> None:
        """``threads`` sets torch's intra-op threads (process-wide); ``spin`` is an ONNX Runtime
        setting, accepted so that ``load(path, spin=False)`` works whichever backend ``auto`` picks."""
        import torch

        from recog.models.bundle import load_torch_model

        if threads:
            torch.set_num_threads(threads)
        self.device = torch.device(device)
        self.model = load_torch_model(manifest).to(self.device)

    def infer(self, batch: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to(self.device)
            return self.model(pixel_values=x).logits.float().cpu().numpy()


#: backend name → factory(manifest, **options). Extended by recog.runtime.onnx.
BACKENDS: dict[str, Callable[..., Backend]] = {"torch": TorchBackend}


def decode_size(prep) -> tuple[int, int]:
    """(width, height) a reduced JPEG decode must keep for ``prep``'s resize to lose no detail.

    ``shorter_crop`` first resizes the shorter side to ``size / crop_pct``
    (256 for a 224 crop at 0.875), so the decode must stay at least that large.

    Example:
        >>> from recog.types import Preprocessing
        >>> decode_size(Preprocessing(size=(224, 224), crop_pct=0.875))
        (256, 256)
    """
    h, w = prep.size
    if prep.resize == "shorter_crop":
        side = int(-(-max(h, w) // prep.crop_pct))
        return side, side
    return w, h


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of ``(N, C)`` logits, numerically stable."""
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def top_k_labels(probs: np.ndarray, labels: Sequence[str], k: int) -> list[tuple[Label, ...]]:
    """Top-k ``Label`` tuples per row of ``(N, C)`` probabilities, best first."""
    k = max(1, min(k, probs.shape[1]))
    idx = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    return [tuple(Label(labels[j], int(j), float(row[j])) for j in order) for row, order in zip(probs, idx)]


class Predictor:
    """A loaded model: ``predict`` images to :class:`Classification` results.

    Example:
        >>> model = recog.load("runs/pets/best")                # doctest: +SKIP
        >>> model.predict("cat.jpg", top_k=3).to_dict()         # doctest: +SKIP
    """

    def __init__(self, manifest: BundleManifest, backend: Backend, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
        self.manifest = manifest
        self.backend = backend
        self.max_pixels = max_pixels

    @property
    def info(self) -> ModelInfo:
        return self.manifest.info

    @property
    def labels(self) -> tuple[str, ...]:
        return self.manifest.labels

    @property
    def path(self) -> Path:
        return self.manifest.path

    def load_image(self, source: ImageSource):
        """Decode safely, reducing big JPEGs to near the model's input size while decoding."""
        return load_image(source, max_pixels=self.max_pixels, reduce_to=decode_size(self.manifest.preprocessing))

    def preprocess(self, source: ImageSource) -> np.ndarray:
        """Image (path, bytes, PIL, array) → float32 ``(3, H, W)``."""
        from recog.data.transforms import preprocess

        return preprocess(self.load_image(source), self.manifest.preprocessing)

    def infer(self, batch: np.ndarray) -> np.ndarray:
        """float32 ``(N, 3, H, W)`` → float32 ``(N, C)`` logits."""
        return self.backend.infer(batch)

    @property
    def temperature(self) -> float:
        """Softmax temperature fitted on the validation split at training (1.0 when none was)."""
        return float((self.manifest.raw.get("calibration") or {}).get("temperature", 1.0))

    def probabilities(self, logits: np.ndarray) -> np.ndarray:
        """``(N, C)`` logits → calibrated class probabilities (softmax of logits / temperature)."""
        return softmax(np.asarray(logits, dtype=np.float64) / self.temperature)

    def postprocess(self, logits: np.ndarray, *, top_k: int = 5,
                    sources: Sequence[str | None] | None = None) -> list[Classification]:
        probs = self.probabilities(logits)
        tops = top_k_labels(probs, self.labels, top_k)
        sources = sources or [None] * len(tops)
        return [Classification(top=t, source=s) for t, s in zip(tops, sources)]

    def predict(self, images: ImageSource | Sequence[ImageSource], *, top_k: int = 5,
                batch_size: int = 32) -> Classification | list[Classification]:
        """Classify one image or a list of images.

        A single input returns one :class:`Classification`; a list returns a
        list. Any bad image raises (use :meth:`predict_many` to collect failures).
        """
        single = not isinstance(images, (list, tuple))
        items = [images] if single else list(images)
        probs, _, failures = self.probabilities_many(items, batch_size=batch_size)
        if failures:
            raise failures[0][1]
        names = [str(x) if isinstance(x, (str, Path)) else None for x in items]
        results = [Classification(top=t, source=n) for t, n in zip(top_k_labels(probs, self.labels, top_k), names)]
        return results[0] if single else results

    def probabilities_many(self, sources: Sequence[ImageSource], *, batch_size: int = 32, threads: int = 4,
                           progress: Callable[[int], None] | None = None
                           ) -> tuple[np.ndarray, list[int], list[tuple[int, ImageError]]]:
        """Calibrated probabilities for many images, decoding them in a thread pool.

        Returns:
            ``(probs, kept, failures)``: ``(M, C)`` probabilities for the
            source indices in ``kept`` (in order), and ``(index, error)`` for
            each source the safe loader refused.
        """
        from concurrent.futures import ThreadPoolExecutor

        def prepared(src: ImageSource) -> np.ndarray | ImageError:
            try:
                return self.preprocess(src)
            except ImageError as exc:
                return exc

        probs: list[np.ndarray] = []
        kept: list[int] = []
        failures: list[tuple[int, ImageError]] = []
        # one image (the common interactive call) decodes inline: no pool to start
        pool = ThreadPoolExecutor(max_workers=max(1, threads)) if len(sources) > 1 else None
        mapper = pool.map if pool is not None else map
        with pool or contextlib.nullcontext():
            for start in range(0, len(sources), batch_size):
                arrays = []
                for i, x in enumerate(mapper(prepared, sources[start:start + batch_size]), start):
                    if isinstance(x, ImageError):
                        failures.append((i, x))
                    else:
                        kept.append(i)
                        arrays.append(x)
                if arrays:
                    probs.append(self.probabilities(self.infer(np.stack(arrays))))
                if progress:
                    progress(min(batch_size, len(sources) - start))
        return (np.concatenate(probs) if probs else np.zeros((0, len(self.labels)))), kept, failures

    def predict_many(self, sources: Sequence[str | Path], *, top_k: int = 5, batch_size: int = 32,
                     progress: Callable[[int], None] | None = None) -> list[Classification | PredictionFailure]:
        """Classify files in batches, in order; an unreadable file becomes a :class:`PredictionFailure`."""
        sources = list(sources)
        probs, kept, failures = self.probabilities_many(sources, batch_size=batch_size, progress=progress)
        out: list[Classification | PredictionFailure] = [None] * len(sources)  # type: ignore[list-item]
        for i, top in zip(kept, top_k_labels(probs, self.labels, top_k)):
            out[i] = Classification(top=top, source=str(sources[i]))
        for i, exc in failures:
            out[i] = PredictionFailure(str(sources[i]), exc.code, str(exc))
        return out


def load(path: str | Path, *, backend: str = "auto", **options) -> Predictor:
    """Load a model bundle for inference.

    Args:
        path: bundle folder (``runs/NAME/best``).
        backend: ``"torch"``, another registered backend (``"onnx"``,
            ``"onnx-int8"``), or ``"auto"``: the fastest artifact in the bundle
            whose parity check passed, else torch.
        options: backend options (``threads``, ``device``).

    Raises:
        ModelNotFoundError / BundleError / BundleIntegrityError: see
        :func:`recog.models.bundle.read_manifest`.
    """
    manifest = read_manifest(path)
    if backend == "auto":
        # exports run on the CPU; another device means the torch backend
        backend = _auto_backend(manifest) if options.get("device", "cpu") == "cpu" else "torch"
    if backend not in BACKENDS:
        _register_optional_backends()
    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend {backend!r}; expected one of auto, {', '.join(sorted(BACKENDS))}.")
    return Predictor(manifest, BACKENDS[backend](manifest, **options))


def _register_optional_backends() -> None:
    try:
        import recog.runtime.onnx  # noqa: F401  (registers onnx backends)
    except ImportError:
        pass


def _auto_backend(manifest: BundleManifest) -> str:
    """The fastest exported artifact whose parity check passed, else torch."""
    exports = manifest.raw.get("exports") or {}
    verified = [(v.get("speed_rank", 99), name) for name, v in exports.items()
                if v.get("verified") and v.get("file") in manifest.files]
    if verified:
        _register_optional_backends()
        for _, name in sorted(verified):
            if name in BACKENDS:
                return name
    return "torch"


__all__ = ["BACKENDS", "Backend", "Predictor", "RecogError", "TorchBackend", "decode_size", "load", "softmax",
           "top_k_labels"]
