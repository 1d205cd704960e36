"""The ``unknown`` threshold of a classifier's OOD score, chosen on held-out data plus a stated OOD set.

At training time the threshold is the in-distribution quantile ``1 - FALSE_ALARM`` (0.95: 5% of
held-out in-distribution images are flagged); nothing about out-of-distribution inputs is known.
``recog ood threshold BUNDLE --ood DIR`` states which inputs the model should call ``unknown``
(photos sent to a digit model, another product line, ...) and picks the threshold that separates
them best from held-out in-distribution images:

* rule: the largest Youden's J (TPR - FPR) among thresholds whose held-out false-alarm rate is at
  most ``max_false_alarm``; ties go to the higher threshold (fewer false alarms). The threshold sits
  half-way between two observed scores, not on one.
* the bundle's ``reference.detector`` records ``threshold`` and ``threshold_rule`` (the rule, the OOD
  folders, image counts, AUROC, and TPR/FPR at the chosen threshold), so every result's ``ood.method``
  says how its verdict was decided (:func:`recog.monitor.ood.describe`).

Without ``--ood`` the threshold stays the in-distribution quantile and the command says so; it still
measures the false-alarm rate on the held-out images.

Example:
    >>> rng = np.random.default_rng(0)
    >>> pick = choose_threshold(rng.uniform(size=500), 0.97 + 0.03 * rng.uniform(size=200))
    >>> round(pick["threshold"], 2), pick["tpr"], pick["fpr"] < 0.05      # 3% false alarms, every OOD image caught
    (0.97, 1.0, True)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from recog.errors import ConfigError
from recog.monitor.reference import FALSE_ALARM, default_rule


def choose_threshold(in_scores: np.ndarray, ood_scores: np.ndarray, *, max_false_alarm: float = FALSE_ALARM
                     ) -> dict[str, Any]:
    """``{"threshold", "tpr", "fpr", "auroc"}``: the verdict ``score > threshold`` that maximises TPR - FPR
    subject to FPR <= ``max_false_alarm``, for held-out in-distribution ``(N,)`` and OOD ``(M,)`` scores."""
    from sklearn.metrics import roc_auc_score

    s_in, s_out = np.asarray(in_scores, dtype=np.float64), np.asarray(ood_scores, dtype=np.float64)
    if not len(s_in) or not len(s_out):
        raise ConfigError(f"choosing a threshold needs both kinds of images; got {len(s_in)} in-distribution and "
                          f"{len(s_out)} out-of-distribution.")
    values = np.unique(np.r_[s_in, s_out])
    cuts = np.r_[(values[:-1] + values[1:]) / 2, values[-1]] if len(values) > 1 else values
    fpr = 1.0 - np.searchsorted(np.sort(s_in), cuts, side="right") / len(s_in)     # share > cut
    tpr = 1.0 - np.searchsorted(np.sort(s_out), cuts, side="right") / len(s_out)
    allowed = np.flatnonzero(fpr <= max_false_alarm)        # never empty: the last cut flags nothing
    j = tpr[allowed] - fpr[allowed]
    best = allowed[np.flatnonzero(j == j.max())[-1]]
    y = np.r_[np.zeros(len(s_in)), np.ones(len(s_out))]
    return {"threshold": round(float(cuts[best]), 6), "tpr": float(tpr[best]), "fpr": float(fpr[best]),
            "auroc": float(roc_auc_score(y, np.r_[s_in, s_out]))}


def calibrate_bundle(bundle: str | Path, ood: Sequence[str | Path] = (), *, data: str | Path | None = None,
                     split: str | None = None, max_false_alarm: float = FALSE_ALARM, batch_size: int = 32,
                     progress_factory: Callable[[str, int], Any] | None = None) -> dict[str, Any]:
    """Measure the OOD score on held-out in-distribution images (and the folders ``ood``), record the
    chosen threshold in ``bundle``, and return what was chosen and measured.

    Args:
        ood: folders of images the model should call ``unknown``; empty keeps the in-distribution quantile.
        data: labelled held-out in-distribution data [the bundle's training data: its test split, else val,
            else every image; then training images are included, the false-alarm rate is optimistic and
            ``includes_training_images`` says so].

    Raises:
        ConfigError: not a classifier with a reference; ``max_false_alarm`` outside (0, 1).
    """
    from recog.data import load_dataset
    from recog.models.bundle import update_bundle
    from recog.monitor.features import method_name
    from recog.monitor.ood import METHOD, ood_scores, split_outputs
    from recog.monitor.reference import reference_of
    from recog.runtime.predictor import load
    from recog.search.files import list_images
    from recog.tasks.base import evaluation_outputs, require_task
    from recog.tasks.classify import choose_split

    if not 0.0 < max_false_alarm < 1.0:
        raise ConfigError(f"--max-false-alarm must be between 0 and 1, got {max_false_alarm}.")
    model = load(bundle)
    manifest = model.manifest
    require_task(manifest, "classify", command="recog ood threshold")
    ref = reference_of(manifest)
    if ref is None:
        raise ConfigError(f"{bundle}: has no OOD reference (trained before recog stored one, or a ready preset).",
                          hint="retrain it with `recog train` (or `recog retrain`) to store one")
    training_data = data is None
    data = data or (manifest.raw.get("dataset") or {}).get("source")
    if data is None:
        raise ConfigError(f"{bundle}: recog.json does not name its training data.", hint="pass --data DATA")
    samples, split_name = choose_split(load_dataset(data), split)

    def scores(paths: Sequence[Path], what: str) -> np.ndarray:
        raw, _, _ = evaluation_outputs(model, list(paths), what, batch_size=batch_size,
                                       progress_factory=progress_factory, infer=model.infer_scored)
        used_features.append(split_outputs(raw, manifest)[1] is not None)
        return ood_scores(raw, manifest)[0]

    used_features: list[bool] = []

    s_in = scores([s.path for s in samples], str(data))
    held_out = f"{data} {split_name} ({len(s_in)} images)"
    # the threshold belongs to the score it was chosen on: the embedding-distance one when the backend gave features
    key = "features" if ref.get("features") and all(used_features) else "detector"
    det = dict(ref[key])
    if ood:
        paths = [p for folder in ood for p in list_images(folder)]
        s_out = scores(paths, ", ".join(map(str, ood)))
        pick = choose_threshold(s_in, s_out, max_false_alarm=max_false_alarm)
        rule = {"rule": "max TPR - FPR with held-out FPR <= max_false_alarm", "max_false_alarm": max_false_alarm,
                "ood_set": [str(f) for f in ood], "ood_images": len(s_out),
                "in_distribution": held_out, "auroc": round(pick["auroc"], 6), "tpr": round(pick["tpr"], 6),
                "fpr": round(pick["fpr"], 6)}
        threshold = pick["threshold"]
    else:
        threshold = round(1.0 - max_false_alarm, 6)
        rule = {**default_rule(ref.get("images", 0), max_false_alarm), "in_distribution": held_out,
                "fpr": round(float((s_in > threshold).mean()), 6)}
    det.update(threshold=threshold, threshold_rule=rule)
    updated = update_bundle(bundle, updates={"reference": {**ref, key: det}})
    return {"bundle": str(bundle), "version": updated.version, "threshold": threshold, "split": split_name,
            "score": method_name(ref["features"]) if key == "features" else METHOD,
            "includes_training_images": training_data and split_name == "all", **rule}
