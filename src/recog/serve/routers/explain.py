"""``POST /v1/models/{name}:explain``: why the model said that, as a heatmap.

Same inputs (multipart, raw body, JSON base64; :func:`recog.serve.inputs.read_images`),
limits, API key and deadline as ``:predict``. The key is checked (router dependency)
before the body is read. Query: ``method`` (gradcam | ig | occlusion), ``target``
(a label; default the top prediction), ``output`` (overlay | map | both). Detect models
explain one box: ``box`` (its index in the ``boxes`` that ``:predict`` answers at the same
``min_score``; default the top box, or the best box of class ``target``) and ``min_score``
(default 0.3, as ``:predict``); the answer adds ``box``, ``box_index``, ``boxes`` and
``peak_in_box``, and the overlay outlines the box. A box index past the detections is a
400 naming how many there are.

Answer per image: the explanation's fields (method, target, score, predicted, peak
and map_box in original pixels), ``overlay_png`` (base64 PNG at the original size,
after EXIF orientation) and ``map``: the raw map at the model input's resolution,
quantized to uint8 (``data`` base64, ``shape``, and ``min``/``max`` to undo the scaling:
``value = min + q / 255 * (max - min)``).

Budget, and why explanations have their own: IG and occlusion are dozens of forward
passes each, so they never go through the model's batcher (they would starve
``:predict``). Each app has one explanation worker thread and an :class:`Admission`
of :data:`MAX_QUEUE` images: past it a request gets 429 with a Retry-After estimate at
once. A slot is released when the work really ends, not when the request gives up, so
work that outlived its deadline still counts. At the deadline the request answers 504
and the work in progress is told to stop before its next forward pass. The explainer
is a private copy of the model (built on the first call; Grad-CAM hooks a layer,
which must not touch the copy ``:predict`` runs); a first call whose deadline passes
while it builds gets 503 with Retry-After.
"""

from __future__ import annotations

import asyncio
import base64
import threading
import time
import weakref
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse

from recog.errors import BadRequestError
from recog.serve.decoding import check_image
from recog.serve.deps import Admission, Deadline, load_once, request_deadline, require_key, state_of
from recog.serve.inputs import IMAGES_BODY, decode_uploads, read_images
from recog.serve.problems import problem_responses

router = APIRouter(prefix="/v1", dependencies=[Depends(require_key)],
                   responses=problem_responses(400, 401, 404, 413, 415, 422, 429, 503, 504))

#: images admitted to the explanation worker at once (queued or running), per app.
MAX_QUEUE = 4
#: images one :explain request may carry (each is many forward passes).
MAX_IMAGES = 4
OUTPUTS = ("both", "overlay", "map")


class _Budget:
    """One app's explanation worker, admission and running estimate of seconds per image."""

    def __init__(self) -> None:
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="recog-explain")
        self.seconds_per_image = 2.0
        self.admission = Admission("the explanation queue", MAX_QUEUE,
                                   retry_after=lambda admitted: max(1.0, admitted * self.seconds_per_image))
        self.explainers: "weakref.WeakKeyDictionary[Any, asyncio.Task]" = weakref.WeakKeyDictionary()


_BUDGETS: "weakref.WeakKeyDictionary[Any, _Budget]" = weakref.WeakKeyDictionary()


def _budget(st: Any) -> _Budget:
    if st not in _BUDGETS:
        _BUDGETS[st] = _Budget()
    return _BUDGETS[st]


def _build_explainer(predictor: Any) -> Any:
    from recog.explain import Explainer

    return Explainer(predictor, share_model=False)


async def _explainer(budget: _Budget, served: Any, deadline: Deadline) -> Any:
    """The served model's explainer; the first call builds it in a thread (later calls wait for that build)."""
    return await load_once(budget.explainers, served, lambda: _build_explainer(served.predictor), deadline,
                           f"the explainer of model {served.name!r}")


def _quantized(amap: np.ndarray) -> dict[str, Any]:
    lo, hi = float(amap.min()), float(amap.max())
    q = np.zeros(amap.shape, np.uint8) if hi <= lo else np.round((amap - lo) / (hi - lo) * 255).astype(np.uint8)
    return {"shape": list(amap.shape), "dtype": "uint8", "min": lo, "max": hi,
            "data": base64.b64encode(q.tobytes()).decode("ascii")}


