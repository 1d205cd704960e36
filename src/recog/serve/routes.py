"""HTTP routes: ``/v1`` models API, operations (health, readiness, metrics), the web page."""

from __future__ import annotations

import asyncio
import time
from importlib import resources
from typing import Any

import numpy as np
from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import FileResponse, JSONResponse, Response

from recog.errors import BadRequestError, DeadlineExceededError, ImageError, NotReadyError
from recog.serve.auth import presented_key, require_admin
from recog.serve.inputs import Upload, named_image_error, read_images
from recog.serve.problems import PROBLEM_JSON, problem_body

_PROBLEM = {"model": None, "content": {PROBLEM_JSON: {}}, "description": "problem+json with a stable `code`"}
_PREDICT_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {"schema": {"type": "object", "properties": {
            "image": {"type": "array", "items": {"type": "string", "format": "binary"},
                      "description": "one or more image files"},
            "top_k": {"type": "integer"}}}},
        "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
        "application/json": {"schema": {"type": "object", "properties": {
            "image": {"type": "string", "description": "base64 image bytes"},
            "images": {"type": "array", "items": {"type": "string"}},
            "top_k": {"type": "integer"}}}},
    },
}


def state_of(request: Request):
    """The :class:`~recog.serve.app.ServiceState` of the app serving ``request``."""
    return request.app.state.recog


def require_key(request: Request) -> None:
    """Dependency: a valid API key when the service has a key file; nothing otherwise."""
    keys = request.app.state.recog.keys
    if keys is not None:
        keys.check(presented_key(request.headers))


def require_admin_key(request: Request) -> None:
    require_admin(request.app.state.recog.keys, request.headers)


ModelName = Path(..., description="served model name, as listed by GET /v1/models")

# --------------------------------------------------------------------------- /v1

api = APIRouter(prefix="/v1", dependencies=[Depends(require_key)],
                responses={400: _PROBLEM, 401: _PROBLEM, 404: _PROBLEM, 413: _PROBLEM, 415: _PROBLEM,
                           422: _PROBLEM, 429: _PROBLEM, 503: _PROBLEM, 504: _PROBLEM})


@api.get("/models", summary="List served models with labels, input size, metrics and backend")
async def list_models(request: Request) -> dict[str, Any]:
    pool = state_of(request).pool
    return {"models": [m.describe(default=(name == pool.default_name)) for name, m in pool.models.items()]}


@api.get("/models/{name}", summary="One served model's metadata")
async def get_model(request: Request, name: str = ModelName) -> dict[str, Any]:
    pool = state_of(request).pool
    return pool.get(name).describe(default=(name == pool.default_name))


async def _preprocess_all(served, uploads: list[Upload], executor) -> list[np.ndarray]:
    loop = asyncio.get_running_loop()
    futures = [loop.run_in_executor(executor, served.predictor.preprocess, u.data) for u in uploads]
    results = await asyncio.gather(*futures, return_exceptions=True)
    for i, (res, up) in enumerate(zip(results, uploads)):
        if isinstance(res, ImageError):
            label = up.name
            if len(uploads) > 1:
                label = f"image {i + 1} of {len(uploads)}" + (f" ({up.name})" if up.name else "")
            raise named_image_error(res, label) from res
        if isinstance(res, BaseException):
            raise res
    return results  # type: ignore[return-value]


TIMEOUT_HEADER = "x-request-timeout"


def request_timeout(request: Request, server_timeout: float) -> float:
    """Seconds this request may take: the ``X-Request-Timeout`` header if given (a client with a
    tighter budget), never more than the server's ``--timeout``."""
    raw = request.headers.get(TIMEOUT_HEADER)
    if raw is None:
        return server_timeout
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not (value > 0):
        raise BadRequestError(f"{TIMEOUT_HEADER} must be a positive number of seconds, got {raw!r}.")
    return min(value, server_timeout)


@api.post("/models/{name}:predict", summary="Classify one or several images",
          openapi_extra={"requestBody": _PREDICT_BODY})
async def predict(request: Request, name: str = ModelName,
                  top_k: int | None = Query(None, ge=1, le=1000, description="labels per image (default 5)")
                  ) -> JSONResponse:
    st = state_of(request)
    # While draining (SIGTERM) requests are still served: readiness tells balancers to stop sending.
    deadline = time.monotonic() + request_timeout(request, st.settings.request_timeout_s)
    served = st.pool.get(name)
    uploads, body_top_k = await read_images(request, st.settings)
    k = top_k or body_top_k or 5
    served = st.pool.get(name)  # the model current now; the ticket pins it for this request
    with served.batcher.admit(len(uploads)) as ticket:
        try:
            xs = await asyncio.wait_for(_preprocess_all(served, uploads, st.executor),
                                        max(0.0, deadline - time.monotonic()))
        except asyncio.TimeoutError:
            raise DeadlineExceededError("the request passed its deadline while decoding images.") from None
        except BaseException:
            served.batcher.abandon(ticket, ticket.preparing)
            raise
        rows = await served.batcher.run(ticket, xs, deadline=deadline)
    results = served.predictor.postprocess(np.stack(rows), top_k=k, sources=[u.name for u in uploads])
    return JSONResponse({"model": name, "version": served.version,
                         "predictions": [r.to_dict() for r in results]})


@api.post("/models/{name}:reload", summary="Reload a model from its bundle (admin key)",
          dependencies=[Depends(require_admin_key)])
async def reload_model(request: Request, name: str = ModelName) -> dict[str, Any]:
    st = state_of(request)
    old, new = await st.pool.reload(name)
    return {"model": name, "previous_version": old.version, "version": new.version,
            "backend": new.predictor.backend.name}


# --------------------------------------------------------------------------- operations

ops = APIRouter(tags=["operations"])


@ops.get("/healthz", summary="Liveness: the process answers")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@ops.get("/readyz", summary="Readiness: every model loaded and warmed, not shutting down",
         responses={503: _PROBLEM})
async def readyz(request: Request) -> Response:
    st = state_of(request)
    if st.draining or not st.ready:
        reason = "shutting down" if st.draining else "models are still loading"
        return JSONResponse(problem_body(503, NotReadyError.code, f"not ready: {reason}."), status_code=503,
                            media_type=PROBLEM_JSON, headers={"Retry-After": "1"})
    return JSONResponse({"status": "ready", "models": list(st.pool.models)})


@ops.get("/metrics", summary="Prometheus metrics", dependencies=[Depends(require_key)],
         response_class=Response)
async def metrics(request: Request) -> Response:
    body, ctype = state_of(request).metrics.exposition()
    return Response(body, media_type=ctype)


# --------------------------------------------------------------------------- web page

web = APIRouter(include_in_schema=False)

#: The page loads only its own files: no CDN, no inline script, images only from uploads.
PAGE_CSP = ("default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; "
            "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")


def static_dir():
    return resources.files("recog.serve") / "static"


@web.get("/")
async def index() -> FileResponse:
    return FileResponse(str(static_dir() / "index.html"), media_type="text/html",
                        headers={"Content-Security-Policy": PAGE_CSP, "Cache-Control": "no-cache"})
