"""mAP from pycocotools against AP computed by hand; box math; the confusion matrix with background; Detections."""

from __future__ import annotations

import numpy as np
import pytest

from recog.detect.boxes import batched_nms, iou_matrix, nms
from recog.detect.evaluate import match_confusion
from recog.detect.metrics import ImageBoxes, coco_map
from recog.detect.result import Detections


def test_map_equals_hand_computed_interpolated_ap():
    # 3 true boxes in 2 images; ranked detections: TP (0.9), FP (0.8), TP (0.7), TP (0.6)
    truth = [ImageBoxes(np.array([[0, 0, 10, 10], [20, 20, 30, 30.]]), np.array([0, 0]), size=(64, 64)),
             ImageBoxes(np.array([[0, 0, 10, 10.]]), np.array([0]), size=(64, 64))]
    dets = [ImageBoxes(np.array([[0, 0, 10, 10], [20, 20, 30, 30.]]), np.array([0, 0]), np.array([0.9, 0.7])),
            ImageBoxes(np.array([[50, 50, 60, 60], [0, 0, 10, 10.]]), np.array([0, 0]), np.array([0.8, 0.6]))]
    # precision/recall: (1, 1/3) (1/2, 1/3) (2/3, 2/3) (3/4, 1); the envelope is 1.0 up to recall 1/3, then 0.75.
    # COCO samples 101 recall points 0, 0.01, ..., 1: 34 of them (0..0.33) at 1.0 and 67 at 0.75.
    hand = (34 * 1.0 + 67 * 0.75) / 101
    m = coco_map(truth, dets, ["cell"])
    assert m["map50"] == pytest.approx(hand, abs=1e-6)
    assert m["map"] == pytest.approx(hand, abs=1e-6)             # every true positive has IoU 1
    assert m["per_class"]["cell"] == {"ap50": pytest.approx(hand, abs=1e-6), "ap": pytest.approx(hand, abs=1e-6),
                                      "instances": 3}


def test_map_over_iou_thresholds_and_classes():
    # IoU 0.72: a hit at thresholds 0.50 ... 0.70 (5 of 10), a miss from 0.75 on
    truth = [ImageBoxes(np.array([[0, 0, 10, 10], [30, 30, 40, 40.]]), np.array([0, 1]), size=(64, 64))]
    dets = [ImageBoxes(np.array([[0, 0, 10, 7.2], [30, 30, 40, 40.]]), np.array([0, 0]), np.array([0.9, 0.8]))]
    m = coco_map(truth, dets, ["a", "b"])
    assert m["per_class"]["a"]["ap50"] == pytest.approx(1.0) and m["per_class"]["a"]["ap"] == pytest.approx(0.5)
    assert m["per_class"]["b"]["ap50"] == 0.0                      # its box was detected as the wrong class
    assert m["map50"] == pytest.approx(0.5) and m["map"] == pytest.approx(0.25)
    assert coco_map(truth, [ImageBoxes(np.zeros((0, 4)), np.zeros(0, int), np.zeros(0))], ["a", "b"])["map50"] == 0.0


def test_confusion_matrix_counts_misses_false_alarms_and_confusions():
    truth = [ImageBoxes(np.array([[0, 0, 10, 10], [20, 20, 30, 30], [40, 40, 50, 50.]]), np.array([0, 1, 1]))]
    dets = [ImageBoxes(np.array([[0, 0, 10, 10], [20, 20, 30, 30], [60, 60, 62, 62], [40, 40, 50, 50.]]),
                       np.array([0, 0, 1, 1]), np.array([0.9, 0.8, 0.7, 0.1]))]
    cm, errors = match_confusion(truth, dets, 2, min_score=0.3)
    # a→a; b detected as a; the 0.1 box is under the floor, so the third true box is missed; one false alarm
    assert cm.tolist() == [[1, 0, 0], [1, 0, 1], [0, 1, 0]] and errors.tolist() == [3]


def test_iou_and_nms():
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [0, 0, 10, 10], [30, 30, 40, 40.]])
    assert iou_matrix(boxes[:1], boxes[1:2])[0, 0] == pytest.approx(90 / 110)
    assert nms(boxes, np.array([0.5, 0.9, 0.4, 0.3]), 0.5).tolist() == [1, 3]
    # the same box in another class survives
    assert batched_nms(boxes, np.array([0.5, 0.9, 0.4, 0.3]), np.array([0, 0, 1, 0]), 0.5).tolist() == [1, 2, 3]


def test_detections_validate_and_index():
    d = Detections(np.array([[0, 0, 5, 5], [1, 1, 3, 3.]]), np.array([0.9, 0.2]), np.array([1, 0]), ("b", "a"),
                   image_size=(8, 8), all_labels=("a", "b", "c"))
    assert d.counts == {"a": 1, "b": 1, "c": 0} and len(d[d.scores > 0.5]) == 1 and d[1].labels == ("a",)
    with pytest.raises(ValueError, match="x2 >= x1"):
        Detections(np.array([[5, 0, 1, 5.]]), np.array([0.5]), np.array([0]), ("a",))
    with pytest.raises(ValueError, match="scores"):
        Detections(np.array([[0, 0, 1, 1.]]), np.array([1.5]), np.array([0]), ("a",))
    with pytest.raises(ValueError, match="2 labels"):
        Detections(np.array([[0, 0, 1, 1.]]), np.array([0.5]), np.array([0]), ("a", "b"))
