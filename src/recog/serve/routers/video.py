"""Live annotated video streams for the web page (being built, issue 17)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["video"])
