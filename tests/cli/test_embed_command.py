"""``recog embed``: vectors for images of a bundle, written as .npy + index CSV or JSONL; failures listed."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from recog.cli.main import main


def test_embed_writes_npy_with_index_and_lists_failures(tiny_bundle, photos, tmp_path, capsys):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    out = tmp_path / "vec" / "v.npy"
    with pytest.raises(SystemExit) as info:
        main(["embed", str(tiny_bundle), str(photos["coffee"]), str(photos["chelsea"]), str(bad), "--out", str(out)])
    assert info.value.code == 1
    vectors = np.load(out)
    assert vectors.shape[0] == 2
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    rows = list(csv.DictReader(open(out.with_suffix(".csv"))))
    assert [r["path"] for r in rows] == [str(photos["coffee"]), str(photos["chelsea"])]
    assert "broken.jpg" in capsys.readouterr().err


def test_embed_jsonl_and_bad_out(tiny_bundle, photos, tmp_path):
    out = tmp_path / "v.jsonl"
    main_ok(["embed", str(tiny_bundle), str(photos["coffee"]), "--out", str(out)])
    line = json.loads(out.read_text().splitlines()[0])
    assert line["path"] == str(photos["coffee"]) and abs(np.linalg.norm(line["embedding"]) - 1) < 1e-4
    with pytest.raises(SystemExit) as info:
        main(["embed", str(tiny_bundle), str(photos["coffee"]), "--out", str(tmp_path / "v.txt")])
    assert info.value.code == 2


def main_ok(argv):
    try:
        main(argv)
    except SystemExit as exc:
        assert exc.code in (0, None)
