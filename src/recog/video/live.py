"""Live annotated streams for the service: the newest annotated frame of a run, as JPEG, to many viewers.

A :class:`LiveStream` is a sink of :func:`~recog.video.run.run_video`: it keeps only the newest
processed frame (a slow viewer skips frames, it never makes the run wait) and encodes it to JPEG
once, when a viewer asks, whatever the number of viewers. The service's video router
(:mod:`recog.serve.routers.video`) sends it as MJPEG (``multipart/x-mixed-replace``).

Which sources a server streams is decided by whoever starts it (``recog video BUNDLE SOURCE
--live``), never by a client: the page picks among :func:`streams_of` by name, so an anonymous
caller cannot make the server open a URL.
"""

from __future__ import annotations

import io
import threading
import time
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

if TYPE_CHECKING:
    from recog.video.run import Processed, VideoSummary
    from recog.video.tracker import Track

#: JPEG quality of the frames sent to viewers.
JPEG_QUALITY = 80


class LiveStream:
    """The newest annotated frame of one run, for the viewers of ``/v1/video/streams/{name}``.

    Attributes:
        name: the stream's URL name; ``source``: the source as shown to viewers (password masked).
        seq: number of frames published so far (a viewer waits for it to grow).
        finished: the run has ended (``summary`` says how).
        max_viewers: viewers served at once; more are refused (429).
    """

    def __init__(self, name: str, *, source: str, model: str, max_viewers: int = 4) -> None:
        self.name, self.source, self.model = name, source, model
        self.max_viewers = max_viewers
        self.viewers = 0
        self.seq = 0
        self.finished = False
        self.summary: "VideoSummary | None" = None
        self.started = time.monotonic()
        self._image: np.ndarray | None = None
        self._jpeg: tuple[int, bytes] = (0, b"")
        self._lock = threading.Lock()

    def add(self, item: "Processed") -> None:
        image = item.annotated()
        with self._lock:
            self._image = image
            self.seq += 1

    def close(self, summary: "VideoSummary", ended: "Sequence[Track]" = ()) -> None:
        self.summary = summary
        self.finished = True

    def jpeg(self) -> tuple[int, bytes]:
        """``(seq, JPEG bytes)`` of the newest frame (``(0, b"")`` before the first one)."""
        from PIL import Image

        with self._lock:
            seq, image = self.seq, self._image
            if image is None or self._jpeg[0] == seq:
                return self._jpeg
            buf = io.BytesIO()
            Image.fromarray(image).save(buf, format="JPEG", quality=JPEG_QUALITY)
            self._jpeg = (seq, buf.getvalue())
            return self._jpeg

    def describe(self) -> dict[str, Any]:
        elapsed = time.monotonic() - self.started
        return {"name": self.name, "source": self.source, "model": self.model, "frames": self.seq,
                "fps": round(self.seq / elapsed, 2) if elapsed > 0 else 0.0, "viewers": self.viewers,
                "running": not self.finished,
                "stopped": self.summary.stopped if self.summary is not None else None}


def streams_of(app: Any) -> dict[str, LiveStream]:
    """The live streams registered on a service app (``app.state.video_streams``; empty if none)."""
    return getattr(app.state, "video_streams", None) or {}


def attach_streams(app: Any, streams: Sequence[LiveStream]) -> None:
    """Register ``streams`` on the app (by name) for the video router to serve."""
    app.state.video_streams = {**streams_of(app), **{s.name: s for s in streams}}
