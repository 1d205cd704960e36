"""Multi-object tracking of detections, ByteTrack-style: ids that stay with objects across frames.

Each frame (Zhang et al., "ByteTrack: Multi-Object Tracking by Associating Every Detection Box", 2022):

1. every track predicts its box with a constant-velocity model (velocity smoothed over frames);
2. high-score detections (``score >= high``) are matched to all tracks by IoU with the
   Hungarian algorithm (:func:`scipy.optimize.linear_sum_assignment`), same class only (or any
   class with ``by_class=False``: faces, whose label is who they are and may change between frames);
3. low-score detections (``low <= score < high``: occluded, blurred objects) are matched to the
   tracks still unmatched that were seen in the previous frame, so an object that fades keeps its id;
4. unmatched high-score detections start new tracks; a track is *confirmed* (gets an ``enter``
   event) after ``min_hits`` matched frames and is *ended* (a ``leave`` event) after ``max_missed``
   frames without a match (kept meanwhile so an object that reappears gets its id back).

A track's label is the one its matched detections gave most often (a detector's class never
changes along a track; a face's identity is voted over the frames it was seen in).

Boxes are ``[x1, y1, x2, y2]`` pixels.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace

import numpy as np

from recog.detect.boxes import iou_matrix


def match(iou: np.ndarray, threshold: float) -> list[tuple[int, int]]:
    """Pairs ``(row, col)`` of the assignment maximising total IoU, keeping pairs with ``IoU >= threshold``."""
    if iou.size == 0:
        return []
    from scipy.optimize import linear_sum_assignment

    rows, cols = linear_sum_assignment(-iou)
    return [(int(r), int(c)) for r, c in zip(rows, cols) if iou[r, c] >= threshold]


@dataclass
class Track:
    """One tracked object.

    Attributes:
        id: stable id (1, 2, ...), never reused.
        box: last matched box; ``predicted()`` extrapolates it by ``velocity`` per frame.
        hits: frames it was matched in; ``missed``: frames since its last match.
        first_frame, last_frame: source frame indexes of its first and last match.
        votes: how often each label was matched; ``label`` is the most frequent (the first on a tie).
    """

    id: int
    box: np.ndarray
    label: str
    class_id: int
    score: float
    first_frame: int
    last_frame: int
    first_time: float
    last_time: float
    hits: int = 1
    missed: int = 0
    confirmed: bool = False
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(4))
    votes: Counter = field(default_factory=Counter)

    def vote(self, label: str, class_id: int) -> None:
        """Count one matched detection's label; the track takes the most frequent one."""
        self.votes[(label, class_id)] += 1
        self.label, self.class_id = self.votes.most_common(1)[0][0]

    def predicted(self) -> np.ndarray:
        return self.box + self.velocity * (self.missed + 1)

    def to_dict(self) -> dict:
        return {"track_id": self.id, "label": self.label, "score": round(float(self.score), 4),
                "box": [round(float(v), 1) for v in self.box]}


def _snapshot(track: Track) -> Track:
    return replace(track, votes=Counter(track.votes))


