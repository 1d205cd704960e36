"""``--model hog``: HOG as the embedding for search, near-duplicates and clustering, on real images."""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

from recog.cli.main import app

NEAR_DUPLICATES = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "near-duplicates"


@pytest.fixture()
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("RECOG_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture()
def near_duplicates() -> Path:
    if not (NEAR_DUPLICATES / "base_images").is_dir():
        pytest.skip(f"the shared near-duplicates data is not at {NEAR_DUPLICATES} (see ../shared/data/README.md)")
    return NEAR_DUPLICATES


def _json(res) -> dict:
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout[res.stdout.index("{"):])


def test_search_index_with_hog_finds_the_resized_copy(near_duplicates, cache, tmp_path):
    db = str(tmp_path / "s.db")
    runner = CliRunner()
    built = _json(runner.invoke(app, ["search", "index", "build", str(near_duplicates / "base_images"), "--name", "h",
                                      "--model", "hog", "--db", db]))
    assert built["added"] == 10 and built["vectors"] == 10
    manifest = json.loads((cache / "presets" / "hog-64" / "recog.json").read_text())
    assert manifest["source_model"] == "hog-64" and set(manifest["files"]) == {"config.json", "model.safetensors"}
    # the query reuses the index's model name ("hog"), as for any preset
    hits = _json(runner.invoke(app, ["search", "query", str(near_duplicates / "mixed_images" / "ukbench00120_resize.jpg"),
                                     "--name", "h", "-k", "2", "--db", db]))["results"][0]["hits"]
    assert hits[0]["id"] == "ukbench00120.jpg" and hits[0]["score"] > 0.95 > hits[1]["score"]


def test_dedup_and_cluster_with_hog(near_duplicates, digits_tree, cache, tmp_path):
    from recog.search.dedup import find_duplicates
    from recog.search.files import list_images

    mixed = near_duplicates / "mixed_images"
    result = find_duplicates(list_images(mixed), method="embedding", model_name="hog", root=mixed)
    groups = [{Path(m.path).name for m in g} for g in result.groups]
    assert any({"ukbench00120.jpg", "ukbench00120_resize.jpg"} <= g for g in groups), groups
    assert any("corrupt" in str(p) for p, _ in result.failures)                       # skipped, reported

    out = tmp_path / "clusters"
    res = CliRunner().invoke(app, ["cluster", str(digits_tree / "train"), "--out", str(out), "-k", "3", "--model", "hog"])
    assert res.exit_code == 0, res.output
    rows = list(csv.DictReader(open(out / "clusters.csv")))
    pairs = Counter((Path(r["path"]).parts[0], r["cluster"]) for r in rows)
    purity = sum(max(n for (d, _), n in pairs.items() if d == digit) for digit in ("0", "1", "7")) / len(rows)
    assert len(rows) == 90 and purity >= 0.6, pairs                                  # chance is about 0.4


def test_bad_hog_size_is_one_line_error(cache):
    from recog.errors import ConfigError
    from recog.search.images import embedder

    with pytest.raises(ConfigError, match="multiple of 8"):
        embedder("hog-30")
