"""Near-duplicate images: exact (sha256), perceptual (pHash / dHash) and embedding-based, with a threshold chosen on the data.

Three ways to call two files duplicates, each giving pairs that are joined into
groups (connected components, so a chain of close copies is one group):

* ``exact``: the same bytes (sha256); always on.
* ``phash`` / ``dhash``: Hamming distance of 64-bit perceptual hashes
  (``imagehash``, BSD) at most ``t`` bits; robust to resizing, re-encoding,
  grey and brightness changes, not to flips, crops or rotations.
* ``embedding``: cosine similarity of the model's embeddings at least ``t``;
  also catches flips, crops, rotations and colour changes.

Threshold chosen on the data (:func:`calibrate`) unless given: up to
``sample`` images of the set are copied with known transforms (resize with a
new aspect ratio, JPEG quality 30, greyscale, brightness +30 %, 85 % centre
crop; for embeddings also a horizontal flip and a 10° rotation) and the
score between each original and its copies is the *positive* distribution;
each sampled image's nearest other image in the set is a *negative*, unless it
is at least as close as the weakest 5 % of copies (then it is presumably a
real duplicate). The threshold sits halfway between the 5th percentile of the
positives and the 99th percentile of the negatives, so about 95 % of such copies
are found at a margin from the closest distinct images. Both distributions'
figures are written in the output beside the threshold.

Example:
    >>> result = find_duplicates(list_images("photos/"), method="embedding")   # doctest: +SKIP
    >>> write_outputs(result, "dupes/")                                          # doctest: +SKIP
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from recog.errors import InvalidInputError
from recog.io.digest import sha256_file

if TYPE_CHECKING:
    from PIL import Image

    from recog.runtime.predictor import Predictor

Progress = Callable[[int], None]
METHODS = ("embedding", "phash", "dhash", "exact")
HASH_TRANSFORMS = ("resize", "jpeg30", "grey", "brighter", "crop85")
EMBED_TRANSFORMS = HASH_TRANSFORMS + ("hflip", "rotate10")


# --------------------------------------------------------------------------- pure helpers


class UnionFind:
    """Disjoint sets over ``0..n-1``."""

    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)

    def groups(self) -> list[list[int]]:
        """Sets with more than one member, each sorted, ordered by their first member."""
        out: dict[int, list[int]] = {}
        for i in range(len(self.parent)):
            out.setdefault(self.find(i), []).append(i)
        return sorted((g for g in out.values() if len(g) > 1), key=lambda g: g[0])


def hamming_pairs(bits: np.ndarray, max_distance: int, *, block: int = 2048) -> list[tuple[int, int, float]]:
    """``(i, j, distance)`` for ``i < j`` with Hamming distance ``<= max_distance`` between uint64 hashes ``(n,)``."""
    bits = np.asarray(bits, dtype=np.uint64)
    out: list[tuple[int, int, float]] = []
    for start in range(0, len(bits), block):
        a = bits[start:start + block]
        d = np.bitwise_count(a[:, None] ^ bits[None, :])
        ii, jj = np.nonzero(d <= max_distance)
        keep = jj > ii + start
        out += [(int(i + start), int(j), float(d[i, j])) for i, j in zip(ii[keep], jj[keep])]
    return out


def nearest_neighbours(vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """For each unit vector, its ``k`` most similar *other* vectors: ``(scores, indices)`` of shape ``(n, k)``.

    Exact below the ANN budget (:mod:`recog.search.ann`), IVF above it.
    """
    from recog.search.ann import AnnIndex, choose_kind

    n, dim = vectors.shape
    k = max(1, min(k, n - 1))
    kind = choose_kind(n, dim)
    ann = AnnIndex(dim, kind)
    if kind == "ivf":
        ann.train(vectors[np.random.default_rng(0).choice(n, min(n, 40 * 2 * int(np.sqrt(n))), replace=False)])
    ann.add(np.arange(n), vectors)
    scores, idx, _ = ann.search(vectors, k + 1)
    # drop each row's own entry (or the last one when it was not returned: an exact copy may outrank it)
    own = idx == np.arange(n)[:, None]
    drop = np.where(own.any(axis=1), own.argmax(axis=1), k)
    mask = np.ones_like(idx, dtype=bool)
    mask[np.arange(n), drop] = False
    return scores[mask].reshape(n, k), idx[mask].reshape(n, k)


def embedding_pairs(vectors: np.ndarray, min_similarity: float, *, k: int = 16) -> list[tuple[int, int, float]]:
    """``(i, j, cosine)`` for ``i < j`` among each vector's ``k`` nearest with similarity ``>= min_similarity``."""
    if len(vectors) < 2:
        return []
    scores, idx = nearest_neighbours(vectors, k)
    pairs: dict[tuple[int, int], float] = {}
    for i in range(len(vectors)):
        for s, j in zip(scores[i], idx[i]):
            if j >= 0 and s >= min_similarity:
                a, b = (i, int(j)) if i < j else (int(j), i)
                pairs[(a, b)] = max(pairs.get((a, b), -1.0), float(s))
    return [(a, b, s) for (a, b), s in sorted(pairs.items())]


