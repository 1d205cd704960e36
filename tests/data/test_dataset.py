"""Dataset layouts, manifests, splits and file checks."""

from __future__ import annotations

import shutil

import pytest

from recog.data import load_dataset
from recog.data.decode import find_bad_files
from recog.errors import DatasetError


def test_split_folders(digits_tree):
    ds = load_dataset(digits_tree)
    assert ds.labels == ("0", "1", "7")
    assert ds.counts()["train"] == {"0": 30, "1": 30, "7": 30}
    assert ds.counts()["test"] == {"0": 10, "1": 10, "7": 10}


def test_hidden_folders_beside_split_folders_are_ignored(digits_tree, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(digits_tree, root)
    (root / ".ipynb_checkpoints").mkdir()
    (root / "train" / ".ipynb_checkpoints").mkdir()
    ds = load_dataset(root)
    assert ds.labels == ("0", "1", "7") and ds.counts()["train"] == {"0": 30, "1": 30, "7": 30}


def test_flat_class_folders_get_seeded_stratified_splits(digits_tree):
    ds = load_dataset(digits_tree / "train")
    assert not ds.has_splits
    a = ds.with_splits(val=0.2, test=0.1, seed=3)
    b = ds.with_splits(val=0.2, test=0.1, seed=3)
    assert [s.split for s in a.samples] == [s.split for s in b.samples]
    counts = a.counts()
    assert counts["val"] == {"0": 6, "1": 6, "7": 6}
    assert counts["test"] == {"0": 3, "1": 3, "7": 3}
    c = ds.with_splits(val=0.2, test=0.1, seed=4)
    assert [s.split for s in a.samples] != [s.split for s in c.samples]


def test_val_drawn_from_train_when_missing(digits_tree):
    ds = load_dataset(digits_tree).with_splits(val=0.1, seed=0)
    assert ds.counts()["val"] == {"0": 3, "1": 3, "7": 3}
    assert ds.counts()["test"] == {"0": 10, "1": 10, "7": 10}


def test_csv_manifest_with_groups(digits_tree, tmp_path):
    rows = ["path,label,split,group"]
    for i, p in enumerate(sorted((digits_tree / "test").glob("*/*.png"))):
        rows.append(f"{p},{p.parent.name},test,{'site-a' if i % 2 else 'site-b'}")
    manifest = tmp_path / "m.csv"
    manifest.write_text("\n".join(rows) + "\n")
    ds = load_dataset(manifest)
    assert ds.has_groups and ds.labels == ("0", "1", "7") and len(ds.split("test")) == 30


@pytest.mark.parametrize("content, message", [
    ("file,label\na.png,x\n", "header"),
    ("path,label\n,x\n", "empty path"),
    ("path,label,split\na.png,x,holdout\n", "not one of train"),
    ("path,label\n", "no rows"),
])
def test_bad_manifests(tmp_path, content, message):
    m = tmp_path / "m.csv"
    m.write_text(content)
    with pytest.raises(DatasetError, match=message):
        load_dataset(m)


def test_bad_layouts(tmp_path, digits_tree):
    with pytest.raises(DatasetError, match="no such"):
        load_dataset(tmp_path / "missing")
    (tmp_path / "only").mkdir()
    shutil.copytree(digits_tree / "train" / "0", tmp_path / "only" / "0")
    assert load_dataset(tmp_path / "only").labels == ("0",)  # fine to evaluate on; training refuses it
    from recog.engine.config import load_config
    from recog.engine.train import train

    with pytest.raises(DatasetError, match="at least 2"):
        train(load_config({"data": str(tmp_path / "only"), "model": "resnet-micro", "out": str(tmp_path / "r")}))
    (tmp_path / "empty" / "a").mkdir(parents=True)
    with pytest.raises(DatasetError, match="no images"):
        load_dataset(tmp_path / "empty")


def test_bad_files_listed_with_reasons(digits_tree, tmp_path):
    root = tmp_path / "d"
    shutil.copytree(digits_tree / "test", root)
    (root / "0" / "empty.png").write_bytes(b"")
    good = next((root / "1").glob("*.png")).read_bytes()
    (root / "1" / "truncated.png").write_bytes(good[:60])
    (root / "7" / "text.jpg").write_text("not an image")
    (root / "7" / "readme.txt").write_text("notes")
    ds = load_dataset(root)
    assert [p for p, _ in ds.skipped] == [str(root / "7" / "readme.txt")]
    bad = dict(find_bad_files([s.path for s in ds.samples]))
    assert set(bad) == {str(root / "0" / "empty.png"), str(root / "1" / "truncated.png"), str(root / "7" / "text.jpg")}
    assert "empty" in bad[str(root / "0" / "empty.png")]
    assert "plain text" in bad[str(root / "7" / "text.jpg")]


def test_fingerprint_changes_with_content(digits_tree, tmp_path):
    root = tmp_path / "d"
    shutil.copytree(digits_tree / "test", root)
    before = load_dataset(root).fingerprint()
    assert before == load_dataset(root).fingerprint()
    victim = next((root / "0").glob("*.png"))
    victim.write_bytes(victim.read_bytes() + b"\0")
    assert load_dataset(root).fingerprint() != before
