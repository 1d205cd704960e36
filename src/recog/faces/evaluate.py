"""Verification accuracy, error rates, a threshold sweep and per-group fairness.

:func:`evaluate_distances` is pure (distances and labels in, report out) and
is what the tests feed; :func:`evaluate_pairs` reads a pairs CSV, embeds each
image once with a :class:`~recog.faces.analyzer.FaceAnalyzer` and calls it.

Definitions (ISO/IEC 19795-1 terms), a pair "matches" when distance <= threshold:

* FMR (false match rate): impostor pairs (different people) that match / impostor pairs.
* FNMR (false non-match rate): genuine pairs (same person) that do not match / genuine pairs.
* accuracy: pairs decided correctly / pairs.
* ROC: FMR and FNMR at every distinct threshold (from ``sklearn.metrics.roc_curve``), AUC, EER.

Pairs whose image has no detectable face cannot be compared; like NIST FRVT
they count as non-matches (a genuine one is a false non-match) and are listed
in ``failed_images``. The largest face of each image is used.

The pairs CSV has a header with ``image1,image2,same`` and optionally
``group`` (e.g. a demographic label); ``same`` is 1/0, true/false, yes/no or
same/different; paths are relative to the CSV's folder.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from recog.errors import DatasetError, ImageError, NoFaceError
from recog.faces.dlib_models import DEFAULT_THRESHOLD
from recog.metrics.groups import largest_gap

#: Distance given to pairs that could not be compared (real distances are well below this).
FAILED_DISTANCE = 10.0

SWEEP = tuple(round(t, 2) for t in np.arange(0.30, 0.901, 0.05))

_TRUE = {"1", "true", "yes", "y", "same", "match", "genuine"}
_FALSE = {"0", "false", "no", "n", "different", "diff", "nonmatch", "impostor"}


def _rate(num: int, den: int) -> float | None:
    return None if den == 0 else num / den


def rates(distances: np.ndarray, same: np.ndarray, threshold: float) -> dict[str, Any]:
    """Accuracy, FMR and FNMR at one threshold, with the counts they come from."""
    match = distances <= threshold
    genuine, impostor = int(same.sum()), int((~same).sum())
    fm = int((match & ~same).sum())
    fnm = int((~match & same).sum())
    return {"threshold": float(threshold), "pairs": int(len(same)), "genuine": genuine, "impostor": impostor,
            "accuracy": _rate(int((match == same).sum()), len(same)), "fmr": _rate(fm, impostor),
            "fnmr": _rate(fnm, genuine), "false_matches": fm, "false_non_matches": fnm}


def _roc(distances: np.ndarray, same: np.ndarray) -> dict[str, Any]:
    if same.all() or not same.any():
        return {"auc": None, "eer": None, "eer_threshold": None, "curve": []}
    from sklearn.metrics import roc_auc_score, roc_curve

    fpr, tpr, thr = roc_curve(same.astype(int), -distances)
    thr = -thr  # back to distances; the first is +inf-like (nothing matches)
    fnmr = 1.0 - tpr
    i = int(np.argmin(np.abs(fpr - fnmr)))
    curve = [{"threshold": float(t) if np.isfinite(t) else None, "fmr": float(a), "fnmr": float(b)}
             for t, a, b in zip(thr, fpr, fnmr)]
    return {"auc": float(roc_auc_score(same.astype(int), -distances)), "eer": float((fpr[i] + fnmr[i]) / 2),
            "eer_threshold": float(thr[i]) if np.isfinite(thr[i]) else None, "curve": curve}


@dataclass(frozen=True)
class EvaluationReport:
    """Overall and per-group verification metrics; ``to_dict()`` is the JSON report."""

    overall: dict[str, Any]
    roc: dict[str, Any]
    sweep: list[dict[str, Any]]
    groups: dict[str, dict[str, Any]] = field(default_factory=dict)
    gaps: dict[str, dict[str, Any]] = field(default_factory=dict)
    largest_gap: dict[str, Any] | None = None
    failed_images: list[dict[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"overall": self.overall, "roc": self.roc, "sweep": self.sweep, "groups": self.groups,
                "gaps": self.gaps, "largest_gap": self.largest_gap, "failed_images": self.failed_images}


def evaluate_distances(distances: Sequence[float], same: Sequence[bool], *, groups: Sequence[str] | None = None,
                       threshold: float = DEFAULT_THRESHOLD,
                       failed_images: list[dict[str, str]] | None = None) -> EvaluationReport:
    """Metrics for pairs given their embedding distances.

    Args:
        distances: ``(n,)`` euclidean distances.
        same: ``(n,)`` True for genuine (same-person) pairs.
        groups: ``(n,)`` group label per pair, or None.
        threshold: the operating point; pairs with distance <= threshold match.

    Example:
        >>> r = evaluate_distances([0.3, 0.8, 0.5, 0.7], [True, False, True, True])
        >>> r.overall["accuracy"], r.overall["fnmr"]
        (0.75, 0.3333333333333333)
    """
    d = np.asarray(distances, dtype=np.float64)
    s = np.asarray(same, dtype=bool)
    if d.shape != s.shape or d.ndim != 1 or len(d) == 0:
        raise DatasetError(f"expected as many distances as labels (at least one), got {d.shape} and {s.shape}.")
    overall = rates(d, s, threshold)
    sweep = [rates(d, s, t) for t in SWEEP]
    roc = _roc(d, s)
    overall["auc"], overall["eer"] = roc["auc"], roc["eer"]
    per_group: dict[str, dict[str, Any]] = {}
    gaps: dict[str, dict[str, Any]] = {}
    largest = None
    if groups is not None:
        g = np.asarray([str(x) for x in groups])
        if g.shape != d.shape:
            raise DatasetError(f"expected one group per pair, got {len(g)} for {len(d)} pairs.")
        for name in sorted(set(g.tolist())):
            m = g == name
            per_group[name] = {**rates(d[m], s[m], threshold), "auc": _roc(d[m], s[m])["auc"]}
        for metric in ("accuracy", "fmr", "fnmr"):
            vals = {k: v[metric] for k, v in per_group.items() if v[metric] is not None}
            gap = largest_gap(vals, higher_is_better=metric == "accuracy") if len(vals) >= 2 else None
            if gap is not None:
                gaps[metric] = {k: gap[k] for k in ("gap", "worst_group", "best_group", "worst", "best")}
        if gaps:
            key = max(gaps, key=lambda k: gaps[k]["gap"])
            largest = {"metric": key, **gaps[key]}
    return EvaluationReport(overall, roc, sweep, per_group, gaps, largest, list(failed_images or []))


def _pick(header: list[str], names: tuple[str, ...], what: str, path: Path, required: bool = True) -> str | None:
    low = {h.strip().lower(): h for h in header}
    for n in names:
        if n in low:
            return low[n]
    if required:
        raise DatasetError(f"{path}: no {what} column; expected one of {', '.join(names)} in the header, "
                           f"got {', '.join(header)}.", hint="the header should be image1,image2,same[,group]")
    return None


def read_pairs(path: str | Path) -> tuple[list[tuple[Path, Path, bool, str | None]], bool]:
    """Rows of a pairs CSV as ``(image1, image2, same, group)`` and whether it has a group column."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: no such pairs file.")
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        header = reader.fieldnames or []
        c1 = _pick(header, ("image1", "path1", "a", "left", "img1"), "first image", path)
        c2 = _pick(header, ("image2", "path2", "b", "right", "img2"), "second image", path)
        cs = _pick(header, ("same", "label", "match", "is_same", "genuine"), "same/different label", path)
        cg = _pick(header, ("group", "demographic", "cohort"), "group", path, required=False)
        rows = []
        for n, row in enumerate(reader, 2):
            v = (row.get(cs) or "").strip().lower()  # type: ignore[arg-type]
            if v not in _TRUE | _FALSE:
                raise DatasetError(f"{path}:{n}: label {row.get(cs)!r} is not one of 1/0, true/false, same/different.")
            p1, p2 = (path.parent / (row.get(c) or "").strip() for c in (c1, c2))  # type: ignore[arg-type]
            rows.append((p1, p2, v in _TRUE, (row.get(cg) or "").strip() if cg else None))
    if not rows:
        raise DatasetError(f"{path}: the pairs file has no rows.")
    return rows, cg is not None