class ByteTracker:
    """ByteTrack-style association of per-frame detections into tracks (see the module docstring).

    Args:
        high: detections at or above this score are matched first and may start tracks.
        low: detections below it are ignored; between ``low`` and ``high`` they only extend tracks.
        match_iou: lowest IoU of a first-round match; ``low_match_iou`` of a second-round one.
        min_hits: matched frames before a track is confirmed (reported).
        max_missed: processed frames a track may go unmatched before it ends.
        smoothing: weight of the newest displacement in the velocity estimate.
        by_class: match detections only to tracks of their class (False: any; the label is voted).

    Example:
        >>> t = ByteTracker(min_hits=1)
        >>> [tr.id for tr in t.update(np.array([[0, 0, 10, 10.]]), np.array([.9]), np.array([0]), ["a"])]
        [1]
    """

    def __init__(self, *, high: float = 0.5, low: float = 0.1, match_iou: float = 0.2, low_match_iou: float = 0.4,
                 min_hits: int = 2, max_missed: int = 30, smoothing: float = 0.5, by_class: bool = True) -> None:
        if not 0 <= low <= high <= 1:
            raise ValueError(f"need 0 <= low <= high <= 1, got low={low}, high={high}")
        self.high, self.low = high, low
        self.match_iou, self.low_match_iou = match_iou, low_match_iou
        self.min_hits, self.max_missed, self.smoothing = min_hits, max_missed, smoothing
        self.by_class = by_class
        self.tracks: list[Track] = []
        self.entered: list[Track] = []
        self.left: list[Track] = []
        self._next_id = 1
        self.confirmed = 0  # tracks confirmed so far

    def update(self, boxes: np.ndarray, scores: np.ndarray, class_ids: np.ndarray, labels, *,
               frame: int = 0, time: float = 0.0) -> list[Track]:
        """Associate one frame's detections; returns the confirmed tracks matched in this frame
        (copies: they keep this frame's boxes while the tracker goes on).

        After the call, :attr:`entered` holds tracks confirmed in this frame and :attr:`left` those that ended.
        """
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        scores = np.asarray(scores, np.float64).reshape(-1)
        class_ids = np.asarray(class_ids, np.int64).reshape(-1)
        labels = list(labels)
        self.entered, self.left = [], []
        high = np.flatnonzero(scores >= self.high)
        low = np.flatnonzero((scores >= self.low) & (scores < self.high))

        pool = list(range(len(self.tracks)))
        matched: dict[int, int] = {}
        for dets, candidates, threshold in ((high, pool, self.match_iou), (low, None, self.low_match_iou)):
            if candidates is None:  # second round: tracks left unmatched that were seen last frame
                candidates = [t for t in pool if t not in matched and self.tracks[t].missed == 0]
            else:
                candidates = [t for t in candidates if t not in matched]
            if not len(dets) or not candidates:
                continue
            iou = self._gated_iou(candidates, boxes[dets], class_ids[dets])
            for r, c in match(iou, threshold):
                matched[candidates[r]] = int(dets[c])

        for t, d in matched.items():
            self._hit(self.tracks[t], boxes[d], float(scores[d]), frame, time)
            self.tracks[t].vote(labels[d], int(class_ids[d]))
        used = set(matched.values())
        born = len(self.tracks)
        for d in high:
            if int(d) not in used:
                self.tracks.append(Track(self._next_id, boxes[d].copy(), labels[d], int(class_ids[d]),
                                         float(scores[d]), frame, frame, time, time))
                self.tracks[-1].vote(labels[d], int(class_ids[d]))
                self._next_id += 1
                self._confirm(self.tracks[-1])
        kept = []
        for i, track in enumerate(self.tracks):
            if i in matched or i >= born:
                kept.append(track)
                continue
            track.missed += 1
            if track.missed > self.max_missed or not track.confirmed:  # an unconfirmed track gets no second chance
                if track.confirmed:
                    self.left.append(track)
                continue
            kept.append(track)
        self.tracks = kept
        # snapshots: the tracks go on changing with later frames, what was returned must not
        self.entered = [_snapshot(t) for t in self.entered]
        return [_snapshot(t) for t in self.tracks if t.missed == 0 and t.confirmed]

    def finish(self) -> list[Track]:
        """End every remaining confirmed track (the source ended); returns them."""
        ended = [t for t in self.tracks if t.confirmed]
        self.tracks = []
        return ended

    def _gated_iou(self, tracks: list[int], boxes: np.ndarray, class_ids: np.ndarray) -> np.ndarray:
        predicted = np.stack([self.tracks[t].predicted() for t in tracks])
        iou = iou_matrix(predicted, boxes)
        if not self.by_class:
            return iou
        same = np.array([self.tracks[t].class_id for t in tracks])[:, None] == class_ids[None, :]
        return np.where(same, iou, 0.0)

    def _hit(self, track: Track, box: np.ndarray, score: float, frame: int, time: float) -> None:
        step = (box - track.box) / (track.missed + 1)
        track.velocity = (step if track.hits == 1 else
                          self.smoothing * step + (1 - self.smoothing) * track.velocity)
        track.box = box.copy()
        track.score = score
        track.hits += 1
        track.missed = 0
        track.last_frame, track.last_time = frame, time
        self._confirm(track)

    def _confirm(self, track: Track) -> None:
        if not track.confirmed and track.hits >= self.min_hits:
            track.confirmed = True
            self.confirmed += 1
            self.entered.append(track)
