"""classification_metrics equals scikit-learn (and hand computation) on fixed predictions."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from sklearn.metrics import (accuracy_score, average_precision_score, confusion_matrix, f1_score,
                             precision_recall_fscore_support, roc_auc_score, top_k_accuracy_score)

import recog.metrics
from recog.errors import InvalidInputError
from recog.metrics import classification_metrics, expected_calibration_error

LABELS = ["cat", "dog", "bird"]
# Each confidence sits inside its own 15-bin interval, away from the edges.
Y = np.array([0, 0, 1, 1, 2, 2])
P = np.array([
    [0.85, 0.10, 0.05],  # cat  -> cat   right, conf .85
    [0.30, 0.65, 0.05],  # cat  -> dog   wrong, conf .65
    [0.15, 0.75, 0.10],  # dog  -> dog   right, conf .75
    [0.05, 0.55, 0.40],  # dog  -> dog   right, conf .55
    [0.18, 0.10, 0.72],  # bird -> bird  right, conf .72
    [0.45, 0.15, 0.40],  # bird -> cat   wrong, conf .45
])


def test_public_surface():
    for name in ("classification_metrics", "write_report", "expected_calibration_error", "reliability_bins",
                 "PLOT_FILES"):
        assert name in recog.metrics.__all__
        assert hasattr(recog.metrics, name)


def test_three_classes_by_hand():
    m = classification_metrics(Y, P, LABELS)
    assert m["num_samples"] == 6 and m["num_classes"] == 3 and m["labels"] == LABELS
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["top_k"] == 3 and m["top5_accuracy"] == 1.0
    assert m["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    assert m["confusion_matrix_normalized"] == [[0.5, 0.5, 0.0], [0.0, 1.0, 0.0], [0.5, 0.0, 0.5]]
    pc = m["per_class"]
    assert pc["cat"] == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2}
    assert pc["dog"]["precision"] == pytest.approx(2 / 3) and pc["dog"]["recall"] == 1.0
    assert pc["bird"] == {"precision": 1.0, "recall": 0.5, "f1": pytest.approx(2 / 3), "support": 2}
    assert m["macro"]["precision"] == pytest.approx((0.5 + 2 / 3 + 1) / 3)
    assert m["macro"]["recall"] == pytest.approx(2 / 3)
    # ECE: six singleton bins, sum |acc - conf| / 6
    expected = (0.15 + 0.65 + 0.25 + 0.45 + 0.28 + 0.45) / 6
    assert m["ece"] == pytest.approx(expected)
    bins = m["reliability"]["bins"]
    assert m["reliability"]["num_bins"] == 15 and len(bins) == 15
    assert sum(b["count"] for b in bins) == 6
    assert bins[12] == {"lower": 12 / 15, "upper": 13 / 15, "count": 1, "accuracy": 1.0, "confidence": 0.85}
    assert bins[0]["accuracy"] is None and bins[0]["count"] == 0
    assert m["notes"] == []
    json.dumps(m, allow_nan=False)


def test_equals_sklearn():
    m = classification_metrics(Y, P, LABELS)
    pred = P.argmax(1)
    assert m["accuracy"] == accuracy_score(Y, pred)
    for avg in ("macro", "weighted"):
        pr, rc, f1, _ = precision_recall_fscore_support(Y, pred, average=avg, zero_division=0)
        assert (m[avg]["precision"], m[avg]["recall"], m[avg]["f1"]) == pytest.approx((pr, rc, f1))
    pr, rc, f1, sup = precision_recall_fscore_support(Y, pred, zero_division=0)
    for j, name in enumerate(LABELS):
        assert m["per_class"][name] == pytest.approx(
            {"precision": pr[j], "recall": rc[j], "f1": f1[j], "support": sup[j]})
    assert m["confusion_matrix"] == confusion_matrix(Y, pred).tolist()
    assert np.allclose(m["confusion_matrix_normalized"], confusion_matrix(Y, pred, normalize="true"))
    assert m["roc_auc"]["macro"] == pytest.approx(roc_auc_score(Y, P, multi_class="ovr"))
    assert m["roc_auc"]["micro"] == pytest.approx(roc_auc_score(np.eye(3)[Y], P, average="micro"))
    for j, name in enumerate(LABELS):
        assert m["roc_auc"]["per_class"][name] == pytest.approx(roc_auc_score(Y == j, P[:, j]))
        assert m["average_precision"]["per_class"][name] == pytest.approx(average_precision_score(Y == j, P[:, j]))
    assert m["average_precision"]["macro"] == pytest.approx(average_precision_score(np.eye(3)[Y], P))


def test_top5_on_many_classes_equals_sklearn():
    rng = np.random.default_rng(0)
    c = 12
    y = rng.integers(0, c, 200)
    logits = rng.normal(size=(200, c))
    logits[np.arange(200), y] += 1.0
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    m = classification_metrics(y, p.astype(np.float32), [f"c{i}" for i in range(c)])
    assert m["top_k"] == 5
    assert m["top5_accuracy"] == pytest.approx(top_k_accuracy_score(y, p, k=5, labels=np.arange(c)))
    assert m["top5_accuracy"] > m["accuracy"]


def test_binary():
    y = np.array([0, 0, 0, 1, 1, 1, 1, 0])
    p1 = np.array([0.1, 0.4, 0.6, 0.8, 0.7, 0.3, 0.9, 0.2])
    p = np.stack([1 - p1, p1], axis=1)
    m = classification_metrics(y, p, ["ok", "defect"])
    pred = (p1 > 0.5).astype(int)
    assert m["accuracy"] == accuracy_score(y, pred)
    assert m["top_k"] == 2 and m["top5_accuracy"] == 1.0
    auc = roc_auc_score(y, p1)
    assert m["roc_auc"]["per_class"]["defect"] == pytest.approx(auc)
    assert m["roc_auc"]["per_class"]["ok"] == pytest.approx(auc)
    assert m["roc_auc"]["macro"] == pytest.approx(auc)
    assert m["average_precision"]["per_class"]["defect"] == pytest.approx(average_precision_score(y, p1))
    assert m["macro"]["f1"] == pytest.approx(f1_score(y, pred, average="macro"))
    assert m["per_class"]["defect"]["f1"] == pytest.approx(f1_score(y, pred))


def test_class_missing_from_y_true():
    labels = ["a", "b", "c", "never"]
    y = np.array([0, 1, 2, 0, 1, 2, 2])
    p = np.array([[.7, .1, .1, .1], [.2, .6, .1, .1], [.1, .1, .7, .1], [.3, .4, .2, .1],
                  [.1, .8, .05, .05], [.5, .1, .3, .1], [.1, .2, .6, .1]])
    m = classification_metrics(y, p, labels)
    assert m["per_class"]["never"] == {"precision": None, "recall": None, "f1": None, "support": 0}
    assert m["roc_auc"]["per_class"]["never"] is None
    assert m["average_precision"]["per_class"]["never"] is None
    aucs = [roc_auc_score(y == j, p[:, j]) for j in range(3)]
    assert m["roc_auc"]["macro"] == pytest.approx(np.mean(aucs))
    pred = p.argmax(1)
    assert m["macro"]["f1"] == pytest.approx(f1_score(y, pred, average="macro", zero_division=0))
    assert m["confusion_matrix"][3] == [0, 0, 0, 0]
    assert m["confusion_matrix_normalized"][3] == [0.0, 0.0, 0.0, 0.0]
    assert any("never" in n and "absent" in n for n in m["notes"])
    json.dumps(m, allow_nan=False)


def test_class_absent_but_predicted_counts_as_zero_precision():
    y = np.array([0, 0, 1, 1])
    p = np.array([[.8, .1, .1], [.1, .1, .8], [.1, .8, .1], [.2, .7, .1]])
    m = classification_metrics(y, p, ["a", "b", "c"])
    assert m["per_class"]["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    pr, rc, f1, _ = precision_recall_fscore_support(y, p.argmax(1), average="macro", zero_division=0)
    assert m["macro"]["precision"] == pytest.approx(pr) and m["macro"]["f1"] == pytest.approx(f1)


def test_one_class_present_only():
    y = np.zeros(4, dtype=int)
    p = np.array([[.9, .1], [.6, .4], [.3, .7], [.8, .2]])
    m = classification_metrics(y, p, ["x", "y"])
    assert m["accuracy"] == 0.75
    assert m["roc_auc"]["per_class"] == {"x": None, "y": None} and m["roc_auc"]["macro"] is None
    assert m["average_precision"]["per_class"]["x"] == pytest.approx(1.0)
    assert m["average_precision"]["per_class"]["y"] is None
    assert m["notes"]
    json.dumps(m, allow_nan=False)


def test_groups_with_known_gap():
    y = np.array([0, 1, 0, 1, 0, 1, 0, 1])
    right = np.array([[.9, .1], [.1, .9]])
    p = np.concatenate([right, right, right, right])
    p[5] = [.8, .2]   # wrong, group "night"
    p[7] = [.7, .3]   # wrong, group "night"
    groups = ["day", "day", "day", "day", "night", "night", "night", ""]
    m = classification_metrics(y, p, ["no", "yes"], groups=groups)
    assert m["groups"]["day"] == {"accuracy": 1.0, "macro_f1": 1.0, "num_samples": 4}
    assert m["groups"]["night"]["accuracy"] == pytest.approx(2 / 3)
    assert m["groups"]["(none)"] == {"accuracy": 0.0, "macro_f1": 0.0, "num_samples": 1}
    assert m["largest_gap"] == {"metric": "accuracy", "best_group": "day", "worst_group": "(none)", "gap": 1.0}
    night = np.array([4, 5, 6])
    assert m["groups"]["night"]["macro_f1"] == pytest.approx(
        f1_score(y[night], p[night].argmax(1), average="macro", zero_division=0))
    assert "groups" not in classification_metrics(y, p, ["no", "yes"])


def test_group_ties_prefer_the_larger_group():
    y = np.array([0, 1, 0, 1, 0, 1])
    p = np.array([[.9, .1], [.8, .2], [.9, .1], [.9, .1], [.1, .9], [.1, .9]])
    # a: 1 right 1 wrong; b: 2 right 2 wrong -> same accuracy, b is larger
    m = classification_metrics(y, p, ["no", "yes"], groups=["a", "a", "b", "b", "b", "b"])
    assert m["groups"]["a"]["accuracy"] == m["groups"]["b"]["accuracy"] == 0.5
    assert m["largest_gap"]["gap"] == 0.0
    assert m["largest_gap"]["best_group"] == m["largest_gap"]["worst_group"] == "b"


def test_ece_definition():
    # 0.9 and 0.88 share the bin (13/15, 14/15]: accuracy 0.5, confidence 0.89
    ece, bins = expected_calibration_error(np.array([0, 1]), np.array([[0.9, 0.1], [0.88, 0.12]]))
    assert ece == pytest.approx(0.39)
    # 0.9 and 0.8 fall in different bins: (|1 - 0.9| + |0 - 0.8|) / 2
    split, _ = expected_calibration_error(np.array([0, 1]), np.array([[0.9, 0.1], [0.8, 0.2]]))
    assert split == pytest.approx(0.45)
    perfect, _ = expected_calibration_error(np.array([0, 1, 1]), np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]]))
    assert perfect == 0.0
    assert bins[-1]["upper"] == 1.0 and len(bins) == 15


@pytest.mark.parametrize("y, p, labels, groups, match", [
    ([], np.zeros((0, 2)), ["a", "b"], None, "empty"),
    ([0, 1], [[.5, .5]], ["a", "b"], None, "2 samples but probs has 1 rows"),
    ([0, 1], [[2.0, -1.0], [0.3, 1.5]], ["a", "b"], None, "softmax"),
    ([0, 1], [[.2, .2], [.5, .5]], ["a", "b"], None, "sums to 0.4"),
    ([0, 2], [[.5, .5], [.5, .5]], ["a", "b"], None, "outside 0..1"),
    ([0, -1], [[.5, .5], [.5, .5]], ["a", "b"], None, "outside 0..1"),
    ([0, 1], [[.5, .5], [.5, .5]], ["a", "b", "c"], None, "2 columns but there are 3 labels"),
    ([0, 1], [[.5, .5], [np.nan, .5]], ["a", "b"], None, "NaN"),
    ([[1, 0], [0, 1]], [[.5, .5], [.5, .5]], ["a", "b"], None, "argmax"),
    ([0.0, 1.0], [[.5, .5], [.5, .5]], ["a", "b"], None, "integer class indices"),
    ([0, 0], [[1.0], [1.0]], ["a"], None, "at least 2 labels"),
    ([0, 1], [[.5, .5], [.5, .5]], ["a", "a"], None, "unique"),
    ([0, 1], [[.5, .5], [.5, .5]], ["a", "b"], ["g"], "groups has 1 entries"),
    ([0, 1], [.5, .5], ["a", "b"], None, "2-D"),
])
def test_bad_inputs_raise_with_clear_messages(y, p, labels, groups, match):
    with pytest.raises(InvalidInputError, match=match) as info:
        classification_metrics(np.asarray(y), np.asarray(p), labels, groups=groups)
    assert info.value.code == "invalid_input"


def test_float32_softmax_rounding_is_accepted():
    p = np.array([[0.3333333, 0.3333333, 0.3333333], [0.1, 0.2, 0.7000001]], dtype=np.float32)
    m = classification_metrics(np.array([0, 2]), p, LABELS)
    assert m["accuracy"] == 1.0


def test_import_is_cheap():
    code = ("import sys, recog, recog.metrics; "
            "print(sorted(m for m in ('sklearn', 'matplotlib', 'torch', 'scipy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
