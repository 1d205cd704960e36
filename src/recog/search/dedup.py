"""Near-duplicate images: exact (sha256), perceptual (pHash / dHash) and embedding-based, with a threshold chosen on the data.

Three ways to call two files duplicates, each giving pairs that are joined into
groups (connected components, so a chain of close copies is one group):

* ``exact``: the same bytes (sha256); always on.
* ``phash`` / ``dhash``: Hamming distance of 64-bit perceptual hashes
  (``imagehash``, BSD) at most ``t`` bits; robust to resizing, re-encoding,
  grey and brightness changes, not to flips, crops or rotations.
* ``embedding``: cosine similarity of the model's embeddings at least ``t``;
  also catches flips, crops, rotations and colour changes.

The threshold is chosen on the data unless given
(:func:`recog.search.calibrate.choose_threshold`): up to ``sample`` images are
copied with known transforms; their scores to the originals describe copies,
each image's nearest other image describes the data; EM fits "copies +
distinct images" to the nearest-neighbour scores and the threshold is where a
copy becomes the likelier explanation. The threshold, the rule and both
distributions are written in the output.

Example:
    >>> result = find_duplicates(list_images("photos/"), method="embedding")   # doctest: +SKIP
    >>> write_outputs(result, "dupes/")                                          # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from recog.errors import InvalidInputError
from recog.search.calibrate import Threshold, calibrate_embedding, calibrate_hash
from recog.search.pairs import UnionFind, decode_reduced, embedding_pairs, hamming_pairs, hash_image
from recog.io.digest import sha256_file

if TYPE_CHECKING:
    from recog.runtime.predictor import Predictor

Progress = Callable[[int], None]
METHODS = ("embedding", "phash", "dhash", "exact")


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

    def reason(p: Path, exc: Exception) -> str:  # the loader's message, naming the file as reported
        return str(exc).replace(str(p), rel(p))

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
        done = decode_reduced([paths[i] for i in unique], 256, progress)
        failures += [(rel(paths[unique[j]]), reason(paths[unique[j]], exc)) for j, exc in done.failures]
        ok = [unique[j] for j in done.kept]
        bits = np.array([hash_image(img, method) for img in done.items], dtype=np.uint64)
        t = Threshold(method, float(threshold), "given", "--threshold") if threshold is not None else \
            calibrate_hash(method, done.items, bits, sample)
        for a, b, _ in hamming_pairs(bits, int(t.value)):
            uf.union(ok[a], ok[b])
        row_of = {f: r for r, f in enumerate(ok)}
        score = lambda a, b: float(bin(int(bits[a]) ^ int(bits[b])).count("1"))  # noqa: E731
        thresholds.append(t)
    elif method == "embedding":
        if vectors is None:
            if model is None:
                from recog.search.images import embedder

                model = embedder(model_name or "efficientnet-lite0")
            raw, kept, fails = model.outputs_many([paths[i] for i in unique], progress=progress)
            failures += [(rel(paths[unique[j]]), reason(paths[unique[j]], exc)) for j, exc in fails]
            ok = [unique[j] for j in kept]
            vecs = raw
        else:
            vecs = np.asarray(vectors, np.float32)[unique]
            ok = list(unique)
        if threshold is not None:
            t = Threshold("embedding", float(threshold), "given", "--threshold")
        else:
            t = calibrate_embedding(model, [paths[i] for i in ok], vecs, sample)
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
