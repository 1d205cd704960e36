"""Operations: liveness, readiness (for load balancers and orchestrators), Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response

from recog.errors import NotReadyError
from recog.serve.deps import require_key, state_of
from recog.serve.problems import PROBLEM_JSON, problem_body, problem_responses

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="Liveness: the process answers")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="Readiness: every model loaded and warmed, not shutting down",
            responses=problem_responses(503))
async def readyz(request: Request) -> Response:
    st = state_of(request)
    if st.draining or not st.ready:
        reason = "shutting down" if st.draining else "models are still loading"
        return JSONResponse(problem_body(503, NotReadyError.code, f"not ready: {reason}."), status_code=503,
                            media_type=PROBLEM_JSON, headers={"Retry-After": "1"})
    return JSONResponse({"status": "ready", "models": list(st.pool.models)})


@router.get("/metrics", summary="Prometheus metrics", dependencies=[Depends(require_key)], response_class=Response)
async def metrics(request: Request) -> Response:
    body, ctype = state_of(request).metrics.exposition()
    return Response(body, media_type=ctype)
