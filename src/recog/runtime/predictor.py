"""Predictor: safe decode and preprocessing, a backend, the task's postprocessing.

``recog.load(path)`` reads and verifies the bundle, looks its task up
(:func:`recog.tasks.get_task`) and picks a backend
(:mod:`recog.runtime.backends`). The predictor never reads model outputs
itself: :meth:`Predictor.predict` hands the backend's raw output to the task,
which returns typed results (:class:`~recog.types.Classification`,
:class:`~recog.types.Embedding`, ...).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from recog.errors import ImageError, RecogError
from recog.io import DEFAULT_MAX_PIXELS
from recog.io.image import ImageSource
from recog.models.bundle import BundleManifest, read_manifest
from recog.runtime.backends import Backend, auto_backend, create_backend
from recog.types import ModelInfo, PredictionFailure

if TYPE_CHECKING:
    from recog.tasks import Task


class Predictor:
    """A loaded model: ``predict`` images to the task's typed results.

    Example:
        >>> model = recog.load("runs/pets/best")                # doctest: +SKIP
        >>> model.predict("cat.jpg", top_k=3).to_dict()         # doctest: +SKIP
        >>> model.embed(["a.jpg", "b.jpg"]).shape               # doctest: +SKIP
    """

    def __init__(self, manifest: BundleManifest, backend: Backend, *, task: "Task | None" = None,
                 max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
        from recog.tasks import get_task

        self.manifest = manifest
        self.backend = backend
        self.task = task or get_task(manifest.task)
        self.max_pixels = max_pixels
        self._embedder: Predictor | None = None
        self._scored: bool | None = None

    @property
    def info(self) -> ModelInfo:
        return self.manifest.info

    @property
    def labels(self) -> tuple[str, ...]:
        return self.manifest.labels

    @property
    def path(self) -> Path:
        return self.manifest.path

    def preprocess(self, source: ImageSource) -> np.ndarray:
        """Image (path, bytes, PIL, array) → float32 ``(3, H, W)``, decoded by the safe loader."""
        from recog.data.decode import decode_to_input
        from recog.data.transforms import normalize

        return normalize(decode_to_input(source, self.manifest.preprocessing, max_pixels=self.max_pixels),
                         self.manifest.preprocessing)

    def infer(self, batch: np.ndarray) -> np.ndarray:
        """float32 ``(N, 3, H, W)`` → the task's raw output ``(N, ...)``."""
        return self.backend.infer(batch)

    def infer_wide(self, batch: np.ndarray) -> np.ndarray:
        """The raw output and, when the backend returns them (classifiers: :meth:`Backend.infer_features`),
        the pooled features side by side, ``(N, C + D)``, from one forward pass; else :meth:`infer`."""
        both = getattr(self.backend, "infer_features", None)
        if both is None:
            return self.infer(batch)
        raw, features = both(batch)
        return raw if features is None else np.concatenate([raw, features.astype(raw.dtype)], axis=1)

    def infer_scored(self, batch: np.ndarray) -> np.ndarray:
        """What predictions run: :meth:`infer_wide` when the bundle's OOD score uses embedding distance
        (:func:`recog.monitor.ood.has_features`), else :meth:`infer`. The task splits it back."""
        from recog.monitor.ood import has_features

        if self._scored is None:
            self._scored = self.task.name == "classify" and has_features(self.manifest)
        return self.infer_wide(batch) if self._scored else self.infer(batch)

    def postprocess(self, raw: np.ndarray, *, sources: Sequence[str | None] | None = None,
                    **options: Any) -> list[Any]:
        """Raw outputs → typed results (options such as ``top_k`` go to the task)."""
        return self.task.postprocess(raw, self.manifest, sources=sources or [None] * len(raw), **options)

    def outputs_many(self, sources: Sequence[ImageSource], *, batch_size: int = 32, threads: int = 4,
                     progress: Callable[[int], None] | None = None,
                     infer: Callable[[np.ndarray], np.ndarray] | None = None
                     ) -> tuple[np.ndarray, list[int], list[tuple[int, ImageError]]]:
        """Raw outputs for many images (of ``infer``, default :meth:`infer`), decoding each batch in a thread pool.

        Returns:
            ``(raw, kept, failures)``: outputs ``(M, ...)`` for the source
            indices in ``kept`` (in order), and ``(index, error)`` for each
            source the safe loader refused.
        """
        from concurrent.futures import ThreadPoolExecutor

        from recog.data.decode import decode_many

        raws: list[np.ndarray] = []
        kept: list[int] = []
        failures: list[tuple[int, ImageError]] = []
        pool = ThreadPoolExecutor(max_workers=max(1, threads)) if len(sources) > 1 else None
        try:
            for start in range(0, len(sources), batch_size):
                done = decode_many(sources[start:start + batch_size], self.preprocess, pool=pool)
                kept += [start + i for i in done.kept]
                failures += [(start + i, exc) for i, exc in done.failures]
                if done.items:
                    raws.append((infer or self.infer)(np.stack(done.items)))
                if progress:
                    progress(min(batch_size, len(sources) - start))
        finally:
            if pool is not None:
                pool.shutdown()
        return (np.concatenate(raws) if raws else np.zeros((0, 0), np.float32)), kept, failures

    def predict(self, images: ImageSource | Sequence[ImageSource], *, batch_size: int = 32,
                **options: Any) -> Any:
        """Results for one image or a list of images (options such as ``top_k=3`` go to the task).

        A single input returns one result; a list returns a list. Any bad
        image raises (use :meth:`predict_many` to collect failures).
        """
        single = not isinstance(images, (list, tuple))
        items = [images] if single else list(images)
        raw, _, failures = self.outputs_many(items, batch_size=batch_size, infer=self.infer_scored)
        if failures:
            raise failures[0][1]
        names = [str(x) if isinstance(x, (str, Path)) else None for x in items]
        if "image_sizes" not in options:  # boxes (detect, anomaly) in pixels of in-memory inputs too
            options["image_sizes"] = [_frame(x) for x in items]
        results = self.postprocess(raw, sources=names, **options)
        return results[0] if single else results

    def predict_many(self, sources: Sequence[str | Path], *, batch_size: int = 32,
                     progress: Callable[[int], None] | None = None, **options: Any) -> list[Any]:
        """Results for files in batches, in order; an unreadable file becomes a :class:`PredictionFailure`."""
        sources = list(sources)
        raw, kept, failures = self.outputs_many(sources, batch_size=batch_size, progress=progress,
                                                infer=self.infer_scored)
        out: list[Any] = [None] * len(sources)
        results = self.postprocess(raw, sources=[str(sources[i]) for i in kept], **options) if kept else []
        for i, result in zip(kept, results):  # no postprocessing of an empty output when every file failed
            out[i] = result
        for i, exc in failures:
            out[i] = PredictionFailure(str(sources[i]), exc.code, str(exc))
        return out

    def embedder(self) -> "Predictor":
        """This model as an embedder (the ``embed`` task on the same weights, torch backend)."""
        from recog.runtime.backends import TorchBackend
        from recog.tasks import get_task

        if self.task.name == "embed":
            return self
        if self._embedder is None:
            embed = get_task("embed")
            device = str(getattr(self.backend, "device", "cpu"))
            self._embedder = Predictor(self.manifest, TorchBackend(self.manifest, task=embed, device=device),
                                       task=embed, max_pixels=self.max_pixels)
        return self._embedder

    def embed(self, images: ImageSource | Sequence[ImageSource], *, batch_size: int = 32) -> np.ndarray:
        """L2-normalised embeddings: ``(N, D)`` float32 for a list, ``(D,)`` for one image.

        Any bad image raises (``recog embed`` and :meth:`outputs_many` collect failures instead).
        """
        model = self.embedder()
        single = not isinstance(images, (list, tuple))
        raw, _, failures = model.outputs_many([images] if single else list(images), batch_size=batch_size)
        if failures:
            raise failures[0][1]
        return raw[0] if single else raw


