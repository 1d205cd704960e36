"""Timestamps: the one way recog writes "now" into manifests, reports and stores."""

from __future__ import annotations

import datetime as _dt


def utc_now() -> str:
    """The current UTC time as ISO 8601 with seconds, e.g. ``2026-12-02T11:56:06+00:00``."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
