"""Python client for the recognition service (``recog serve``).

Example:
    >>> client = recog.Client("http://127.0.0.1:8000", api_key=None)      # doctest: +SKIP
    >>> client.predict("cat.jpg", top_k=3).label                          # doctest: +SKIP
    'cat'

Service errors come back as the same :mod:`recog.errors` classes the library
raises (matched by the problem's ``code``), so ``except recog.errors.ImageError``
works the same locally and remotely.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterable

from recog import errors
from recog.types import Classification, Embedding, Label, OutOfDistribution, PredictionFailure


def _error_classes() -> dict[str, type[errors.RecogError]]:
    """code → class over the whole exception tree."""
    out: dict[str, type[errors.RecogError]] = {}
    todo: list[type[errors.RecogError]] = [errors.RecogError]
    while todo:
        cls = todo.pop()
        out.setdefault(cls.code, cls)
        todo.extend(cls.__subclasses__())
    return out


def error_from_problem(status: int, body: Any) -> errors.RecogError:
    """The :class:`recog.errors.RecogError` a problem+json response stands for."""
    code = body.get("code") if isinstance(body, dict) else None
    detail = body.get("detail") if isinstance(body, dict) else None
    cls = _error_classes().get(code or "")
    if cls is None:
        cls = errors.InvalidInputError if 400 <= status < 500 else errors.ServiceError
    exc = cls.__new__(cls)
    errors.RecogError.__init__(exc, detail or f"the service answered HTTP {status}.")
    exc.status = status  # type: ignore[attr-defined]
    return exc


def classification_from_dict(d: dict[str, Any]) -> Classification:
    """Inverse of :meth:`Classification.to_dict`."""
    top = tuple(Label(t["label"], int(t["index"]), float(t["score"])) for t in d["top"])
    ood = d.get("ood")
    return Classification(top=top, source=d.get("source"),
                          ood=OutOfDistribution(ood["score"], ood["unknown"], ood["threshold"], ood["method"]) if ood else None)


def result_from_dict(d: dict[str, Any]) -> Any:
    """The typed result a prediction's JSON stands for, by its fields (the task's ``to_dict`` inverted):
    ``top`` → :class:`~recog.types.Classification`, ``verdict`` → :class:`~recog.types.AnomalyResult`,
    ``boxes`` → :class:`~recog.detect.result.Detections`."""
    if "top" in d:
        return classification_from_dict(d)
    size = tuple(d["image_size"]) if d.get("image_size") else None
    if "verdict" in d:
        from recog.types import AnomalyResult

        return AnomalyResult(score=float(d["score"]), threshold=d.get("threshold"),
                             boxes=tuple(tuple(map(float, b)) for b in d["boxes"]),
                             scores=tuple(map(float, d["scores"])), image_size=size, source=d.get("source"))
    if "boxes" in d:
        from recog.detect.result import Detections

        return Detections(d["boxes"], d["scores"], d["class_ids"], d["labels"], image_size=size,
                          source=d.get("source"))
    raise errors.ServiceError(f"the service answered a prediction this client cannot read (fields: {sorted(d)}).")


def embedding_from_dict(d: dict[str, Any]) -> Embedding:
    """Inverse of :meth:`Embedding.to_dict`."""
    return Embedding(vector=tuple(float(v) for v in d["embedding"]), source=d.get("source"))


def _image_part(image: str | os.PathLike | bytes) -> tuple[str, bytes]:
    """(file name, bytes) of a path or bytes to upload."""
    if isinstance(image, (bytes, bytearray, memoryview)):
        return "image", bytes(image)
    path = Path(image)
    if not path.is_file():
        raise errors.CorruptImageError(f"{path}: no such file.", hint="check the path")
    return path.name, path.read_bytes()


class Client:
    """Talks to a recog service over HTTP.

    Args:
        url: base URL, e.g. ``http://127.0.0.1:8000``.
        api_key: sent as ``Authorization: Bearer``; defaults to ``$RECOG_API_KEY``.
        timeout: seconds per HTTP call.
        retries: retries of a 429/503 answer, honouring ``Retry-After``.
    """

    def __init__(self, url: str, api_key: str | None = None, timeout: float = 30.0, *, retries: int = 3) -> None:
        import httpx

        if not url.startswith(("http://", "https://")):
            raise errors.InvalidInputError(f"expected an http:// or https:// URL, got {url!r}.")
        api_key = api_key or os.environ.get("RECOG_API_KEY") or None
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.url = url.rstrip("/")
        self.retries = retries
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)
        self._default_model: str | None = None

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ plumbing

    def _request(self, method: str, path: str, **kw: Any) -> Any:
        import httpx

        for attempt in range(self.retries + 1):
            try:
                resp = self._http.request(method, path, **kw)
            except httpx.TransportError as exc:
                raise errors.ServiceError(f"cannot reach the recog service at {self.url} ({exc}).",
                                          hint="check the URL and that `recog serve` is running") from exc
            if resp.status_code in (429, 503) and attempt < self.retries:
                time.sleep(min(10.0, float(resp.headers.get("retry-after", "1") or 1)))
                continue
            if resp.status_code >= 400:
                try:
                    body = resp.json()
                except ValueError:
                    body = {"detail": resp.text[:200]}
                raise error_from_problem(resp.status_code, body)
            return resp.json()
        raise errors.OverloadedError("the service stayed overloaded.")  # loop always returns or raises

    def _model(self, model: str | None) -> str:
        if model:
            return model
        if self._default_model is None:
            models = self.models()
            if not models:
                raise errors.NotFoundError("the service serves no model.")
            self._default_model = next((m["name"] for m in models if m.get("default")), models[0]["name"])
        return self._default_model

    # ------------------------------------------------------------------ API

    def models(self) -> list[dict[str, Any]]:
        """Served models with their metadata (labels, input size, metrics, backend, version)."""
        return self._request("GET", "/v1/models")["models"]

    def predict(self, image: str | os.PathLike | bytes, *, model: str | None = None, top_k: int = 5,
                min_score: float | None = None, threshold: float | None = None) -> Any:
        """Run one image (path or bytes) through a served model: a :class:`~recog.types.Classification`,
        :class:`~recog.detect.result.Detections` or :class:`~recog.types.AnomalyResult` by the model's task.

        Args:
            min_score: detect models: lowest box score kept (the service refuses it for other tasks).
            threshold: anomaly models: score above which the image fails.

        Raises:
            recog.errors.ImageError (and subclasses): the service refused the image.
            recog.errors.RecogError: AuthError, NotFoundError, OverloadedError or ServiceError, by the answer's code.
        """
        filename, data = _image_part(image)
        params = {k: v for k, v in (("top_k", top_k), ("min_score", min_score), ("threshold", threshold))
                  if v is not None}
        body = self._request("POST", f"/v1/models/{self._model(model)}:predict", params=params,
                             files={"image": (filename, data, "application/octet-stream")})
        result = result_from_dict(body["predictions"][0])
        if not isinstance(image, (bytes, bytearray, memoryview)):
            result = replace(result, source=str(image))
        return result

    def embed(self, image: str | os.PathLike | bytes, *, model: str | None = None) -> Embedding:
        """The L2-normalised embedding of one image (path or bytes), computed by the service's model.

        Any served model embeds (a classifier with its own weights); cosine similarity is the dot product.

        Raises:
            recog.errors.ImageError (and subclasses): the service refused the image.
            recog.errors.RecogError: AuthError, NotFoundError, OverloadedError or ServiceError, by the answer's code.
        """
        filename, data = _image_part(image)
        body = self._request("POST", f"/v1/models/{self._model(model)}:embed",
                             files={"image": (filename, data, "application/octet-stream")})
        result = embedding_from_dict(body["embeddings"][0])
        if not isinstance(image, (bytes, bytearray, memoryview)):
            result = Embedding(vector=result.vector, source=str(image))
        return result

    def predict_many(self, paths: Iterable[str | os.PathLike], *, model: str | None = None, top_k: int = 5,
                     concurrency: int = 4, **options: Any) -> list[Any]:
        """:meth:`predict` for files (``options``: its ``min_score``, ``threshold``), ``concurrency`` requests
        at a time (the server batches them).

        A file the service refuses (not an image, corrupt, too large) becomes a
        :class:`PredictionFailure`; other errors (auth, unreachable) raise.
        """
        paths = [str(p) for p in paths]
        name = self._model(model)

        def one(path: str) -> Any:
            try:
                return self.predict(path, model=name, top_k=top_k, **options)
            except errors.ImageError as exc:
                return PredictionFailure(path, exc.code, str(exc))
            except errors.InvalidInputError as exc:  # e.g. empty file → 400 from the service
                return PredictionFailure(path, exc.code, str(exc))
            except errors.ServiceError as exc:  # this file is over the body cap (413): the others still go
                if exc.code != "payload_too_large":
                    raise
                return PredictionFailure(path, exc.code, str(exc))

        with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
            return list(pool.map(one, paths))
