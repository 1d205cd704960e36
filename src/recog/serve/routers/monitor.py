"""Operations of served models: ``/health`` (models and prediction log), feedback, the dashboard.

``GET /dashboard`` is a plain HTML/JS page from the package (no CDN) that polls
``GET /v1/monitor/{name}`` (figures from the prediction log: :mod:`recog.monitor.dashboard`).

``GET /health`` answers 200 whenever the process serves: ``status`` is ``degraded`` when the
prediction log cannot be written (predictions keep being served; see :mod:`recog.monitor.log`).
``POST /v1/models/{name}:feedback`` attaches the true label to a logged prediction
(:func:`recog.monitor.feedback.add_feedback`); it needs a key only when the service has keys, like
``:predict``: it changes no model and no index, it annotates the opt-in log.
"""

from __future__ import annotations

import asyncio
import sqlite3
from typing import Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field

from recog.errors import NotFoundError
from recog.serve.deps import require_key, state_of
from recog.serve.problems import problem_responses
from recog.serve.routers.web import PAGE_CSP, static_dir

router = APIRouter(tags=["monitoring"])
#: how long feedback waits for a locked log before answering 503.
FEEDBACK_LOCK_WAIT_S = 1.0


class Feedback(BaseModel):
    prediction_id: str = Field(..., min_length=1, max_length=64, description="from a :predict answer")
    label: str = Field(..., min_length=1, max_length=200, description="the true label")


@router.get("/health", summary="Models served and the prediction log's state (degraded: log not written)")
async def health(request: Request) -> dict[str, Any]:
    st = state_of(request)
    log = st.prediction_log
    log_status = log.status.to_dict() if log is not None else {"status": "off"}
    degraded = log_status["status"] == "degraded"
    return {"status": "degraded" if degraded else ("ok" if st.ready else "starting"),
            "models": {name: m.version for name, m in st.pool.models.items()}, "prediction_log": log_status}


@router.post("/v1/models/{name}:feedback", summary="Attach the true label to a logged prediction",
             dependencies=[Depends(require_key)], responses=problem_responses(400, 401, 404, 422))
async def feedback(body: Feedback, request: Request,
                   name: str = Path(..., description="served model name")) -> dict[str, Any]:
    from recog.monitor.feedback import add_feedback

    st = state_of(request)
    st.pool.get(name)
    if st.prediction_log is None:
        raise NotFoundError(f"no logged prediction {body.prediction_id!r}: this service does not log predictions.",
                            hint="start it with `recog serve ... --log-predictions ops.db`")
    log = st.prediction_log
    try:
        return await asyncio.to_thread(add_feedback, log.path, body.prediction_id, body.label, model=name,
                                     timeout=FEEDBACK_LOCK_WAIT_S)
    except NotFoundError:
        if not await asyncio.to_thread(log.flush, 2.0):  # answered a moment ago: maybe still queued
            raise
    return await asyncio.to_thread(add_feedback, log.path, body.prediction_id, body.label, model=name,
                                     timeout=FEEDBACK_LOCK_WAIT_S)


@router.get("/v1/monitor/{name}", summary="Dashboard figures of a model from the prediction log",
            dependencies=[Depends(require_key)], responses=problem_responses(401, 404))
async def monitor_data(request: Request, name: str = Path(..., description="served model name"),
                       minutes: float = Query(60.0, gt=0, le=60 * 24 * 31, description="time span shown"),
                       buckets: int = Query(30, ge=1, le=500)) -> dict[str, Any]:
    """Requests per minute, latency p50/p95, predicted classes and OOD rate per time bucket; feedback
    accuracy; the last drift verdict (computed by the log every 500 predictions); the log's status."""
    from recog.monitor.dashboard import dashboard_data
    from recog.monitor.log import connect

    st = state_of(request)
    st.pool.get(name)
    log = st.prediction_log
    if log is None:
        raise NotFoundError("the dashboard reads the prediction log, and this service does not log predictions.",
                            hint="start it with `recog serve ... --log-predictions ops.db`")

    def read() -> dict[str, Any]:
        conn = connect(log.path)
        try:
            return dashboard_data(conn, name, minutes=minutes, buckets=buckets)
        finally:
            conn.close()

    try:
        data = await asyncio.to_thread(read)
    except sqlite3.Error as exc:  # a locked or corrupt log: the page says so instead of failing
        data = {"model": name, "minutes": minutes, "total": 0, "buckets": [], "feedback": {"count": 0, "accuracy": None},
                "error": f"{type(exc).__name__}: {exc}"}
    return {**data, "drift": log.drift.get(name), "log": log.status.to_dict()}


@router.get("/dashboard", include_in_schema=False)
async def dashboard() -> FileResponse:
    return FileResponse(str(static_dir() / "dashboard.html"), media_type="text/html",
                        headers={"Content-Security-Policy": PAGE_CSP, "Cache-Control": "no-cache"})