def _explain_all(explainer: Any, datas: list[bytes], method: str, target: str | None, choice: dict[str, Any],
                 output: str, stop: threading.Event, budget: _Budget) -> list[dict[str, Any]]:
    from recog.explain.render import png_bytes

    out = []
    for data in datas:
        start = time.perf_counter()
        e = explainer.explain(data, method=method, target=target, should_stop=stop.is_set, **choice)
        row = e.to_dict()
        if output in ("both", "overlay"):
            row["overlay_png"] = base64.b64encode(png_bytes(e.overlay())).decode("ascii")
        if output in ("both", "map"):
            row["map"] = _quantized(e.map)
        out.append(row)
        budget.seconds_per_image = 0.7 * budget.seconds_per_image + 0.3 * (time.perf_counter() - start)
    return out


@router.post("/models/{name}:explain", summary="Heatmap of why the model gave a label its score",
             openapi_extra={"requestBody": IMAGES_BODY})
async def explain(request: Request, name: str = Path(..., description="served model name"),
                  deadline: Deadline = Depends(request_deadline),
                  method: str = Query("gradcam", description="gradcam | ig | occlusion"),
                  target: str | None = Query(None, max_length=512, description="label to explain (default: top)"),
                  output: str = Query("both", description="overlay | map | both"),
                  box: int | None = Query(None, ge=0, description="detect models: index of the box to explain "
                                                                   "(as :predict lists them; default: the top box)"),
                  min_score: float | None = Query(None, ge=0.0, le=1.0, description="detect models: lowest box "
                                                                                     "score listed (default 0.3)"),
                  ) -> JSONResponse:
    from recog.explain.attribution import check_method

    st = state_of(request)
    served = st.pool.get(name)  # 404 before reading the body
    check_method(method)
    if output not in OUTPUTS:
        raise BadRequestError(f"output must be one of {', '.join(OUTPUTS)}, got {output[:40]!r}.")
    task = served.predictor.manifest.task
    if task not in ("classify", "detect"):
        raise BadRequestError(f"model {name!r} is a {task!r} model; :explain explains classifiers and detectors.")
    choice = {"box": box, "min_score": min_score} if task == "detect" else {}
    if task != "detect" and (box is not None or min_score is not None):
        raise BadRequestError(f"box and min_score choose a detector's box; model {name!r} is a {task!r} model.")
    uploads, _ = await read_images(request, st.settings)
    if len(uploads) > MAX_IMAGES:
        raise BadRequestError(f"{len(uploads)} images in one :explain request; the limit is {MAX_IMAGES}.",
                              hint="send one image per request")
    budget = _budget(st)
    budget.admission.admit(len(uploads))
    released = False
    try:
        await deadline.wait(decode_uploads(st.decoder, uploads, check_image, st.settings.max_pixels),
                            "while decoding images", hint="send smaller images")
        explainer = await _explainer(budget, served, deadline)
        if target is not None:
            explainer.check_target(target)  # an unknown label is a 400 now
        stop = threading.Event()
        future = asyncio.get_running_loop().run_in_executor(
            budget.executor, _explain_all, explainer, [u.data for u in uploads], method, target, choice, output, stop,
            budget)
        n = len(uploads)
        # release the slots when the work really ends, and retrieve its outcome even if nobody waits
        future.add_done_callback(lambda f: (budget.admission.release(n), f.cancelled() or f.exception()))
        released = True  # from here the worker releases the slots when it really ends
        try:
            rows = await deadline.wait(asyncio.shield(future), f"while explaining with {method}",
                                       hint="use --method gradcam (one backward pass), or a longer "
                                            "X-Request-Timeout")
        except BaseException:
            stop.set()
            raise
    except BaseException:
        if not released:
            budget.admission.release(len(uploads))
        raise
    for row, up in zip(rows, uploads):
        row["source"] = up.name
    return JSONResponse({"model": name, "version": served.version, "explanations": rows})
