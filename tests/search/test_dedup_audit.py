"""Near-duplicates on the shared UKBench copies, confident learning, clustering, and the dataset audit."""

from __future__ import annotations

import json

import numpy as np

from recog.search.calibrate import choose_threshold
from recog.search.dedup import find_duplicates, write_outputs
from recog.search.files import list_images
from recog.search.labels import find_label_issues, out_of_sample_probs
from recog.search.pairs import UnionFind, hamming_pairs

from .conftest import truth_pairs


def pixels(paths):
    """Features without a model: 28x28 grey pixels, centred and L2-normalised."""
    from recog.io import load_image

    rows = []
    for p in paths:
        img = load_image(p).convert("L").resize((28, 28))
        v = np.asarray(img, np.float32).ravel()
        v = v - v.mean()
        rows.append(v / max(float(np.linalg.norm(v)), 1e-6))
    return np.stack(rows), list(range(len(paths))), []


def hog_features(paths):
    """Features without a model: HOG of the 28x28 grey image (scikit-image), L2-normalised."""
    from skimage.feature import hog

    from recog.io import load_image

    rows = []
    for p in paths:
        img = np.asarray(load_image(p).convert("L").resize((28, 28)), np.float32)
        v = hog(img, orientations=9, pixels_per_cell=(7, 7), cells_per_block=(2, 2))
        rows.append(v / max(float(np.linalg.norm(v)), 1e-6))
    return np.stack(rows).astype(np.float32), list(range(len(paths))), []


def test_list_images_finds_jpegs_behind_wrong_extensions(near_duplicates):
    names = {p.relative_to(near_duplicates).as_posix() for p in list_images(near_duplicates)}
    assert "formats/ukbench09380.svg" in names and "mixed_images/ukbench09268_corrupt.jpg" in names
    assert "README.md" not in names and "duplicates.json" not in names


def test_phash_finds_the_resized_grey_and_reencoded_copies(near_duplicates):
    result = find_duplicates(list_images(near_duplicates), method="phash", root=near_duplicates)
    truth = truth_pairs(near_duplicates)
    found = result.pairs()
    assert found <= truth  # no false pairs
    for easy in ("extra/ukbench00120_gray.jpg", "formats/ukbench09380.webp", "mixed_images/ukbench00120_resize.jpg",
                 "formats/ukbench09380.svg"):
        assert any(easy in pair for pair in found)
    assert [f for f, _ in result.failures] == ["mixed_images/ukbench09268_corrupt.jpg"]
    t = result.thresholds[0].to_dict()
    assert t["chosen"] == "calibrated" and t["positives"]["n"] > 0 and 0 < t["value"] < 32


def test_embedding_dedup_finds_every_known_duplicate(near_duplicates, tmp_path):
    result = find_duplicates(list_images(near_duplicates), method="embedding", model_name="efficientnet-lite0",
                             root=near_duplicates, sample=8)
    assert result.pairs() == truth_pairs(near_duplicates)
    written = write_outputs(result, tmp_path / "dupes")
    doc = json.loads((tmp_path / "dupes" / "duplicates.json").read_text())
    assert doc["thresholds"][0]["method"] == "embedding" and doc["groups_found"] == 3
    assert (tmp_path / "dupes" / "contact_sheet.png") in written
    assert "group,path,match,score,sha256" in (tmp_path / "dupes" / "duplicates.csv").read_text()


def test_threshold_sits_between_copies_and_distinct_images():
    rng = np.random.default_rng(0)
    copies = rng.normal(0.93, 0.03, 200)
    distinct = rng.normal(0.45, 0.08, 500)
    with_dups = np.r_[distinct, rng.normal(0.95, 0.02, 60)]  # real duplicates among the nearest neighbours
    for nearest in (distinct, with_dups):
        t = choose_threshold("embedding", copies, nearest).value
        assert distinct.max() < t < np.quantile(copies, 0.02)
    # a catalogue of similar but distinct photos and no copies: no near-duplicates claimed at 0.85
    similar = rng.normal(0.69, 0.09, 700)
    assert choose_threshold("embedding", np.clip(rng.normal(0.94, 0.04, 224), 0, 1), similar).value > 0.95
    hashes = choose_threshold("phash", rng.integers(0, 8, 100), rng.integers(20, 34, 300)).value
    assert 8 <= hashes < 20 and hashes == int(hashes)


