"""``recog batch-predict``: predictions for many files, locally or on Ray Data (being built, issue 17)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add ``recog batch-predict`` to the app (nothing yet)."""