@dataclass(frozen=True)
class Threshold:
    """The decision threshold of one method and where it came from."""

    method: str
    value: float
    chosen: str  # "calibrated" | "given"
    rule: str
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def higher_is_closer(self) -> bool:
        return self.method == "embedding"

    def to_dict(self) -> dict[str, Any]:
        unit = "cosine similarity >=" if self.higher_is_closer else "Hamming distance (bits of 64) <="
        return {"method": self.method, "value": round(float(self.value), 4), "unit": unit, "chosen": self.chosen,
                "rule": self.rule, **self.detail}


def choose_threshold(method: str, positives: Sequence[float], nearest: Sequence[float]) -> Threshold:
    """The score above which a nearest neighbour is more likely a copy than a distinct image.

    The nearest-neighbour scores of the data are a mixture of copies and
    distinct images. The copy component is fixed to the scores of known
    synthetic copies (``positives``, a kernel density); the distinct component
    is a Gaussian; the mixing share and the Gaussian are fitted by EM. The
    threshold is where the posterior of "copy" reaches 0.5, scanning up from
    the distinct images' mean. Scores are similarities for ``embedding``
    (higher is closer) and Hamming distances for hashes (lower is closer).

    Args:
        positives: scores between originals and their synthetic copies.
        nearest: each image's score to its nearest other (distinct-content) image.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> t = choose_threshold("embedding", rng.normal(0.93, 0.03, 100), rng.normal(0.4, 0.08, 200))
        >>> 0.5 < t.value < 0.85
        True
    """
    from scipy.stats import gaussian_kde

    higher = method == "embedding"
    sign = 1.0 if higher else -1.0
    pos = sign * np.asarray(positives, dtype=np.float64)
    s = sign * np.asarray(nearest, dtype=np.float64)
    if len(pos) < 2:
        raise InvalidInputError(f"cannot choose a {method} threshold: too few images could be copied and scored.",
                                hint="give --threshold")
    spread = max(float(pos.std()), 0.02 if higher else 1.0)
    density = gaussian_kde(pos + np.random.default_rng(0).normal(0, 1e-3 * spread, len(pos)))
    edge = float(np.quantile(pos, 0.05))
    rule = ("posterior 0.5 between synthetic copies (kernel density) and distinct images (Gaussian), "
            "fitted by EM on the nearest-neighbour scores")
    if len(s) < 3:
        value = edge
        share, mu, sd = None, None, None
    else:
        f_pos = density(s) + 1e-12
        low = s[s < edge]
        base = low if len(low) >= 3 else s
        best = None
        # EM from several starts (the distinct images' mean at low quantiles of the scores below the
        # weakest copies); the fit with the highest likelihood wins
        for q in (0.1, 0.25, 0.5):
            fit = _em(s, f_pos, float(np.quantile(base, q)), max(float(base.std()) / 2, 1e-3))
            if best is None or fit[3] > best[3] + 1e-9:
                best = fit
        share, mu, sd, _ = best
        top = max(float(pos.max()), float(s.max()))
        grid = np.linspace(mu, top, 4000)
        f_neg = np.exp(-0.5 * ((grid - mu) / sd) ** 2) / (sd * np.sqrt(2 * np.pi))
        post = share * density(grid) / (share * density(grid) + (1 - share) * f_neg + 1e-300)
        above = np.flatnonzero(post >= 0.5)
        value = float(grid[above[0]]) if len(above) else edge
    value = sign * value
    if not higher:
        value = float(np.floor(value))
    detail = {"positives": _summary(sign * pos), "nearest_neighbours": _summary(sign * s),
              "copy_share": None if share is None else round(share, 4),
              "distinct_mean": None if mu is None else round(sign * mu, 4),
              "distinct_sd": None if sd is None else round(sd, 4)}
    return Threshold(method, value, "calibrated", rule, detail)


