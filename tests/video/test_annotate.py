"""Every kind of result drawn on a frame: the frame keeps its size, the drawing lands where the result is."""

from __future__ import annotations

import numpy as np

from recog.detect.result import Detections
from recog.types import AnomalyResult, Classification, Label
from recog.video.annotate import annotate
from recog.video.tracker import ByteTracker

FRAME = np.full((120, 160, 3), 90, np.uint8)


def changed(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs(a.astype(int) - b).sum(axis=2) > 0


def test_classification_caption_in_the_corner():
    out = annotate(FRAME, Classification(top=(Label("cat", 0, 0.93),)), caption="frame 3  0.10 s")
    diff = changed(out, FRAME)
    assert out.shape == FRAME.shape and diff[:14, :40].any() and diff[-14:, :40].any()
    assert not diff[20:100, 60:].any()


def test_detections_and_tracks_are_boxed_where_they_are():
    dets = Detections(np.array([[80, 60, 120, 100.]]), np.array([0.9]), np.array([0]), ("cell",),
                      image_size=(160, 120), all_labels=("cell",))
    plain = changed(annotate(FRAME, dets), FRAME)
    assert plain[60:101, 80].any() and plain[60:101, 119].any() and not plain[:40, 130:].any()
    tracker = ByteTracker(min_hits=1)
    tracks = tracker.update(dets.boxes, dets.scores, dets.class_ids, dets.labels)
    tracked = changed(annotate(FRAME, dets, tracks), FRAME)
    assert tracked[60:101, 80].any()
    assert not changed(annotate(FRAME, dets, []), FRAME).any()   # tracking, nothing tracked yet: nothing drawn


def test_anomaly_heatmap_and_box_scaled_to_the_frame():
    heat = np.zeros((32, 32), np.float32)
    heat[24:, 24:] = 3.0                                       # hot in the model's bottom-right corner
    result = AnomalyResult(score=3.0, threshold=1.0, boxes=((120.0, 90.0, 160.0, 120.0),), scores=(3.0,),
                           image_size=(160, 120), heatmap=heat)
    diff = changed(annotate(FRAME, result), FRAME)
    assert diff[100:, 130:].mean() > 0.9 and not diff[30:70, 40:90].any()
