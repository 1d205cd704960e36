"""JSON Lines events of a video run: enter/leave per track, per-class counts per second, a summary.

One JSON object per line, each with ``"event"``:

- ``start``: the source, the model's task and labels;
- ``enter`` / ``leave`` (``--track``): a track id confirmed / ended, with its label, frame index
  and time (a ``leave`` also gives the first frame, the frames it was seen in and its duration;
  tracks still present when the source ends leave with ``"reason": "end"``);
- ``counts``: once per second of video: for detections the most objects of each class seen in
  one processed frame of that second (``tracks``: the distinct track ids per class, with
  ``--track``); for classification the number of processed frames with each top label; for
  anomaly models the number of frames per verdict;
- ``summary``: frames read, processed, dropped, fps and where reading stopped.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Sequence

if TYPE_CHECKING:
    from recog.video.run import Processed, VideoSummary
    from recog.video.tracker import Track


def frame_counts(result: Any, tracks: "Sequence[Track] | None") -> Counter:
    """Objects per class in one frame (detections, tracked ones when tracking), else ``{top label or verdict: 1}``."""
    if tracks is not None:
        return Counter(t.label for t in tracks)
    if hasattr(result, "verdict"):
        return Counter([result.verdict])
    if hasattr(result, "class_ids"):
        return Counter(result.labels)
    return Counter([result.label])


class EventLog:
    """Writes the events of one run to ``path`` (see the module docstring); a sink of :func:`~recog.video.run.run_video`."""

    def __init__(self, path: str | Path, *, source: str, task: str, labels: Sequence[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh: IO[str] = self.path.open("w", encoding="utf-8")
        self._objects = task == "detect"
        self._second: int | None = None
        self._frames = 0
        self._counts: Counter = Counter()
        self._tracks: dict[str, set[int]] = {}
        self._write({"event": "start", "source": source, "task": task, "labels": list(labels)})

    def _write(self, record: dict[str, Any]) -> None:
        self._fh.write(json.dumps(record) + "\n")

    def add(self, item: "Processed") -> None:
        second = int(item.frame.time)
        if self._second is not None and second != self._second:
            self._flush()
        self._second = second
        self._frames += 1
        for label, n in frame_counts(item.result, item.tracks).items():
            self._counts[label] = max(self._counts[label], n) if self._objects else self._counts[label] + n
        for t in item.tracks or ():
            self._tracks.setdefault(t.label, set()).add(t.id)
        for t in item.entered:
            self._write({"event": "enter", "track_id": t.id, "label": t.label, "frame": t.last_frame,
                         "time": round(t.last_time, 3), "box": [round(float(v), 1) for v in t.box]})
        self._leave(item.left, "lost")

    def _leave(self, tracks: "Sequence[Track]", reason: str) -> None:
        for t in tracks:
            self._write({"event": "leave", "track_id": t.id, "label": t.label, "frame": t.last_frame,
                         "time": round(t.last_time, 3), "first_frame": t.first_frame, "frames_seen": t.hits,
                         "duration_s": round(t.last_time - t.first_time, 3), "reason": reason})

    def _flush(self) -> None:
        if self._second is None:
            return
        record: dict[str, Any] = {"event": "counts", "second": self._second, "frames": self._frames,
                                  "counts": dict(sorted(self._counts.items()))}
        if self._tracks:
            record["tracks"] = {k: len(v) for k, v in sorted(self._tracks.items())}
        self._write(record)
        self._frames, self._counts, self._tracks = 0, Counter(), {}

    def close(self, summary: "VideoSummary", ended: "Sequence[Track]" = ()) -> None:
        self._flush()
        self._leave(ended, "end")
        self._write({"event": "summary", **summary.to_dict()})
        self._fh.close()