def _em(s: np.ndarray, f_pos: np.ndarray, mu: float, sd: float, share: float = 0.1
        ) -> tuple[float, float, float, float]:
    """EM for ``share * f_pos + (1 - share) * Normal(mu, sd)`` with ``f_pos`` fixed: ``(share, mu, sd, loglik)``."""
    n = len(s)
    for _ in range(500):
        f_neg = np.exp(-0.5 * ((s - mu) / sd) ** 2) / (sd * np.sqrt(2 * np.pi)) + 1e-300
        r = share * f_pos / (share * f_pos + (1 - share) * f_neg)
        share = float(np.clip(r.mean(), 1.0 / n, 1 - 1.0 / n))
        w = 1 - r
        mu_new = float((w * s).sum() / w.sum())
        sd = max(float(np.sqrt((w * (s - mu_new) ** 2).sum() / w.sum())), 1e-3)
        done = abs(mu_new - mu) < 1e-8
        mu = mu_new
        if done:
            break
    f_neg = np.exp(-0.5 * ((s - mu) / sd) ** 2) / (sd * np.sqrt(2 * np.pi))
    return share, mu, sd, float(np.log(share * f_pos + (1 - share) * f_neg + 1e-300).sum())


def _summary(x: np.ndarray) -> dict[str, Any]:
    if not len(x):
        return {"n": 0}
    q = np.quantile(x, [0.0, 0.05, 0.5, 0.95, 1.0])
    return {"n": int(len(x)), "min": round(float(q[0]), 4), "p05": round(float(q[1]), 4),
            "median": round(float(q[2]), 4), "p95": round(float(q[3]), 4), "max": round(float(q[4]), 4)}


# --------------------------------------------------------------------------- image work