def test_pure_helpers():
    assert hamming_pairs(np.array([0b0, 0b1, 0b111, 0b0], np.uint64), 1) == [(0, 1, 1.0), (0, 3, 0.0), (1, 3, 1.0)]
    uf = UnionFind(5)
    uf.union(3, 1)
    uf.union(4, 1)
    assert uf.groups() == [[1, 3, 4]]


def test_confident_learning_finds_flipped_labels():
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x, y = x[:600], y[:600]
    rng = np.random.default_rng(0)
    noisy = y.copy()
    flipped = rng.choice(len(y), 60, replace=False)
    noisy[flipped] = (y[flipped] + rng.integers(1, 10, 60)) % 10
    probs = out_of_sample_probs(x, noisy, folds=5)
    found = np.flatnonzero(find_label_issues(probs, noisy))
    tp = len(set(found) & set(flipped))
    assert tp / len(found) >= 0.8 and tp / len(flipped) >= 0.8


def test_auto_k_is_the_best_silhouette():
    from sklearn.datasets import make_blobs

    from recog.search.cluster import cluster_vectors

    x, _ = make_blobs(n_samples=300, centers=4, n_features=16, cluster_std=1.0, random_state=0)
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    result = cluster_vectors(x, k="auto", k_range=(2, 8))
    assert set(result.scores) == set(range(2, 9)) and "silhouette" in result.criterion
    assert result.k == max(result.scores, key=result.scores.get) == 4


def test_cluster_digits_with_contact_sheets(digits_tree, tmp_path):
    from sklearn.metrics import adjusted_rand_score

    from recog.search.cluster import cluster_vectors, write_outputs as write_clusters

    paths = list_images(digits_tree / "train")
    x, _, _ = pixels(paths)
    truth = [p.parent.name for p in paths]
    result = cluster_vectors(x, k=3)
    assert adjusted_rand_score(truth, result.labels) > 0.6
    result.paths = [p.relative_to(digits_tree).as_posix() for p in paths]
    write_clusters(result, tmp_path / "clusters", root=digits_tree)
    assert len(list((tmp_path / "clusters" / "sheets").glob("cluster_*.png"))) == 3
    assert (tmp_path / "clusters" / "clusters.csv").read_text().startswith("path,cluster,similarity_to_centre")
    hdb = cluster_vectors(x, algorithm="hdbscan")
    assert hdb.algorithm == "hdbscan" and len(hdb.labels) == len(paths)


def test_audit_finds_label_flips_and_a_cross_split_duplicate(audited_digits, tmp_path):
    from recog.search.audit import audit_dataset, write_report

    root, flipped, leaked = audited_digits
    (root / "test" / "7" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    result = audit_dataset(root, embed=hog_features, near_threshold=0.995, folds=4)
    leaks = result.leaks
    assert any({m["path"] for m in g["members"]} >= {leaked} for g in leaks)
    assert all(g["kind"] == "exact" for g in leaks)
    found = {i["path"] for i in result.label_issues}
    hits = len(found & set(flipped))
    assert hits >= 0.75 * len(flipped) and hits >= 0.5 * len(found)  # 2 % noise, 600 images, HOG features
    assert [c["path"] for c in result.corrupt] == ["test/7/broken.png"]
    assert result.imbalance["ratio"] >= 1.0 and "per_split" in result.imbalance
    write_report(result, tmp_path / "audit")
    html = (tmp_path / "audit" / "report.html").read_text()
    assert "Likely label errors" in html and "across splits" in html and "data:image/jpeg;base64," in html
    doc = json.loads((tmp_path / "audit" / "audit.json").read_text())
    assert doc["summary"]["cross_split_groups"] >= 1 and doc["summary"]["corrupt_files"] == 1
