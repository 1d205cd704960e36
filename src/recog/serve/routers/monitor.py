"""Operations of served models: ``/health`` (models and prediction log), feedback, the dashboard.

``GET /health`` answers 200 whenever the process serves: ``status`` is ``degraded`` when the
prediction log cannot be written (predictions keep being served; see :mod:`recog.monitor.log`).
``POST /v1/models/{name}:feedback`` attaches the true label to a logged prediction
(:func:`recog.monitor.feedback.add_feedback`); it needs a key only when the service has keys, like
``:predict``: it changes no model and no index, it annotates the opt-in log.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel, Field

from recog.errors import NotFoundError
from recog.serve.deps import require_key, state_of
from recog.serve.problems import problem_responses

router = APIRouter(tags=["monitoring"])


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
    await asyncio.to_thread(st.prediction_log.flush, 2.0)  # a prediction answered a moment ago is written
    return await asyncio.to_thread(add_feedback, st.prediction_log.path, body.prediction_id, body.label, model=name)
