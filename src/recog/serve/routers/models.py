"""``/v1/models``: list the served models, describe one, classify or embed images, reload a bundle (admin key).

``:predict`` and ``:embed`` read images the same way (:func:`recog.serve.inputs.read_images`),
decode them in the service's decode processes (:mod:`recog.serve.decoding`: a decode that
outlives the request's deadline is killed), and run them through the model's one batcher
(:class:`recog.serve.batching.DynamicBatcher`: same queue, admission limit and deadline).
``:embed`` works for every served bundle: a classifier embeds with its own weights
(:meth:`recog.runtime.predictor.Predictor.embedder`).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse

from recog.errors import BadRequestError
from recog.monitor.log import logged
from recog.serve.decoding import preprocess_image
from recog.serve.deps import Deadline, request_deadline, require_admin_key, require_key, state_of
from recog.serve.inputs import IMAGES_BODY, decode_uploads, read_images
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


async def _run_model(request: Request, name: str, deadline: Deadline, head: str):
    """Read, admit, decode and batch the request's images for ``head`` ("predict" or "embed").

    Returns (served model, the predictor whose ``postprocess`` reads the rows, uploads, rows, top_k from the body).
    """
    st = state_of(request)
    # While draining (SIGTERM) requests are still served: readiness tells balancers to stop sending.
    st.pool.get(name)  # 404 before reading the body
    uploads, body_top_k = await read_images(request, st.settings)
    if head == "embed" and body_top_k is not None:
        raise BadRequestError("top_k has no meaning for embeddings.")
    served = st.pool.get(name)  # the model current now; the ticket pins it for this request
    with served.batcher.admit(len(uploads)) as ticket:
        try:
            if head == "embed":
                model = await deadline.wait(served.embedder(), "while loading the model's embedder")
                infer = model.infer
            else:
                model, infer = served.predictor, None
            decoding = decode_uploads(st.decoder, uploads, preprocess_image, model.manifest.preprocessing,
                                      st.settings.max_pixels)
            xs = await deadline.wait(decoding, "while decoding images", hint="send smaller images")
        except BaseException:
            served.batcher.abandon(ticket, ticket.preparing)
            raise
        rows = await served.batcher.run(ticket, xs, deadline=deadline.at, infer=infer)
    return served, model, uploads, rows, body_top_k


@router.post("/models/{name}:predict", summary="Classify one or several images",
             openapi_extra={"requestBody": IMAGES_BODY})
async def predict(request: Request, name: str = ModelName, deadline: Deadline = Depends(request_deadline),
                  top_k: int | None = Query(None, ge=1, le=1000, description="labels per image (default 5)"),
                  min_score: float | None = Query(None, ge=0, le=1, description="detect models: lowest box score "
                                                                                "kept (default 0.3)"),
                  threshold: float | None = Query(None, gt=0, description="anomaly models: score above which an "
                                                                          "image fails (default: the bundle's)"),
                  overlay: bool = Query(False, description="anomaly models: add overlay_png, the heatmap and defect "
                                                           "boxes over the image (base64 PNG, longest side 768 px)")
                  ) -> JSONResponse:
    """Classify models answer labels; detect models boxes in pixels of each uploaded image (``boxes``,
    ``scores``, ``class_ids``, ``labels``, ``counts``); anomaly models a verdict, score, normalized score
    (1.0 = threshold) and defect regions, plus ``overlay_png`` when asked (``overlay=true``)."""
    from recog.detect.formats import image_frame

    started = time.perf_counter()
    served, model, uploads, rows, body_top_k = await _run_model(request, name, deadline, "predict")
    k = top_k or body_top_k or 5
    raw = np.stack(rows)
    options: dict[str, Any] = {"image_sizes": [image_frame(u.data) for u in uploads]}
    if min_score is not None:
        if model.manifest.task != "detect":
            raise BadRequestError(f"min_score applies to detect models; {name!r} is a {model.manifest.task!r} model.")
        options["min_score"] = min_score
    if (threshold is not None or overlay) and model.manifest.task != "anomaly":
        raise BadRequestError(f"threshold and overlay apply to anomaly models; {name!r} is a "
                              f"{model.manifest.task!r} model.")
    if threshold is not None:
        options["threshold"] = threshold
    results = model.postprocess(raw, top_k=k, sources=[u.name for u in uploads], **options)
    predictions = logged(state_of(request).prediction_log, name, model.manifest, uploads, results, raw, started)
    if overlay:
        from recog.anomaly.draw import overlay_base64

        pngs = await deadline.run(None, lambda: overlay_base64([u.data for u in uploads], results,
                                                               max_pixels=state_of(request).settings.max_pixels),
                                  "while drawing overlays")
        for d, png in zip(predictions, pngs):
            d["overlay_png"] = png
    return JSONResponse({"model": name, "version": served.version, "predictions": predictions})


@router.post("/models/{name}:embed", summary="L2-normalised embeddings of one or several images",
             openapi_extra={"requestBody": IMAGES_BODY})
async def embed(request: Request, name: str = ModelName, deadline: Deadline = Depends(request_deadline)
                ) -> JSONResponse:
    """Answers ``{"model", "version", "embeddings": [{"embedding": [...], "dim", "source"}]}``; cosine
    similarity of two images is the dot product of their embeddings."""
    served, model, uploads, rows, _ = await _run_model(request, name, deadline, "embed")
    results = model.postprocess(np.stack(rows), sources=[u.name for u in uploads])
    return JSONResponse({"model": name, "version": served.version,
                         "embeddings": [r.to_dict() for r in results]})


@router.post("/models/{name}:reload", summary="Reload a model from its bundle (admin key)",
             dependencies=[Depends(require_admin_key)])
async def reload_model(request: Request, name: str = ModelName) -> dict[str, Any]:
    old, new = await state_of(request).pool.reload(name)
    return {"model": name, "previous_version": old.version, "version": new.version,
            "backend": new.predictor.backend.name}
