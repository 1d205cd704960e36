"""``/v1/models``: list the served models, describe one, classify images, reload a bundle (admin key)."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse

from recog.errors import ImageError
from recog.serve.deps import Deadline, request_deadline, require_admin_key, require_key, state_of
from recog.serve.inputs import IMAGES_BODY, Upload, named_image_error, read_images
from recog.serve.problems import problem_responses

router = APIRouter(prefix="/v1", dependencies=[Depends(require_key)],
                   responses=problem_responses(400, 401, 404, 413, 415, 422, 429, 503, 504))

ModelName = Path(..., description="served model name, as listed by GET /v1/models")


@router.get("/models", summary="List served models with labels, input size, metrics and backend")
async def list_models(request: Request) -> dict[str, Any]:
    pool = state_of(request).pool
    return {"models": [m.describe(default=(name == pool.default_name)) for name, m in pool.models.items()]}


@router.get("/models/{name}", summary="One served model's metadata")
async def get_model(request: Request, name: str = ModelName) -> dict[str, Any]:
    pool = state_of(request).pool
    return pool.get(name).describe(default=(name == pool.default_name))


async def _preprocess_all(served, uploads: list[Upload], executor) -> list[np.ndarray]:
    """Decode and preprocess every upload off the event loop; an image error names its upload."""
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


@router.post("/models/{name}:predict", summary="Classify one or several images",
             openapi_extra={"requestBody": IMAGES_BODY})
async def predict(request: Request, name: str = ModelName, deadline: Deadline = Depends(request_deadline),
                  top_k: int | None = Query(None, ge=1, le=1000, description="labels per image (default 5)")
                  ) -> JSONResponse:
    st = state_of(request)
    # While draining (SIGTERM) requests are still served: readiness tells balancers to stop sending.
    st.pool.get(name)  # 404 before reading the body
    uploads, body_top_k = await read_images(request, st.settings)
    k = top_k or body_top_k or 5
    served = st.pool.get(name)  # the model current now; the ticket pins it for this request
    with served.batcher.admit(len(uploads)) as ticket:
        try:
            xs = await deadline.wait(_preprocess_all(served, uploads, st.executor), "while decoding images")
        except BaseException:
            served.batcher.abandon(ticket, ticket.preparing)
            raise
        rows = await served.batcher.run(ticket, xs, deadline=deadline.at)
    results = served.predictor.postprocess(np.stack(rows), top_k=k, sources=[u.name for u in uploads])
    return JSONResponse({"model": name, "version": served.version,
                         "predictions": [r.to_dict() for r in results]})


@router.post("/models/{name}:reload", summary="Reload a model from its bundle (admin key)",
             dependencies=[Depends(require_admin_key)])
async def reload_model(request: Request, name: str = ModelName) -> dict[str, Any]:
    old, new = await state_of(request).pool.reload(name)
    return {"model": name, "previous_version": old.version, "version": new.version,
            "backend": new.predictor.backend.name}