def synthetic_copies(img: "Image.Image", names: Sequence[str] = EMBED_TRANSFORMS) -> dict[str, "Image.Image"]:
    """Known near-duplicate copies of an RGB image (the calibration positives)."""
    from PIL import Image, ImageEnhance, ImageOps

    w, h = img.size
    out: dict[str, Image.Image] = {}
    for name in names:
        if name == "resize":
            out[name] = img.resize((max(16, w // 2), max(16, int(h * 0.6))), Image.BILINEAR)
        elif name == "jpeg30":
            buf = io.BytesIO()
            img.save(buf, "JPEG", quality=30)
            out[name] = Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
        elif name == "grey":
            out[name] = img.convert("L").convert("RGB")
        elif name == "brighter":
            out[name] = ImageEnhance.Brightness(img).enhance(1.3)
        elif name == "crop85":
            out[name] = img.crop((int(w * 0.075), int(h * 0.075), int(w * 0.925), int(h * 0.925)))
        elif name == "hflip":
            out[name] = ImageOps.mirror(img)
        elif name == "rotate10":
            out[name] = img.rotate(10, resample=Image.BILINEAR)
        else:
            raise ValueError(f"unknown transform {name!r}")
    return out


def hash_image(img: "Image.Image", method: str) -> int:
    """A 64-bit perceptual hash (``phash`` or ``dhash``) as an int."""
    import imagehash

    fn = {"phash": imagehash.phash, "dhash": imagehash.dhash}[method]
    bits = fn(img).hash.ravel()
    return int(np.packbits(bits.astype(np.uint8)).view(">u8")[0])


def relative_to(path: str | Path, root: str | Path | None) -> str:
    """``path`` relative to ``root`` (posix), or as given when outside it or when ``root`` is None."""
    if root is not None:
        try:
            return Path(path).resolve().relative_to(Path(root).resolve()).as_posix()
        except ValueError:
            pass
    return str(path)


@dataclass
class Member:
    path: str
    sha256: str
    score: float | None  # to the group's first member: similarity (embedding) or distance (hash); None: exact
    match: str  # "first" | "exact" | "near"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"path": self.path, "sha256": self.sha256, "match": self.match}
        if self.score is not None:
            out["score"] = round(float(self.score), 4)
        return out


@dataclass
class DedupResult:
    """Groups of duplicates among ``images`` files, and how they were found."""

    method: str
    images: int
    groups: list[list[Member]]
    thresholds: list[Threshold]
    failures: list[tuple[str, str]] = field(default_factory=list)
    model: str | None = None
    root: str | None = None

    @property
    def redundant(self) -> int:
        """Files that could go, keeping one per group."""
        return sum(len(g) - 1 for g in self.groups)

    def pairs(self) -> set[frozenset[str]]:
        """Every unordered pair of paths placed in the same group."""
        out = set()
        for g in self.groups:
            for a in range(len(g)):
                for b in range(a + 1, len(g)):
                    out.add(frozenset((g[a].path, g[b].path)))
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "model": self.model, "root": self.root, "images": self.images,
                "groups_found": len(self.groups), "redundant_files": self.redundant,
                "thresholds": [t.to_dict() for t in self.thresholds],
                "groups": [{"group": i + 1, "kind": "exact" if all(m.match != "near" for m in g) else "near",
                            "members": [m.to_dict() for m in g]} for i, g in enumerate(self.groups)],
                "failed": [{"path": p, "reason": r} for p, r in self.failures]}


def _decode(paths: Sequence[Path], size: int, progress: Progress | None):
    from recog.data.decode import decode_many
    from recog.io import load_image

    return decode_many(list(paths), lambda p: load_image(p, reduce_to=(size, size)), progress=progress)


def _sample(n: int, limit: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, min(n, limit), replace=False))


def find_duplicates(paths: Sequence[str | Path], *, method: str = "embedding", threshold: float | None = None,
                    model: "Predictor | None" = None, model_name: str | None = None, root: str | Path | None = None,
                    sample: int = 32, progress: Progress | None = None,
                    vectors: np.ndarray | None = None) -> DedupResult:
    """Group duplicate images.

    Args:
        paths: image files.
        method: ``embedding`` (default), ``phash``, ``dhash`` or ``exact``; exact copies are always grouped.
        threshold: the method's threshold (cosine similarity, or Hamming bits); None: :func:`choose_threshold`.
        model: the embedder for ``embedding`` (default efficientnet-lite0).
        root: paths are reported relative to it.
        sample: images copied for calibration.
        progress: called with the number of files done (decode / embed steps).
        vectors: precomputed embeddings of ``paths`` (L2-normalised, same order), skipping the model.

    Returns:
        A :class:`DedupResult`; files the safe loader refuses are in ``failures``.
    """
    if method not in METHODS:
        raise InvalidInputError(f"method must be one of {', '.join(METHODS)}, got {method!r}.")
    paths = [Path(p) for p in paths]
    base = Path(root) if root is not None else None

    def rel(p: Path) -> str:
        return relative_to(p, base)

    failures: list[tuple[str, str]] = []
    digests: list[str | None] = []
    for p in paths:
        try:
            digests.append(sha256_file(p))
        except OSError as exc:
            digests.append(None)
            failures.append((rel(p), f"cannot read: {exc.strerror or exc}"))
    uf = UnionFind(len(paths))
    first_of: dict[str, int] = {}
    for i, d in enumerate(digests):
        if d is not None:
            if d in first_of:
                uf.union(first_of[d], i)
            else:
                first_of[d] = i
    readable = [i for i, d in enumerate(digests) if d is not None]
    unique = sorted(first_of.values())  # one file per distinct content
    thresholds: list[Threshold] = []
    row_of: dict[int, int] = {}  # file index -> row of its features
    score: Callable[[int, int], float] | None = None
    if method in ("phash", "dhash"):
        done = _decode([paths[i] for i in unique], 256, progress)
        failures += [(rel(paths[unique[j]]), str(exc)) for j, exc in done.failures]
        ok = [unique[j] for j in done.kept]
        bits = np.array([hash_image(img, method) for img in done.items], dtype=np.uint64)
        t = Threshold(method, float(threshold), "given", "--threshold") if threshold is not None else \
            _calibrate_hash(method, done.items, bits, sample)
        for a, b, _ in hamming_pairs(bits, int(t.value)):
            uf.union(ok[a], ok[b])
        row_of = {f: r for r, f in enumerate(ok)}
        score = lambda a, b: float(bin(int(bits[a]) ^ int(bits[b])).count("1"))  # noqa: E731
        thresholds.append(t)
    elif method == "embedding":
        if vectors is None:
            if model is None:
                from recog.runtime.predictor import load

                model = load(model_name or "efficientnet-lite0", backend="torch").embedder()
            raw, kept, fails = model.outputs_many([paths[i] for i in unique], progress=progress)
            failures += [(rel(paths[unique[j]]), str(exc)) for j, exc in fails]
            ok = [unique[j] for j in kept]
            vecs = raw
        else:
            vecs = np.asarray(vectors, np.float32)[unique]
            ok = list(unique)
        if threshold is not None:
            t = Threshold("embedding", float(threshold), "given", "--threshold")
        else:
            t = _calibrate_embedding(model, [paths[i] for i in ok], vecs, sample)
        for a, b, _ in embedding_pairs(vecs, t.value):
            uf.union(ok[a], ok[b])
        row_of = {f: r for r, f in enumerate(ok)}
        score = lambda a, b: float(vecs[a] @ vecs[b])  # noqa: E731
        thresholds.append(t)
    groups = []
    for g in uf.groups():
        head = g[0]
        members = [Member(rel(paths[head]), digests[head] or "", None, "first")]
        for i in g[1:]:
            if digests[i] == digests[head]:
                members.append(Member(rel(paths[i]), digests[i] or "", None, "exact"))
            else:
                a, b = row_of.get(first_of[digests[head]]), row_of.get(first_of[digests[i]])
                value = score(a, b) if score is not None and a is not None and b is not None else None
                members.append(Member(rel(paths[i]), digests[i] or "", value, "near"))
        groups.append(members)
    return DedupResult(method, len(readable), groups, thresholds, failures, model_name if method == "embedding" else None,
                       str(base) if base is not None else None)


def _calibrate_embedding(model: "Predictor | None", paths: Sequence[Path], vecs: np.ndarray, sample: int) -> Threshold:
    if model is None:
        raise InvalidInputError("choosing an embedding threshold needs the model (to embed synthetic copies).",
                                hint="pass model=, or give threshold=")
    pick = _sample(len(paths), sample)
    done = _decode([paths[i] for i in pick], 512, None)
    positives: list[float] = []
    for j, img in zip(done.kept, done.items):
        copies = synthetic_copies(img, EMBED_TRANSFORMS)
        e = model.embed([np.asarray(c) for c in copies.values()])
        positives += (e @ vecs[pick[j]]).tolist()
    nearest: list[float] = []
    if len(vecs) > 1:
        scores, _ = nearest_neighbours(vecs, 1)
        nearest = scores[:, 0].tolist()
    t = choose_threshold("embedding", positives, nearest)
    return Threshold(t.method, t.value, t.chosen, t.rule,
                     {**t.detail, "sampled_images": int(len(done.items)), "transforms": list(EMBED_TRANSFORMS)})


def _calibrate_hash(method: str, images: Sequence["Image.Image"], bits: np.ndarray, sample: int) -> Threshold:
    pick = _sample(len(images), sample)
    positives: list[float] = []
    for j in pick:
        for copy in synthetic_copies(images[j], HASH_TRANSFORMS).values():
            positives.append(float(bin(hash_image(copy, method) ^ int(bits[j])).count("1")))
    nearest: list[float] = []
    if len(bits) > 1:
        for start in range(0, len(bits), 2048):
            d = np.bitwise_count(bits[start:start + 2048, None] ^ bits[None, :]).astype(np.float64)
            d[np.arange(len(d)), np.arange(start, start + len(d))] = np.inf
            nearest += d.min(axis=1).tolist()
    t = choose_threshold(method, positives, nearest)
    return Threshold(t.method, t.value, t.chosen, t.rule,
                     {**t.detail, "sampled_images": int(len(pick)), "transforms": list(HASH_TRANSFORMS)})


def write_outputs(result: DedupResult, out: str | Path, *, max_sheet_groups: int = 60) -> list[Path]:
    """``duplicates.json``, ``duplicates.csv`` (group, path, match, score, sha256) and ``contact_sheet.png``."""
    import csv
    import json

    from recog.search.files import contact_sheet

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    doc = result.to_dict()
    (out / "duplicates.json").write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    with open(out / "duplicates.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["group", "path", "match", "score", "sha256"])
        for g in doc["groups"]:
            for m in g["members"]:
                w.writerow([g["group"], m["path"], m["match"], m.get("score", ""), m["sha256"]])
    written = [out / "duplicates.json", out / "duplicates.csv"]
    root = Path(result.root) if result.root else None
    rows = []
    for g in doc["groups"][:max_sheet_groups]:
        items = [((root / m["path"]) if root else Path(m["path"]),
                  f"{m['match'] if 'score' not in m else format(m['score'], '.3g')} {Path(m['path']).name}")
                 for m in g["members"]]
        rows.append((f"group {g['group']} ({g['kind']}, {len(items)} files)", items))
    if rows:
        t = result.thresholds[0].to_dict() if result.thresholds else None
        title = (f"{len(doc['groups'])} duplicate groups; {t['method']} {t['unit']} {t['value']} ({t['chosen']})"
                 if t else f"{len(doc['groups'])} exact duplicate groups")
        contact_sheet(rows, title=title).save(out / "contact_sheet.png")
        written.append(out / "contact_sheet.png")
    return written
