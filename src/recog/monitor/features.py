"""Embedding-distance reference of a classifier: pooled features of training images, stored in the bundle.

After training (:meth:`recog.tasks.classify.Classify.finish_bundle`) the best bundle gets
``ood_features.safetensors`` (listed and hashed in ``recog.json`` like every bundle file): up to
:data:`MAX_FEATURES` L2-normalised pooled backbone features of training images (float16), the
vectors the classifier's head sees. ``recog.json`` ``reference.features`` records how the OOD score
uses them:

``k``
    the kNN score is the cosine distance to the ``k``-th nearest stored training feature.
``rule``
    ``"knn+logits"``: the larger of the robust z-scores of the kNN distance and the logit score
    (:func:`recog.monitor.reference.combined`); ``"knn"``: the kNN distance alone.
``knn``, ``quantiles``
    the median and spread of the kNN distance, and the quantiles of the rule's raw score, both on
    the validation images (none of them is in the stored bank): the calibrated ``ood.score`` is the
    share of them that scored lower, as for the logit score.
``threshold``, ``threshold_rule``
    the ``unknown`` threshold of this score (0.95 at training time; ``recog ood threshold`` records
    the one it chooses here when it scored with features).

One forward pass gives both outputs: the classify task taps the input of the network's head
(:meth:`recog.tasks.classify.Classify.forward_features`); ONNX exports carry it as a second output
named ``features``. ``benchmarks/ood.py`` measured the choice of ``k`` and rule (docs/monitoring.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

FEATURES_FILE = "ood_features.safetensors"
#: training images whose features are stored (drawn evenly at random); 2,000 x 1,280 float16 = 5 MB.
MAX_FEATURES = 2000
#: the kNN score is the cosine distance to the K-th nearest stored feature.
K = 1
#: "knn+logits" (larger z-score of both) or "knn" alone.
RULE = "knn+logits"
_QUANTILES = np.linspace(0.0, 1.0, 201)


def knn_distance(features: np.ndarray, bank: np.ndarray, k: int = K) -> np.ndarray:
    """``1 - cos`` to the ``k``-th nearest row of ``bank`` ``(M, D)`` for unit rows of ``features`` ``(N, D)``."""
    sims = np.asarray(features, dtype=np.float32) @ bank.T
    k = min(k, bank.shape[0])
    return 1.0 - np.partition(sims, -k, axis=1)[:, -k].astype(np.float64)


def raw_score(features: np.ndarray, logit_score: np.ndarray | None, bank: np.ndarray, record: dict[str, Any]
              ) -> np.ndarray:
    """The uncalibrated score of ``record``'s rule: the kNN z-score, or the larger of it and ``logit_score``."""
    med, sd = record["knn"]
    z = (knn_distance(features, bank, record["k"]) - med) / sd
    return np.maximum(z, logit_score) if record["rule"] == "knn+logits" and logit_score is not None else z


def method_name(record: dict[str, Any]) -> str:
    """``ood.method``'s score part for a features record."""
    knn = f"knn cosine (features, k={record['k']}, {record['rows']} training images)"
    return f"{knn} + mahalanobis+energy (logits)" if record["rule"] == "knn+logits" else knn


def fit_features(bank: np.ndarray, val_features: np.ndarray, val_logit_score: np.ndarray, *, k: int = K,
                 rule: str = RULE) -> dict[str, Any]:
    """The ``reference.features`` record (less ``file``) for a bank of training features and the
    validation images' features ``(N, D)`` and logit scores ``(N,)``.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> unit = lambda a: a / np.linalg.norm(a, axis=1, keepdims=True)
        >>> rec = fit_features(unit(rng.normal(size=(50, 8))), unit(rng.normal(size=(20, 8))), rng.normal(size=20))
        >>> rec["rule"], rec["k"], rec["threshold"], len(rec["quantiles"])
        ('knn+logits', 1, 0.95, 201)
    """
    from recog.monitor.reference import FALSE_ALARM, _spread, default_rule

    knn = knn_distance(val_features, bank, k)
    record = {"rows": int(len(bank)), "dim": int(bank.shape[1]), "k": int(k), "rule": rule, "knn": _spread(knn)}
    raw = raw_score(val_features, val_logit_score, bank, record)
    record.update(quantiles=np.quantile(raw, _QUANTILES).round(5).tolist(), threshold=round(1.0 - FALSE_ALARM, 4),
                  threshold_rule=default_rule(len(raw)), fitted_on=f"val ({len(raw)} images)")
    return record


def draw(paths: Sequence[Any], limit: int = MAX_FEATURES, *, seed: int = 0) -> list[Any]:
    """Up to ``limit`` of ``paths``, drawn evenly at random, in their order."""
    paths = list(paths)
    if len(paths) <= limit:
        return paths
    return [paths[i] for i in np.sort(np.random.default_rng(seed).choice(len(paths), limit, replace=False))]


def write_bank(bundle: str | Path, bank: np.ndarray) -> str:
    """Write the bank into ``bundle`` as float16 safetensors; returns the file name (not yet recorded)."""
    from safetensors.numpy import save_file

    save_file({"features": np.ascontiguousarray(bank, dtype=np.float16)}, str(Path(bundle) / FEATURES_FILE))
    return FEATURES_FILE


def read_bank(manifest: Any, record: dict[str, Any]) -> np.ndarray:
    """The stored features ``(M, D)`` as float32 (the file was hashed when the bundle was read)."""
    from safetensors.numpy import load_file

    from recog.errors import BundleError
    from recog.models.checks import bundle_file

    name = record.get("file")
    if name not in manifest.files:
        raise BundleError(f"{manifest.path}: reference.features names {name!r}, which recog.json does not list.")
    bank = load_file(str(bundle_file(manifest.path, name)))["features"].astype(np.float32)
    if bank.ndim != 2 or bank.shape != (record["rows"], record["dim"]):
        raise BundleError(f"{manifest.path}: {name} holds {bank.shape}, recog.json says "
                          f"({record['rows']}, {record['dim']}).")
    return bank
