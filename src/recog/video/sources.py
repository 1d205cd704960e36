"""Where frames come from: video files through PyAV, camera streams and webcams through OpenCV.

:func:`open_source` turns what a user typed into a :class:`VideoSource`:

- a file path → :class:`FileSource` (PyAV; ``pip install 'recog[video]'``). Every frame is
  decoded in order; a corrupt or truncated file yields the frames that decode and
  :attr:`VideoSource.stopped` says where it stopped (frame index and time).
- ``rtsp://``, ``rtsps://``, ``http(s)://`` URLs and webcam indexes (``0``) → :class:`StreamSource`
  (OpenCV's FFmpeg or camera backend). A stream that drops is reopened with exponential backoff,
  each attempt logged on the ``recog.video`` logger.

Sources only read; :class:`recog.video.reader.LatestFrameReader` keeps the newest frame of a live
source in its own thread. Frames are ``(H, W, 3)`` uint8 RGB arrays.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from recog.errors import InvalidInputError

log = logging.getLogger("recog.video")

#: URL schemes read as network streams (through OpenCV); anything else that is not a webcam index is a file.
STREAM_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://")

#: Backoff between reconnection attempts of a dropped stream: first delay, then doubled up to the cap.
BACKOFF_FIRST_S, BACKOFF_MAX_S = 0.5, 8.0


class VideoError(InvalidInputError):
    """A video file or stream cannot be opened or read at all (missing, unsupported, no PyAV)."""

    code = "invalid_video"


@dataclass(frozen=True)
class Frame:
    """One decoded frame.

    Attributes:
        index: position in the source, counting every frame decoded (0-based).
        time: seconds from the start: the frame's timestamp in a file; since opening for a stream.
        image: ``(H, W, 3)`` uint8 RGB.
        captured: ``time.monotonic()`` when the frame was read (latency is counted from here).
    """

    index: int
    time: float
    image: np.ndarray = field(repr=False)
    captured: float


class VideoSource:
    """A source of frames: :meth:`read` until it returns None, then :attr:`stopped` says why.

    Attributes:
        name: what the user gave, with any password in a URL masked.
        fps: frames per second the source announces (None when unknown).
        live: frames arrive at the source's pace whether or not anyone reads them (a camera,
            a file played in real time): read them through a :class:`~recog.video.reader.LatestFrameReader`.
        stopped: why reading ended (``"end of file"``, ``"decode error at frame 41 (1.37 s): ..."``), or None.
        reconnects: times a dropped stream was reopened.
    """

    name: str = ""
    fps: float | None = None
    live: bool = False
    stopped: str | None = None
    reconnects: int = 0
    frame_count: int | None = None

    def read(self) -> Frame | None:
        raise NotImplementedError

    def interrupt(self) -> None:
        """Make a blocked or waiting :meth:`read` return soon (stops backoff waits)."""

    def close(self) -> None:
        """Release the decoder."""


def display_name(spec: str) -> str:
    """``spec`` with the password of a URL masked (``rtsp://user:***@host/...``): safe for logs and events.

    Example:
        >>> display_name("rtsp://admin:secret@10.0.0.5/stream1")
        'rtsp://admin:***@10.0.0.5/stream1'
    """
    return re.sub(r"^([a-z][a-z0-9+.-]*://[^/@:]*):[^/@]*@", r"\1:***@", spec, flags=re.I)


def is_stream(spec: str) -> bool:
    """True for stream URLs and webcam indexes (``"0"``), False for file paths."""
    return spec.isdigit() or spec.lower().startswith(STREAM_SCHEMES)


def open_source(spec: str, *, realtime: bool = False, retries: int = 5) -> VideoSource:
    """The source ``spec`` names: a stream URL or webcam index (OpenCV), else a file (PyAV).

    Args:
        realtime: play a file at its own frame rate, as a camera would deliver it (frames the model
            has no time for are dropped); streams are always live.
        retries: reconnection attempts of a dropped stream before giving up.

    Raises:
        VideoError: a missing file, one PyAV cannot read, PyAV not installed, a stream that cannot be opened.
    """
    if is_stream(spec):
        return StreamSource(spec, retries=retries)
    return FileSource(spec, realtime=realtime)


def require_av() -> Any:
    """The ``av`` module, or a one-line :class:`VideoError` saying how to install it."""
    try:
        import av
    except ImportError:
        raise VideoError("reading and writing video files needs PyAV, which is not installed.",
                         hint="pip install 'recog[video]'") from None
    return av


class FileSource(VideoSource):
    """Frames of a video file, decoded by PyAV in order.

    A decode error stops reading and is recorded, not raised: the frames before it are kept.
    A file that ends well before the duration its header announces is reported as cut short.
    """

    def __init__(self, path: str | Path, *, realtime: bool = False) -> None:
        av = require_av()
        self.path = Path(path)
        self.name = str(path)
        if not self.path.is_file():
            raise VideoError(f"{path}: no such video file.", hint="check the path")
        try:
            self._container = av.open(str(self.path))
        except av.FFmpegError as exc:
            raise VideoError(f"{path}: not a video file PyAV can read ({_reason(exc)}).",
                             hint="convert it with ffmpeg to H.264 in .mp4/.mkv") from None
        if not self._container.streams.video:
            self._container.close()
            raise VideoError(f"{path}: has no video stream.")
        stream = self._container.streams.video[0]
        stream.thread_type = "AUTO"
        self.fps = float(stream.average_rate) if stream.average_rate else None
        self.frame_count = int(stream.frames) or None
        self.duration = self._container.duration / 1e6 if self._container.duration else None
        self.live = realtime
        self._frames = self._container.decode(stream)
        self._av = av
        self._index = 0
        self._last_time = 0.0
        self._started: float | None = None
        self._stop = threading.Event()

    def read(self) -> Frame | None:
        if self.stopped is not None:
            return None
        try:
            decoded = next(self._frames)
        except StopIteration:
            self.stopped = self._end_reason()
            return None
        except self._av.FFmpegError as exc:
            self.stopped = f"decode error after frame {self._index - 1} ({self._last_time:.2f} s): {_reason(exc)}"
            return None
        t = float(decoded.time) if decoded.time is not None else self._index / (self.fps or 30.0)
        if self.live:  # deliver at the file's own pace
            now = time.monotonic()
            if self._started is None:
                self._started = now - t
            if self._stop.wait(max(0.0, self._started + t - now)):
                self.stopped = "interrupted"
                return None
        frame = Frame(self._index, t, decoded.to_ndarray(format="rgb24"), time.monotonic())
        self._index += 1
        self._last_time = t
        return frame

    def _end_reason(self) -> str:
        if self._index == 0:
            return "no frame could be decoded"
        step = 1.0 / self.fps if self.fps else 0.1
        if self.duration is not None and self._last_time + 3 * step < self.duration:
            return (f"file ends early: last frame {self._index - 1} at {self._last_time:.2f} s of the "
                    f"{self.duration:.2f} s its header announces (truncated?)")
        return "end of file"

    def interrupt(self) -> None:
        self._stop.set()

    def close(self) -> None:
        self._container.close()


class StreamSource(VideoSource):
    """A network stream or webcam through OpenCV; reconnects with backoff when it drops.

    Args:
        spec: ``rtsp://...``, ``http(s)://...`` or a webcam index (``"0"``).
        retries: reconnection attempts before reading ends.
        backoff: first delay between attempts in seconds, doubled each attempt up to :data:`BACKOFF_MAX_S`.

    Raises:
        VideoError: the stream cannot be opened at all.
    """

    live = True

    def __init__(self, spec: str, *, retries: int = 5, backoff: float = BACKOFF_FIRST_S) -> None:
        import cv2

        self._cv2 = cv2
        self.spec = int(spec) if spec.isdigit() else spec
        self.name = display_name(spec)
        self.retries, self.backoff = retries, backoff
        self._stop = threading.Event()
        self._cap = self._open()
        if self._cap is None:
            raise VideoError(f"cannot open stream {self.name}.",
                             hint="check the URL, credentials and that the camera is reachable from this machine")
        fps = self._cap.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if fps and 0 < fps < 1000 else None
        self._opened = time.monotonic()
        self._index = 0

    def _open(self) -> Any:
        cap = self._cv2.VideoCapture(self.spec) if isinstance(self.spec, int) else \
            self._cv2.VideoCapture(self.spec, self._cv2.CAP_FFMPEG)
        if cap.isOpened():
            return cap
        cap.release()
        return None

    def _grab(self) -> np.ndarray | None:
        if self._cap is None:
            return None
        ok, bgr = self._cap.read()
        return bgr[:, :, ::-1].copy() if ok and bgr is not None else None

    def read(self) -> Frame | None:
        if self.stopped is not None:
            return None
        rgb = self._grab()
        attempt = 0
        while rgb is None:
            attempt += 1
            if attempt > self.retries:
                self.stopped = (f"stream lost: no frame after {self.retries} reconnection attempts "
                                f"(last frame {self._index - 1})")
                log.warning("%s: %s", self.name, self.stopped)
                return None
            delay = min(BACKOFF_MAX_S, self.backoff * 2 ** (attempt - 1))
            log.warning("%s: stream dropped after frame %d; reconnecting in %.1f s (attempt %d of %d)",
                        self.name, self._index - 1, delay, attempt, self.retries)
            if self._stop.wait(delay):
                self.stopped = "interrupted"
                return None
            if self._cap is not None:
                self._cap.release()
            self._cap = self._open()
            rgb = self._grab()
            if rgb is not None:
                self.reconnects += 1
                log.warning("%s: reconnected (attempt %d)", self.name, attempt)
        now = time.monotonic()
        frame = Frame(self._index, now - self._opened, rgb, now)
        self._index += 1
        return frame

    def interrupt(self) -> None:
        self._stop.set()

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()


def _reason(exc: Exception) -> str:
    """An FFmpeg error without its errno and file name: ``Invalid data found when processing input``."""
    text = getattr(exc, "strerror", None) or str(exc)
    return str(text).split(": '")[0]
