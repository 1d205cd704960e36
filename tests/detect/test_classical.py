"""The HOG + linear SVM baseline (dlib) learns the synthetic squares."""

from __future__ import annotations

import numpy as np

from recog.detect.classical import detect_hog_svm, fit_hog_svm
from recog.detect.formats import load_boxes
from recog.detect.metrics import ImageBoxes, coco_map
from recog.io import load_image


def test_hog_svm_finds_squares(shapes_voc):
    ds = load_boxes(shapes_voc)
    train, test = ds.split("train"), ds.split("test") + ds.split("val")
    images = [np.asarray(load_image(s.path)) for s in train]
    model = fit_hog_svm(images, [s.boxes for s in train], [s.classes(ds.labels) for s in train], ds.labels)
    assert sorted(model.classes) == [0, 1]                  # one detector per class (square aspect: one cluster)
    truth, dets = [], []
    for s in test:
        boxes, scores, classes = detect_hog_svm(model, np.asarray(load_image(s.path)))
        assert np.all((scores > 0) & (scores < 1))
        truth.append(ImageBoxes(s.boxes, s.classes(ds.labels), size=(96, 72)))
        dets.append(ImageBoxes(boxes, classes, scores))
    assert coco_map(truth, dets, ds.labels)["per_class"]["square"]["ap50"] > 0.5
