"""write_report: every file is written, opens, and the HTML page is self-contained."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from recog.errors import InvalidInputError
from recog.metrics import PLOT_FILES, classification_metrics, write_report


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.imgs: list[dict[str, str | None]] = []
        self.links: list[str] = []
        self.scripts = 0
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "img":
            self.imgs.append(a)
        if tag in ("link", "script", "iframe", "object", "embed"):
            self.scripts += 1
        for key in ("href", "src"):
            if a.get(key):
                self.links.append(a[key])

    def handle_data(self, data):
        self.text.append(data)


def _parse(path: Path) -> tuple[_Page, str]:
    page = path.read_text(encoding="utf-8")
    parser = _Page()
    parser.feed(page)
    parser.close()
    return parser, page


@pytest.fixture()
def case(photos, tmp_path):
    """Six real photos plus a non-image and a missing file; labels with HTML in them."""
    bad = tmp_path / "notes.txt"
    bad.write_text("not an image")
    sources = [str(photos[k]) for k in ("astronaut", "coffee", "rocket", "chelsea", "camera_png", "grace_hopper")]
    sources += [str(bad), str(tmp_path / "gone.jpg")]
    labels = ["person", "cup", "<b>rocket&\"x\"</b>"]
    y = np.array([0, 1, 2, 1, 0, 0, 2, 1])
    p = np.array([
        [.80, .10, .10],   # right
        [.05, .15, .80],   # wrong, conf .80
        [.10, .10, .80],   # right
        [.90, .05, .05],   # wrong, conf .90 (most confident mistake)
        [.20, .70, .10],   # wrong, conf .70
        [.60, .20, .20],   # right
        [.30, .65, .05],   # wrong, conf .65, source is not an image
        [.50, .20, .30],   # wrong, conf .50, source missing
    ])
    groups = ["indoor", "indoor", "outdoor", "indoor", "outdoor", "outdoor", "indoor", "outdoor"]
    return y, p, labels, sources, groups


def test_write_report_writes_every_file(case, tmp_path):
    y, p, labels, sources, groups = case
    out = tmp_path / "report"
    info = {"bundle": "runs/<pets>/best", "labels": labels, "epochs": 3}
    report = write_report(out, y, p, labels, sources=sources, groups=groups, title="eval <pets>",
                          model_info=info)
    assert report == out / "report.html"
    for name in (*PLOT_FILES, "groups.png", "metrics.json", "report.html"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    for name in (*PLOT_FILES, "groups.png"):
        with Image.open(out / name) as img:
            img.verify()
        with Image.open(out / name) as img:
            assert img.format == "PNG" and min(img.size) >= 200
    assert json.loads((out / "metrics.json").read_text()) == classification_metrics(y, p, labels, groups)


def test_report_html_is_self_contained_and_escaped(case, tmp_path):
    y, p, labels, sources, groups = case
    report = write_report(tmp_path / "r", y, p, labels, sources=sources, groups=groups, title="eval <pets>",
                          model_info={"bundle": "runs/<pets>/best"})
    parser, page = _parse(report)
    assert "http://" not in page and "https://" not in page
    assert parser.scripts == 0
    assert all(link.startswith("data:image/") for link in parser.links), parser.links
    plots = [i for i in parser.imgs if i["src"].startswith("data:image/png;base64,")]
    thumbs = [i for i in parser.imgs if i["src"].startswith("data:image/jpeg;base64,")]
    assert len(plots) == len(PLOT_FILES) + 1
    assert len(thumbs) == 3          # five mistakes, two of them without a loadable image
    text = "".join(parser.text)
    # labels, titles and paths are escaped: the raw markup never reaches the page
    assert "<b>rocket" not in page and "<pets>" not in page
    assert '<b>rocket&"x"</b>' in text and "eval <pets>" in text and "runs/<pets>/best" in text
    assert "could not load" in text and "notes.txt" in text and "gone.jpg" in text
    assert "Largest gap in accuracy" in text
    assert 'class="worst"' in page and 'class="best"' in page
    # the most confident mistake comes first
    first = page.index("chelsea.jpg")
    assert first < page.index("coffee.jpg") < page.index("camera.png")


def test_report_thumbnails_decode(case, tmp_path):
    import base64
    import io

    y, p, labels, sources, _ = case
    parser, _ = _parse(write_report(tmp_path / "r", y, p, labels, sources=sources))
    thumbs = [i["src"] for i in parser.imgs if i["src"].startswith("data:image/jpeg")]
    for src in thumbs:
        with Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))) as img:
            assert max(img.size) <= 128
    assert not (tmp_path / "r" / "groups.png").exists()


def test_report_without_sources_and_without_mistakes(tmp_path):
    y = np.array([0, 1, 1])
    p = np.array([[.9, .1], [.2, .8], [.6, .4]])
    parser, page = _parse(write_report(tmp_path / "a", y, p, ["cat", "dog"]))
    assert "sample #2" in "".join(parser.text)
    parser, page = _parse(write_report(tmp_path / "b", y, p[[0, 1, 1]], ["cat", "dog"]))
    assert "No mistakes" in page


def test_report_many_classes(tmp_path):
    rng = np.random.default_rng(1)
    c, n = 120, 600
    y = rng.integers(0, c, n)
    logits = rng.normal(size=(n, c))
    logits[np.arange(n), y] += 3.0
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    report = write_report(tmp_path / "many", y, p, [f"class_{i:03d}" for i in range(c)], top_mistakes=5)
    assert report.is_file()
    with Image.open(tmp_path / "many" / "confusion_matrix.png") as img:
        assert max(img.size) <= 1800


def test_report_rejects_bad_arguments(case, tmp_path):
    y, p, labels, sources, _ = case
    with pytest.raises(InvalidInputError, match="sources has 2 entries"):
        write_report(tmp_path / "x", y, p, labels, sources=sources[:2])
    with pytest.raises(InvalidInputError, match="softmax"):
        write_report(tmp_path / "y", y, p * 3, labels)
    assert not (tmp_path / "y").exists()
