"""The one place where errors become HTTP responses (``application/problem+json``, RFC 9457).

Body: ``{"type", "title", "status", "code", "detail"}``; ``code`` is the stable,
machine-readable part (the :attr:`recog.errors.RecogError.code` of the error).
Every error, the service-only ones included, is declared in :mod:`recog.errors`.
"""

from __future__ import annotations

import json
import logging
from http import HTTPStatus
from typing import Any, Mapping

from recog.errors import OverloadedError, RecogError, ServiceError

log = logging.getLogger("recog.serve")

PROBLEM_JSON = "application/problem+json"


_HTTP_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
               405: "method_not_allowed", 406: "not_acceptable", 413: "payload_too_large",
               415: "unsupported_media_type", 422: "invalid_request", 429: "overloaded",
               500: "internal_error", 503: "not_ready", 504: "deadline_exceeded"}


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` saying that these statuses answer problem+json with a stable ``code``."""
    doc = {"model": None, "content": {PROBLEM_JSON: {}}, "description": "problem+json with a stable `code`"}
    return {status: doc for status in statuses}


def problem_body(status: int, code: str, detail: str, **extra: Any) -> dict[str, Any]:
    try:
        title = HTTPStatus(status).phrase
    except ValueError:
        title = "Error"
    return {"type": f"urn:recog:problem:{code}", "title": title, "status": status, "code": code,
            "detail": detail, **extra}


def problem_bytes(status: int, code: str, detail: str, **extra: Any) -> bytes:
    return json.dumps(problem_body(status, code, detail, **extra)).encode()


def problem_response(status: int, code: str, detail: str, *, headers: Mapping[str, str] | None = None,
                     **extra: Any):
    from starlette.responses import Response

    return Response(problem_bytes(status, code, detail, **extra), status_code=status,
                    media_type=PROBLEM_JSON, headers=dict(headers or {}))


def headers_for(exc: RecogError) -> dict[str, str]:
    headers: dict[str, str] = {}
    if isinstance(exc, OverloadedError):
        headers["Retry-After"] = str(max(1, int(round(exc.retry_after))))
    if exc.http_status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="recog"'
    if exc.http_status == 503:
        headers["Retry-After"] = "1"
    return headers


def install_handlers(app) -> None:
    """Map every error that can leave a route to problem+json: the tree, HTTP errors, validation, the rest."""
    from fastapi.exceptions import RequestValidationError
    from starlette.exceptions import HTTPException

    @app.exception_handler(RecogError)
    async def _recog_error(request, exc: RecogError):
        if exc.http_status >= 500 and not isinstance(exc, ServiceError):
            log.error("%s %s failed: %s", request.method, request.url.path, exc)
        return problem_response(exc.http_status, exc.code, str(exc), headers=headers_for(exc))

    @app.exception_handler(HTTPException)
    async def _http_error(request, exc: HTTPException):
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        detail = exc.detail if isinstance(exc.detail, str) else json.dumps(exc.detail)
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"no route {request.method} {request.url.path}; see /docs for the API."
        return problem_response(exc.status_code, code, detail, headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request, exc: RequestValidationError):
        parts = []
        for err in exc.errors():
            where = ".".join(str(x) for x in err.get("loc", ()))
            parts.append(f"{where}: {err.get('msg')}")
        return problem_response(400, "invalid_request", "; ".join(parts) or "invalid request.")

    @app.exception_handler(Exception)
    async def _unexpected(request, exc: Exception):
        # A bug, not a user error: log it with its traceback, answer a generic 500.
        log.exception("unhandled error in %s %s", request.method, request.url.path)
        return problem_response(500, "internal_error", "internal server error; see the server log.")
