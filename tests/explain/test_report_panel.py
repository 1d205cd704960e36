"""recog evaluate --explain N: the report gets an Explanations section with heatmaps."""

from __future__ import annotations

import shutil

import numpy as np
import pytest


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


@pytest.mark.slow  # trains the two-square detector once per session (about 20-30 s)
def test_evaluate_detector_explain_panel(two_objects, tmp_path):
    """`recog evaluate DETECTOR DATA --explain 2`: the two most confident false positives (a square the
    annotations leave out is a false alarm) and right boxes, each a heatmap with its box, named by image."""
    import re

    from typer.testing import CliRunner

    from recog.cli.main import app

    bundle, test = two_objects
    data = tmp_path / "squares"
    data.mkdir()
    rows = []
    for i, (img, pair) in enumerate(zip(test.images, test.boxes)):
        img.save(data / f"img{i}.png")
        for box in pair[:1] if i < 4 else pair:  # images 0-3: one of their two squares left unannotated
            rows.append(f"img{i}.png,{','.join(str(v) for v in box)},square")
    (data / "boxes.csv").write_text("path,x1,y1,x2,y2,label\n" + "\n".join(rows) + "\n")
    out = tmp_path / "report"
    r = CliRunner().invoke(app, ["evaluate", str(bundle), str(data / "boxes.csv"), "--out", str(out),
                                 "--backend", "torch", "--explain", "2"])
    assert r.exit_code == 0, r.output
    page = (out / "report.html").read_text()
    section = page[page.index("<h2>Explanations</h2>"):page.index("<h2>Model</h2>")]
    cards = section.split('<div class="card">')[1:]
    kinds = [re.search(r'<div class="(?:true|pred)">([a-z ]+)</div>', c).group(1) for c in cards]
    names = [re.search(r'title="[^"]*">(img\d\.png)</div></div>', c).group(1) for c in cards]
    assert kinds == ["false positive", "false positive", "correct", "correct"], kinds
    assert all(int(n[3]) < 4 for n in names[:2]), names  # the false alarms are the unannotated squares
    assert all("true: <span class=\"true\">background</span>" in c for c in cards[:2])
    assert all(c.count('<img src="data:image/png;base64,') == 1 for c in cards)
    assert re.search(r"square #\d", cards[0])
