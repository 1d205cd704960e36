"""CLEAR-MOT tracking scores (Bernardin & Stiefelhagen, 2008): MOTA, MOTP, ID switches.

Per frame, ground-truth objects are matched to hypotheses (tracker outputs) at ``IoU >= threshold``:

1. a correspondence kept from earlier frames (object ``o`` ↔ track ``h``) stays if both are
   present and still overlap enough;
2. the remaining objects and hypotheses are matched by the Hungarian algorithm on IoU;
3. an object matched to a different track than the one it was last matched to (in any earlier
   frame) counts one **ID switch**.

Unmatched objects are misses (FN), unmatched hypotheses false positives (FP), and
``MOTA = 1 - (FN + FP + IDSW) / number of ground-truth objects over all frames``;
MOTP is the mean IoU of the matches (1 is perfect).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

from recog.detect.boxes import iou_matrix
from recog.video.tracker import match


@dataclass(frozen=True)
class MotScores:
    """CLEAR-MOT counts and scores over a sequence (see the module docstring)."""

    mota: float
    motp: float
    id_switches: int
    false_positives: int
    misses: int
    matches: int
    objects: int

    def to_dict(self) -> dict:
        return {"mota": round(self.mota, 4), "motp": round(self.motp, 4), "id_switches": self.id_switches,
                "false_positives": self.false_positives, "misses": self.misses, "matches": self.matches,
                "objects": self.objects}


def clear_mot(frames: Iterable[tuple[Sequence[int], np.ndarray, Sequence[int], np.ndarray]], *,
              threshold: float = 0.5) -> MotScores:
    """Score a tracker against ground truth.

    Args:
        frames: per frame ``(truth_ids, truth_boxes (N, 4), track_ids, track_boxes (M, 4))``.
        threshold: lowest IoU of a match.

    Example:
        >>> box = np.array([[0, 0, 10, 10.]])
        >>> clear_mot([([1], box, [7], box), ([1], box, [8], box)]).id_switches
        1
    """
    current: dict[int, int] = {}   # object -> track matched in the previous frame it was matched in
    last: dict[int, int] = {}      # object -> track it was last matched to (for switches across gaps)
    fp = fn = switches = matches = objects = 0
    iou_sum = 0.0
    for truth_ids, truth_boxes, hyp_ids, hyp_boxes in frames:
        truth_ids, hyp_ids = list(truth_ids), list(hyp_ids)
        iou = iou_matrix(truth_boxes, hyp_boxes)
        pairs: dict[int, int] = {}
        for o, obj in enumerate(truth_ids):  # 1. keep correspondences that still hold
            h = current.get(obj)
            if h in hyp_ids and iou[o, hyp_ids.index(h)] >= threshold:
                pairs[o] = hyp_ids.index(h)
        rest_o = [o for o in range(len(truth_ids)) if o not in pairs]
        rest_h = [h for h in range(len(hyp_ids)) if h not in pairs.values()]
        if rest_o and rest_h:  # 2. match the rest
            for r, c in match(iou[np.ix_(rest_o, rest_h)], threshold):
                pairs[rest_o[r]] = rest_h[c]
        current = {}
        for o, h in pairs.items():
            obj, hyp = truth_ids[o], hyp_ids[h]
            if obj in last and last[obj] != hyp:  # 3. a different track than before
                switches += 1
            last[obj] = current[obj] = hyp
            iou_sum += float(iou[o, h])
        matches += len(pairs)
        objects += len(truth_ids)
        fn += len(truth_ids) - len(pairs)
        fp += len(hyp_ids) - len(pairs)
    mota = 1.0 - (fn + fp + switches) / objects if objects else float("nan")
    return MotScores(mota, iou_sum / matches if matches else float("nan"), switches, fp, fn, matches, objects)
