"""``recog video``: run a bundle over a video file, a stream or a webcam (being built, issue 17)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add ``recog video`` to the app (nothing yet)."""
