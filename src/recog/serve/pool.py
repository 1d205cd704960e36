"""The pool of served models: load, warm, look up by name, and hot-swap on reload.

Each :class:`ServedModel` owns a predictor and its :class:`DynamicBatcher`. A
request takes the current ``ServedModel`` and admits its images to that model's
batcher in the same event-loop step, so a reload that swaps the name to a new
``ServedModel`` never splits a request between two models: requests already
admitted finish on the old one, whose batcher is closed once they are done.
"""

from __future__ import annotations

import asyncio
import io
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from recog.errors import NotFoundError, did_you_mean
from recog.serve.batching import DynamicBatcher
from recog.serve.metrics import ServeMetrics
from recog.serve.settings import ModelSpec, Settings

log = logging.getLogger("recog.serve")


@dataclass(eq=False)
class ServedModel:
    """One loaded model behind its batcher.

    ``:embed`` requests go through the same batcher (its queue, admission limit and
    inference thread) to the model's embedder: :meth:`Predictor.embedder`, the same
    weights under the ``embed`` task, built and warmed by the first ``:embed`` call,
    so a service that never embeds never holds a second copy of the model.
    """

    spec: ModelSpec
    predictor: Any  # recog.runtime.predictor.Predictor (imported lazily: it pulls in numpy/PIL/torch)
    batcher: DynamicBatcher
    version: str
    loaded_at: float = field(default_factory=time.time)
    _embedder: Any = None
    _embedder_task: asyncio.Task | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    async def embedder(self) -> Any:
        """The embedder predictor; the first call builds it in a thread (later calls wait for that one build).

        A caller that gives up (deadline) does not stop the build: the next request finds it done.
        """
        if self._embedder is not None:
            return self._embedder
        if self._embedder_task is None:
            task = asyncio.create_task(asyncio.to_thread(build_embedder, self.predictor))
            task.add_done_callback(lambda t: t.cancelled() or t.exception())  # retrieved even if nobody waits
            self._embedder_task = task
        task = self._embedder_task
        try:
            self._embedder = await asyncio.shield(task)
        except asyncio.CancelledError:
            raise
        except Exception:
            if self._embedder_task is task:
                self._embedder_task = None  # the next request tries again
            raise
        return self._embedder

    def describe(self, *, default: bool = False) -> dict[str, Any]:
        """Metadata for ``GET /v1/models``; the bundle path is not disclosed."""
        info = self.predictor.info
        h, w = info.preprocessing.size
        return {"name": self.name, "default": default, "task": info.task, "labels": list(info.labels),
                "num_labels": len(info.labels), "input_size": [h, w],
                "preprocessing": info.preprocessing.to_dict(), "metrics": info.metrics,
                "source_model": info.source_model, "backend": self.predictor.backend.name,
                "version": self.version,
                "loaded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.loaded_at)),
                "batching": {"max_batch_size": self.batcher.max_batch_size,
                             "max_delay_ms": self.batcher.max_delay * 1000, "max_queue": self.batcher.max_queue}}


def _warm_image(size: tuple[int, int]) -> bytes:
    from PIL import Image

    h, w = size
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8), "RGB").save(buf, format="JPEG")
    return buf.getvalue()


def load_predictor(spec: ModelSpec, settings: Settings):
    """Load, configure and warm a predictor (blocking; run it in a thread).

    Raises:
        ModelNotFoundError, BundleError, BundleIntegrityError: from :func:`recog.load`.
    """
    import recog

    options = {"threads": settings.threads} if settings.threads else {}
    predictor = recog.load(spec.path, backend=spec.backend, **options)
    predictor.max_pixels = settings.max_pixels
    # Warm-up: decode, preprocess and run a batch of 1 twice, so the first user request
    # does not pay for lazy initialisation (allocator, kernels, PIL plugins).
    x = predictor.preprocess(_warm_image(predictor.info.preprocessing.size))
    for _ in range(2):
        predictor.infer(x[None])
    return predictor


def build_embedder(predictor: Any) -> Any:
    """``predictor.embedder()``, warmed like the predictor (blocking; run it in a thread)."""
    embedder = predictor.embedder()
    x = embedder.preprocess(_warm_image(embedder.info.preprocessing.size))
    embedder.infer(x[None])
    return embedder


class ModelPool:
    """Name → :class:`ServedModel`, with atomic replacement."""

    def __init__(self, settings: Settings, metrics: ServeMetrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.models: dict[str, ServedModel] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._retiring: set[asyncio.Task] = set()

    @property
    def default_name(self) -> str | None:
        return self.settings.models[0].name if self.settings.models else None

    def get(self, name: str) -> ServedModel:
        """The model serving ``name``.

        Raises:
            NotFoundError: no such model (404), with the closest names.
        """
        try:
            return self.models[name]
        except KeyError:
            hint = did_you_mean(name, self.models) or f"served models: {', '.join(self.models) or 'none'}"
            raise NotFoundError(f"no model named {name!r} is served here.", hint=hint) from None

    async def _build(self, spec: ModelSpec) -> ServedModel:
        predictor = await asyncio.to_thread(load_predictor, spec, self.settings)
        s = self.settings
        batcher = DynamicBatcher(predictor.infer_scored, max_batch_size=s.max_batch_size, max_delay_ms=s.max_delay_ms,
                                 max_queue=s.max_queue, name=spec.name, observer=self.metrics.observer(spec.name))
        await batcher.start()
        return ServedModel(spec, predictor, batcher, predictor.manifest.version)

    async def load_all(self) -> None:
        """Load and warm every configured model, in order (fails on the first bad bundle)."""
        for spec in self.settings.models:
            start = time.perf_counter()
            self.models[spec.name] = await self._build(spec)
            m = self.models[spec.name]
            log.info("model %s loaded from %s (%s backend, version %s) in %.1f s", spec.name, spec.path,
                     m.predictor.backend.name, m.version, time.perf_counter() - start)

    async def reload(self, name: str) -> tuple[ServedModel, ServedModel]:
        """Reload ``name`` from its bundle folder and swap it in; returns (old, new).

        The new bundle is verified, loaded and warmed before the swap; if any step
        fails the error propagates and the old model keeps serving.
        """
        old = self.get(name)
        lock = self._locks.setdefault(name, asyncio.Lock())
        async with lock:
            old = self.get(name)
            try:
                new = await self._build(old.spec)
            except Exception:
                self.metrics.reloads.labels(name, "refused").inc()
                raise
            self.models[name] = new  # the swap: one assignment on the event loop
            self.metrics.reloads.labels(name, "ok").inc()
            task = asyncio.create_task(old.batcher.close(timeout=self.settings.request_timeout_s))
            self._retiring.add(task)
            task.add_done_callback(self._retiring.discard)
            log.info("model %s reloaded: version %s -> %s", name, old.version, new.version)
            return old, new

    async def close(self) -> None:
        """Let admitted requests finish, then stop every batcher."""
        timeout = self.settings.shutdown_timeout_s
        await asyncio.gather(*(m.batcher.close(timeout=timeout) for m in self.models.values()),
                             *self._retiring)
