"""The one place where errors become HTTP responses (``application/problem+json``, RFC 9457).

Body: ``{"type", "title", "status", "code", "detail"}``; ``code`` is the stable,
machine-readable part (the :attr:`recog.errors.RecogError.code` of the error).
Every error, the service-only ones included, is declared in :mod:`recog.errors`.

The library's messages name files (useful on a command line); a caller of the
service must not learn the server's layout, so every ``detail`` passes through
a :class:`Redactor` first: the face store, the bundle folders and the key file
become words ("the face store", "the bundle of model pets"), and any other path
under the home, working, temporary or installation folders becomes
``<server path>``.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import tempfile
from http import HTTPStatus
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

if TYPE_CHECKING:
    from recog.serve.settings import Settings

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


class Redactor:
    """Replaces server paths in error details (see the module docstring).

    Example:
        >>> r = Redactor({"/srv/recog/faces.db": "the face store"}, prefixes=["/srv"])
        >>> r("no collection 'x' in /srv/recog/faces.db; see /srv/other/file.txt")
        "no collection 'x' in the face store; see <server path>"
    """

    def __init__(self, named: Mapping[str, str], prefixes: list[str] = ()) -> None:
        variants: dict[str, str] = {}
        for path, label in named.items():
            for form in {str(path), os.path.abspath(path), os.path.realpath(path)}:
                variants.setdefault(form, label)
        parts = [(re.escape(p), label) for p, label in sorted(variants.items(), key=lambda kv: -len(kv[0]))]
        # a prefix must name at least two levels (never "/" alone) and match whole path components
        roots = {os.path.realpath(p) for p in prefixes} | {os.path.abspath(p) for p in prefixes}
        roots = {r for r in roots if len(Path(r).parts) >= 2}
        rest = r"(?:[/\\][^\s'\",;:()\[\]]*)?(?![\w.-])"  # the rest of the path, up to a space or quote
        self._named = [(re.compile(pat + rest), label) for pat, label in parts]
        self._roots = (re.compile("(?:" + "|".join(re.escape(r) for r in sorted(roots, key=len, reverse=True))
                                  + ")" + rest) if roots else None)

    @classmethod
    def for_settings(cls, settings: "Settings") -> "Redactor":
        from recog.faces.schema import default_db_path

        named = {str(settings.faces_db or default_db_path()): "the face store"}
        for spec in settings.models:
            named[str(spec.path)] = f"the bundle of model {spec.name}"
        if settings.api_keys_file is not None:
            named[str(settings.api_keys_file)] = "the API key file"
        prefixes = [str(Path.home()), os.getcwd(), tempfile.gettempdir(), sys.prefix, sys.base_prefix,
                    str(Path(__file__).resolve().parents[2])]
        prefixes += [str(Path(p).parent) for p in named]
        return cls(named, prefixes)

    def __call__(self, text: str) -> str:
        for pattern, label in self._named:
            text = pattern.sub(label, text)
        if self._roots is not None:
            text = self._roots.sub("<server path>", text)
        return text


def install_handlers(app, redact: Redactor | None = None) -> None:
    """Map every error that can leave a route to problem+json: the tree, HTTP errors, validation, the rest."""
    from fastapi.exceptions import RequestValidationError
    from starlette.exceptions import HTTPException

    clean = redact or (lambda text: text)

    @app.exception_handler(RecogError)
    async def _recog_error(request, exc: RecogError):
        if exc.http_status >= 500 and not isinstance(exc, ServiceError):
            log.error("%s %s failed: %s", request.method, request.url.path, exc)
        return problem_response(exc.http_status, exc.code, clean(str(exc)), headers=headers_for(exc))

    @app.exception_handler(HTTPException)
    async def _http_error(request, exc: HTTPException):
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        detail = exc.detail if isinstance(exc.detail, str) else json.dumps(exc.detail)
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"no route {request.method} {request.url.path}; see /docs for the API."
        return problem_response(exc.status_code, code, clean(detail), headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request, exc: RequestValidationError):
        parts = []
        for err in exc.errors():
            where = ".".join(str(x) for x in err.get("loc", ()))
            parts.append(f"{where}: {err.get('msg')}")
        return problem_response(400, "invalid_request", clean("; ".join(parts) or "invalid request."))

    @app.exception_handler(Exception)
    async def _unexpected(request, exc: Exception):
        # A bug, not a user error: log it with its traceback, answer a generic 500.
        log.exception("unhandled error in %s %s", request.method, request.url.path)
        return problem_response(500, "internal_error", "internal server error; see the server log.")
