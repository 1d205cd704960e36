"""The video loop: frames from a source, the model through its task, tracking, sinks.

:func:`run_video` reads a :class:`~recog.video.sources.VideoSource` (a live one through a
:class:`~recog.video.reader.LatestFrameReader`, so frames the model has no time for are dropped,
not queued), keeps every ``every``-th frame, runs the :class:`~recog.runtime.predictor.Predictor`
on it (any task: classification, detection, anomaly), tracks detections when asked
(:class:`~recog.video.tracker.ByteTracker`) and hands each :class:`Processed` frame to the sinks:
the annotated video (:class:`AnnotatedVideo`), the JSONL events (:class:`~recog.video.events.EventLog`),
a live stream (:class:`~recog.video.live.LiveStream`). It returns a :class:`VideoSummary`.

Example:
    >>> model = recog.load("runs/cells/best")                                     # doctest: +SKIP
    >>> run_video(model, open_source("in.mp4"), VideoOptions(every=2, track=True),
    ...           sinks=[AnnotatedVideo("out.mp4")]).to_dict()                     # doctest: +SKIP
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Protocol, Sequence

import numpy as np

from recog.errors import InvalidInputError
from recog.video.annotate import annotate
from recog.video.reader import LatestFrameReader
from recog.video.sources import Frame, VideoSource
from recog.video.tracker import ByteTracker, Track
from recog.video.writer import VideoWriter

if TYPE_CHECKING:
    from recog.runtime.predictor import Predictor

#: Processed frames whose latencies the summary's percentiles cover (the most recent ones).
LATENCY_WINDOW = 10_000


@dataclass(frozen=True)
class VideoOptions:
    """How to run a model over a video.

    Attributes:
        every: process one frame in ``every`` (1: all); on a live source, at most one per ``every`` source frames.
        track: track detections across frames (detect models only).
        track_score: detections at or above this score start and keep tracks (ByteTrack's high
            threshold); those down to a fifth of it only keep tracks alive.
        max_latency: seconds; a frame older than this when the model is free is skipped (counted
            ``stale``: a source that delivers late, e.g. a burst after a network stall), and a result
            ready later than this after its frame arrived is counted ``late`` (the model is too slow
            for the budget: sample with ``every`` or use a faster backend).
        max_frames: stop after processing this many frames.
        predict: options for the task (``min_score``, ``threshold``, ``top_k``).
    """

    every: int = 1
    track: bool = False
    track_score: float = 0.5
    max_latency: float | None = None
    max_frames: int | None = None
    predict: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.every < 1:
            raise InvalidInputError(f"every must be at least 1, got {self.every}.")
        if self.max_latency is not None and not self.max_latency > 0:
            raise InvalidInputError(f"max latency must be a positive number of seconds, got {self.max_latency}.")


@dataclass
class Processed:
    """One frame the model ran on, its result, and (tracking) its tracks and the tracks that entered or left."""

    frame: Frame
    result: Any
    tracks: list[Track] | None = None
    entered: list[Track] = field(default_factory=list)
    left: list[Track] = field(default_factory=list)
    latency: float = 0.0
    _annotated: np.ndarray | None = field(default=None, repr=False)

    def annotated(self) -> np.ndarray:
        """The frame with its result drawn (computed once, shared by the sinks)."""
        if self._annotated is None:
            self._annotated = annotate(self.frame.image, self.result, self.tracks,
                                       caption=f"frame {self.frame.index}  {self.frame.time:.2f} s")
        return self._annotated


class Sink(Protocol):
    """Where processed frames go: ``add`` each, then ``close`` with the summary and the tracks still open."""

    def add(self, item: Processed) -> None: ...

    def close(self, summary: "VideoSummary", ended: Sequence[Track] = ()) -> None: ...


class AnnotatedVideo:
    """A sink writing each processed frame, annotated, to a video file at its source time."""

    def __init__(self, path: str | Path, *, fps: float | None = None) -> None:
        self.writer = VideoWriter(path, fps=fps)

    def add(self, item: Processed) -> None:
        self.writer.write(item.annotated(), item.frame.time)

    def close(self, summary: "VideoSummary", ended: Sequence[Track] = ()) -> None:
        self.writer.close()


@dataclass
class VideoSummary:
    """What a run did. ``dropped``: frames a live source delivered while the model was busy;
    ``latency_ms``: p50/p95 over the last :data:`LATENCY_WINDOW` processed frames (a camera runs for
    days), max over the whole run;
    ``skipped``: frames left out by ``every``; ``stale``: frames older than ``max_latency`` when
    the model was free; ``late``: processed frames whose result took longer than ``max_latency``."""

    source: str
    frames_read: int = 0
    processed: int = 0
    dropped: int = 0
    skipped: int = 0
    stale: int = 0
    late: int = 0
    reconnects: int = 0
    tracks: int = 0
    seconds: float = 0.0
    last_frame: int | None = None
    last_time: float | None = None
    stopped: str = ""
    latencies: deque = field(default_factory=lambda: deque(maxlen=LATENCY_WINDOW), repr=False)
    worst_latency: float = 0.0

    @property
    def fps(self) -> float:
        """Frames processed per second of wall time."""
        return self.processed / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        lat = np.array(self.latencies) * 1000 if self.latencies else None  # the last LATENCY_WINDOW frames
        return {"source": self.source, "frames_read": self.frames_read, "processed": self.processed,
                "dropped": self.dropped, "skipped": self.skipped, "stale": self.stale, "late": self.late,
                "reconnects": self.reconnects, "tracks": self.tracks, "seconds": round(self.seconds, 3),
                "fps": round(self.fps, 2),
                "latency_ms": None if lat is None else {"p50": round(float(np.percentile(lat, 50)), 1),
                                                        "p95": round(float(np.percentile(lat, 95)), 1),
                                                        "max": round(self.worst_latency * 1000, 1)},
                "last_frame": self.last_frame,
                "last_time": None if self.last_time is None else round(self.last_time, 3),
                "stopped": self.stopped}

    def line(self) -> str:
        """One plain progress line (for logs)."""
        return (f"{self.processed} frames processed of {self.frames_read} read, {self.dropped} dropped, "
                f"{self.fps:.1f} fps")


def run_video(model: "Predictor", source: VideoSource, options: VideoOptions = VideoOptions(), *,
              sinks: Sequence[Sink] = (), progress: Callable[[VideoSummary], None] | None = None,
              stop: threading.Event | None = None) -> VideoSummary:
    """Run ``model`` over ``source`` (see the module docstring); sinks are closed, the source too.

    ``model`` is a :class:`~recog.runtime.predictor.Predictor`, or any object with the same
    ``predict(image, **options)``, ``manifest.task`` and ``labels`` (faces:
    :class:`~recog.video.faces.FaceFrameModel`).

    Ctrl-C (or ``stop``) ends the run cleanly: the sinks are closed, ``stopped`` says ``"interrupted"``.

    Raises:
        InvalidInputError: ``track`` with a model that does not detect objects.
    """
    if options.track and model.manifest.task != "detect":
        raise InvalidInputError(f"tracking follows detected objects; this is a {model.manifest.task!r} model.",
                                hint="track with a detect bundle, or drop --track")
    summary = VideoSummary(source=source.name)
    tracker = (ByteTracker(high=options.track_score, low=options.track_score / 5,
                           by_class=getattr(model, "track_by_class", True)) if options.track else None)
    reader = LatestFrameReader(source) if source.live else None
    started = time.monotonic()
    last_index: int | None = None
    try:
        while not (stop is not None and stop.is_set()):
            frame = reader.get(timeout=0.5) if reader is not None else source.read()
            if frame is None:
                if reader is not None and not reader.ended:
                    continue  # a timeout: check for stop, wait again
                break
            if reader is None:
                summary.frames_read += 1
            if last_index is not None and frame.index - last_index < options.every:
                summary.skipped += 1
                continue
            if options.max_latency is not None and time.monotonic() - frame.captured > options.max_latency:
                summary.stale += 1
                continue
            last_index = frame.index
            item = _process(model, frame, tracker, options)
            for sink in sinks:
                sink.add(item)
            summary.processed += 1
            summary.latencies.append(item.latency)
            summary.worst_latency = max(summary.worst_latency, item.latency)
            if options.max_latency is not None and item.latency > options.max_latency:
                summary.late += 1
            summary.last_frame, summary.last_time = frame.index, frame.time
            summary.seconds = time.monotonic() - started
            if reader is not None:
                summary.frames_read, summary.dropped = reader.read, reader.dropped
            if progress is not None:
                progress(summary)
            if options.max_frames is not None and summary.processed >= options.max_frames:
                summary.stopped = f"stopped after {summary.processed} processed frames (max frames)"
                break
    except KeyboardInterrupt:
        summary.stopped = "interrupted"
    finally:
        source.interrupt()
        if reader is None or reader.close():
            source.close()
        if reader is not None:
            summary.frames_read, summary.dropped = reader.read, reader.dropped
        summary.seconds = time.monotonic() - started
        summary.reconnects = source.reconnects
        if not summary.stopped:
            summary.stopped = "interrupted" if stop is not None and stop.is_set() else (source.stopped or "ended")
        ended = tracker.finish() if tracker is not None else []
        summary.tracks = tracker.confirmed if tracker is not None else 0
        for sink in sinks:
            sink.close(summary, ended)
    return summary


def _process(model: "Predictor", frame: Frame, tracker: ByteTracker | None, options: VideoOptions) -> Processed:
    result = model.predict(frame.image, **options.predict)
    item = Processed(frame, result)
    if tracker is not None:
        item.tracks = tracker.update(result.boxes, result.scores, result.class_ids, result.labels,
                                     frame=frame.index, time=frame.time)
        item.entered, item.left = list(tracker.entered), list(tracker.left)
    item.latency = time.monotonic() - frame.captured
    return item