def evaluate_pairs(path: str | Path, analyzer: Any = None, *, threshold: float = DEFAULT_THRESHOLD,
                   on_image: Any = None) -> EvaluationReport:
    """Embed every image of a pairs CSV once and evaluate (see the module docstring)."""
    from recog.faces.analyzer import FaceAnalyzer

    analyzer = analyzer or FaceAnalyzer()
    rows, has_groups = read_pairs(path)
    vectors: dict[Path, np.ndarray | None] = {}
    failed: list[dict[str, str]] = []
    for img in dict.fromkeys(p for r in rows for p in r[:2]):
        try:
            _, vec, _ = analyzer.largest_face(img)
            vectors[img] = vec
        except (NoFaceError, ImageError) as exc:
            vectors[img] = None
            failed.append({"image": str(img), "code": exc.code, "detail": str(exc)})
        if on_image is not None:
            on_image(img)
    dists = []
    for p1, p2, _, _ in rows:
        v1, v2 = vectors[p1], vectors[p2]
        dists.append(FAILED_DISTANCE if v1 is None or v2 is None
                     else float(np.linalg.norm(v1.astype(np.float64) - v2.astype(np.float64))))
    return evaluate_distances(dists, [r[2] for r in rows], groups=[r[3] or "" for r in rows] if has_groups else None,
                              threshold=threshold, failed_images=failed)
