"""The latest-frame reader: a live source read in its own thread, only the newest frame kept.

A camera delivers frames at its pace whether or not the model keeps up. Queueing them would
make the delay grow without bound; this reader holds one slot, overwrites it with each new
frame, and counts the frames overwritten before anyone took them (:attr:`dropped`). The
consumer always gets the newest frame, so its latency stays bounded by one frame interval
plus its own processing time.
"""

from __future__ import annotations

import threading

from recog.video.sources import Frame, VideoSource


class LatestFrameReader:
    """Read ``source`` in a daemon thread; :meth:`get` returns the newest frame not yet taken.

    Example:
        >>> reader = LatestFrameReader(open_source("rtsp://camera/stream"))   # doctest: +SKIP
        >>> while (frame := reader.get()) is not None: ...                    # doctest: +SKIP
    """

    def __init__(self, source: VideoSource) -> None:
        self.source = source
        self.read = 0
        self.dropped = 0
        self._latest: Frame | None = None
        self._ended = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="recog-video-reader", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while True:
                frame = self.source.read()
                with self._cond:
                    if frame is None:
                        return
                    self.read += 1
                    if self._latest is not None:
                        self.dropped += 1
                    self._latest = frame
                    self._cond.notify_all()
        finally:
            with self._cond:
                self._ended = True
                self._cond.notify_all()

    @property
    def ended(self) -> bool:
        """True once the source has no more frames (its last frame may still wait in the slot)."""
        return self._ended

    def get(self, timeout: float | None = None) -> Frame | None:
        """The newest frame not yet taken, waiting for one; None once the source has ended (or on timeout)."""
        with self._cond:
            self._cond.wait_for(lambda: self._latest is not None or self._ended, timeout)
            frame, self._latest = self._latest, None
            return frame

    def close(self, timeout: float = 5.0) -> bool:
        """Ask the source to stop and wait (bounded) for the thread; True when it has ended.

        False means the thread is still inside the source's ``read`` (a stalled network read): the
        caller must not close the source under it (the daemon thread ends with the process).
        """
        self.source.interrupt()
        self._thread.join(timeout)
        return not self._thread.is_alive()
