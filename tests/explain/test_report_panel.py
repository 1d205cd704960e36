"""recog evaluate --explain N: the report gets an Explanations section with heatmaps."""

from __future__ import annotations

import shutil

import numpy as np


def test_evaluate_explain_panel(tiny_bundle, photos, tmp_path):
    from recog.engine.evaluate import evaluate
    from recog.explain.panel import choose

    data = tmp_path / "data"
    for label, names in {"cat": ["chelsea", "coffee"], "dog": ["astronaut"], "bird": ["rocket"]}.items():
        (data / label).mkdir(parents=True)
        for n in names:
            shutil.copy(photos[n], data / label / f"{n}.jpg")
    res = evaluate(tiny_bundle, data, out=tmp_path / "report", backend="torch", explain=2)
    page = res.report.read_text()
    assert "<h2>Explanations</h2>" in page and page.count('src="data:image/png;base64,') >= 5 + 1

    y = np.array([0, 0, 1])
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.3, 0.7]])
    assert choose(y, probs, 5) == [(1, "mistake"), (0, "correct"), (2, "correct")]
