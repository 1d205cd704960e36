"""``/docs``: the interactive API docs (Swagger UI), served from installed packages: no CDN, works offline.

FastAPI's own ``/docs`` page loads Swagger UI from a CDN and starts it with an
inline script, so it needs the internet and cannot run under a strict
Content-Security-Policy. This page is ``static/docs.html``: Swagger UI's
script and stylesheet come from the ``fastapi-offline`` package (MIT; it ships
the ``swagger-ui-dist`` 5.x files, Apache-2.0), mounted at ``/docs/assets``, and
the start-up code is ``static/docs.js``. Every request the page makes goes to
this service (``/openapi.json``, and the calls "Try it out" sends).
"""

from __future__ import annotations

import logging
from importlib import resources
from importlib.abc import Traversable

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, Response

from recog.errors import NotFoundError, NotReadyError
from recog.serve.deps import state_of
from recog.serve.routers.web import static_dir

log = logging.getLogger("recog.serve")

router = APIRouter(include_in_schema=False)

ASSETS_URL = "/docs/assets"

#: Like the web page's policy; Swagger UI's stylesheet draws its icons from data: URLs.
DOCS_CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
            "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")


def swagger_ui_dir() -> Traversable | None:
    """Swagger UI's files (``swagger-ui-bundle.js``, ``swagger-ui.css``), or None if the package is missing."""
    try:
        return resources.files("fastapi_offline") / "static"
    except ModuleNotFoundError:
        return None


def mount_assets(app) -> None:
    """Serve Swagger UI's files at :data:`ASSETS_URL` (nothing if the package is missing; /docs then says so)."""
    from fastapi.staticfiles import StaticFiles

    folder = swagger_ui_dir()
    if folder is None:
        log.warning("/docs is off: the fastapi-offline package (Swagger UI files) is not installed")
        return
    app.mount(ASSETS_URL, StaticFiles(directory=str(folder)), name="docs-assets")


@router.get("/docs")
async def swagger_ui(request: Request) -> Response:
    if not state_of(request).settings.docs:
        raise NotFoundError("the API docs are turned off on this service (docs: false).")
    if swagger_ui_dir() is None:
        raise NotReadyError("the interactive docs need the fastapi-offline package, which is not installed.",
                            hint="pip install fastapi-offline; the schema is at /openapi.json meanwhile")
    return FileResponse(str(static_dir() / "docs.html"), media_type="text/html",
                        headers={"Content-Security-Policy": DOCS_CSP, "Cache-Control": "no-cache"})
