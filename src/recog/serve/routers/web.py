"""The web page: drop a photo, see a model's top labels, or an index's most similar items as a grid
(``/#search`` opens that mode). Served from the package, no CDN."""

from __future__ import annotations

from importlib import resources
from importlib.abc import Traversable

from fastapi import APIRouter
from fastapi.responses import FileResponse

router = APIRouter(include_in_schema=False)

#: The page loads only its own files: no CDN, no inline script, images only from uploads.
PAGE_CSP = ("default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; "
            "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")


def static_dir() -> Traversable:
    """The page's files (``index.html``, ``app.js``, ``style.css``), mounted at ``/static``."""
    return resources.files("recog.serve") / "static"


@router.get("/")
async def index() -> FileResponse:
    return FileResponse(str(static_dir() / "index.html"), media_type="text/html",
                        headers={"Content-Security-Policy": PAGE_CSP, "Cache-Control": "no-cache"})
