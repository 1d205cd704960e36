"""Likely label errors by confident learning (Northcutt, Jiang & Chuang, JAIR 2021), implemented here.

cleanlab is AGPL, so the method is written out from the paper:

1. out-of-sample predicted probabilities ``p`` (:func:`out_of_sample_probs`:
   cross-validated logistic regression on embeddings, each image scored by a
   model that never saw it);
2. per-class thresholds ``t_j``: the mean ``p_j`` of the images labelled ``j``;
3. the confident joint ``C[i, j]``: images labelled ``i`` whose ``p_j >= t_j``
   (the most probable such ``j`` when several), calibrated so each row sums to
   the class's count, then normalised into the joint ``Q``;
4. prune by noise rate: for every off-diagonal ``(i, j)``, the ``n Q[i, j]``
   images labelled ``i`` with the largest margin ``p_j - p_i`` are flagged;
   an image whose given label is also its most probable class is never flagged.

Issues are ranked by self-confidence ``p[given label]`` (lowest first).

Example:
    >>> probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.1, 0.9], [0.95, 0.05]])
    >>> find_label_issues(probs, np.array([0, 0, 1, 1])).tolist()
    [False, False, False, True]
"""

from __future__ import annotations

import numpy as np

from recog.errors import InvalidInputError


def confident_joint(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``(K, K)`` counts: row = given label, column = confidently predicted class (rows calibrated to class counts)."""
    n, k = probs.shape
    thresholds = np.array([probs[labels == j, j].mean() if (labels == j).any() else 1.0 for j in range(k)])
    above = probs >= thresholds[None, :] - 1e-12
    masked = np.where(above, probs, -1.0)
    pred = masked.argmax(axis=1)
    counted = above.any(axis=1)
    joint = np.zeros((k, k), np.float64)
    np.add.at(joint, (labels[counted], pred[counted]), 1.0)
    counts = np.bincount(labels, minlength=k).astype(np.float64)
    rows = joint.sum(axis=1, keepdims=True)
    return np.where(rows > 0, joint / np.maximum(rows, 1) * counts[:, None], 0.0)


def find_label_issues(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Boolean mask ``(n,)`` of likely label errors (prune by noise rate; see the module docstring).

    Args:
        probs: ``(n, K)`` out-of-sample predicted probabilities (rows sum to 1).
        labels: ``(n,)`` given labels in ``0..K-1``.
    """
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    if probs.ndim != 2 or len(probs) != len(labels):
        raise InvalidInputError(f"expected probs (n, K) and labels (n,), got {probs.shape} and {labels.shape}.")
    n, k = probs.shape
    joint = confident_joint(probs, labels)
    total = joint.sum()
    q = joint / total if total > 0 else joint
    prune = np.rint(q * n).astype(np.int64)
    issues = np.zeros(n, dtype=bool)
    for i in range(k):
        members = np.flatnonzero(labels == i)
        if not len(members):
            continue
        # keep at least one image of each class (as the paper's implementation does)
        budget = max(0, len(members) - 1)
        for j in range(k):
            if j == i or prune[i, j] <= 0:
                continue
            margin = probs[members, j] - probs[members, i]
            take = members[np.argsort(-margin, kind="stable")[:min(int(prune[i, j]), budget)]]
            issues[take] = True
    issues[probs.argmax(axis=1) == labels] = False
    return issues


def out_of_sample_probs(features: np.ndarray, labels: np.ndarray, *, folds: int = 5, seed: int = 0,
                        c: float | None = None) -> np.ndarray:
    """``(n, K)`` probabilities, each row from a logistic regression fitted on the other folds.

    Features are standardised inside each fold. The inverse regularisation
    ``c`` is, unless given, the one of :data:`C_GRID` with the lowest 3-fold
    cross-validated log loss on the (noisy) labels: over-fitted probabilities
    agree with wrong labels and hide them. Classes with fewer members than
    ``folds`` lower the number of folds (at least 2).
    """
    from sklearn.model_selection import StratifiedKFold

    x = np.asarray(features, dtype=np.float32)
    y = np.asarray(labels, dtype=np.int64)
    k = int(y.max()) + 1 if len(y) else 0
    present = np.bincount(y, minlength=k)
    smallest = int(present[present > 0].min()) if len(y) else 0
    if smallest < 2:
        raise InvalidInputError("finding label issues needs at least 2 images in every class.")
    folds = max(2, min(folds, smallest))
    from threadpoolctl import threadpool_limits

    # the fits are many small BLAS calls: one thread avoids hand-off waits on busy cores
    # (measured: 600 x 324 features, 16 fits, 18 s with 2 BLAS threads on 2 loaded cores)
    with threadpool_limits(limits=1, user_api="blas"):
        if c is None:
            c = choose_c(x, y, folds=min(3, folds), seed=seed)
        probs = np.zeros((len(y), k), np.float64)
        for train, test in StratifiedKFold(folds, shuffle=True, random_state=seed).split(x, y):
            model = _model(c).fit(x[train], y[train])
            probs[np.ix_(test, model.classes_)] = model.predict_proba(x[test])
    return probs


#: Inverse regularisation strengths tried by :func:`choose_c`.
C_GRID = (0.001, 0.01, 0.1, 1.0)


def _model(c: float):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=500))


def choose_c(x: np.ndarray, y: np.ndarray, *, folds: int = 3, seed: int = 0) -> float:
    """The ``C`` of :data:`C_GRID` with the lowest cross-validated log loss."""
    from sklearn.metrics import log_loss
    from sklearn.model_selection import StratifiedKFold

    labels = np.unique(y)
    best = (np.inf, C_GRID[0])
    for c in C_GRID:
        losses = []
        for train, test in StratifiedKFold(folds, shuffle=True, random_state=seed + 1).split(x, y):
            model = _model(c).fit(x[train], y[train])
            p = np.zeros((len(test), len(labels)))
            p[:, np.searchsorted(labels, model.classes_)] = model.predict_proba(x[test])
            p /= p.sum(axis=1, keepdims=True)
            losses.append(log_loss(y[test], p, labels=labels))
        best = min(best, (float(np.mean(losses)), c))
    return best[1]