def _frame(source: ImageSource) -> tuple[int, int] | None:
    """(width, height) of an in-memory image (bytes, PIL, array) as decoded; None for paths (tasks read the header)."""
    if isinstance(source, np.ndarray) and source.ndim == 3:
        return int(source.shape[1]), int(source.shape[0])
    if isinstance(source, bytes):
        from recog.detect.formats import image_frame

        return image_frame(source)
    if hasattr(source, "size") and hasattr(source, "getexif"):  # a PIL image: load_image applies its EXIF rotation
        w, h = source.size
        return (h, w) if source.getexif().get(0x0112, 1) in (5, 6, 7, 8) else (w, h)
    return None


def load(path: str | Path, *, backend: str = "auto", **options: Any) -> Predictor:
    """Load a model bundle for inference.

    Args:
        path: bundle folder (``runs/NAME/best``), or a preset that ships
            pretrained weights and labels (``efficientnet-lite0``: ImageNet
            tagging with no training; see :mod:`recog.models.zoo`).
        backend: ``"torch"``, ``"onnx"``, ``"onnx-int8"``, or ``"auto"``: the
            fastest artifact in the bundle whose parity check passed, else torch.
        options: backend options (``threads``, ``device``).

    Raises:
        ModelNotFoundError / BundleError / BundleIntegrityError: see
        :func:`recog.models.bundle.read_manifest`.
    """
    from recog.models.zoo import is_ready_preset, preset_bundle
    from recog.runtime.allocator import keep_freed_memory

    keep_freed_memory()
    if not Path(path).exists() and is_ready_preset(str(path)):
        path = preset_bundle(str(path))
    manifest = read_manifest(path)
    if backend == "auto":
        # exports run on the CPU; another device means the torch backend
        backend = auto_backend(manifest) if options.get("device", "cpu") == "cpu" else "torch"
    return Predictor(manifest, create_backend(backend, manifest, **options))


__all__ = ["Predictor", "RecogError", "load"]
