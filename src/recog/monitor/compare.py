"""``recog compare``: champion vs challenger on one test set, a paired test, per-group gaps, a promotion rule.

Both bundles predict the same images. Accuracy differences are tested with McNemar's exact test
(the discordant pairs: ``scipy.stats.binomtest(c, b + c, 0.5)``, b = only the champion right, c =
only the challenger right). Per-group accuracy (a ``group`` column in a CSV manifest) is compared
group by group.

The promotion rule (:func:`promotion`): the challenger is promoted when it is **not worse**: its
accuracy is at least the champion's minus ``margin`` points, McNemar does not show it significantly
worse at ``alpha``, and no group loses more than ``max_group_drop`` points of accuracy.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np

from recog.errors import ConfigError


def mcnemar_exact(champion_right: np.ndarray, challenger_right: np.ndarray) -> dict[str, Any]:
    """McNemar's exact (binomial) test on paired correctness ``(N,)`` booleans.

    Example:
        >>> r = mcnemar_exact(np.array([1, 1, 0, 0, 1], bool), np.array([1, 0, 1, 1, 1], bool))
        >>> r["only_champion"], r["only_challenger"]
        (1, 2)
    """
    from scipy.stats import binomtest

    a, b = np.asarray(champion_right, bool), np.asarray(challenger_right, bool)
    only_a, only_b = int((a & ~b).sum()), int((~a & b).sum())
    p = float(binomtest(only_b, only_a + only_b, 0.5).pvalue) if only_a + only_b else 1.0
    return {"only_champion": only_a, "only_challenger": only_b, "p_value": p}


def require_same_labels(a: Any, b: Any) -> None:
    """Refuse two classifiers whose label sets differ, naming both lists."""
    if set(a.labels) != set(b.labels):
        raise ConfigError(f"the bundles have different label sets: {a.path} has {sorted(a.labels)}, "
                          f"{b.path} has {sorted(b.labels)}; their accuracies are not comparable.",
                          hint="compare bundles trained on the same classes (retrain with --new-labels makes "
                               "a new model family)")


def _group_accuracy(right: np.ndarray, groups: list[str] | None) -> dict[str, dict[str, float]]:
    if groups is None:
        return {}
    g = np.asarray(groups)
    return {name: {"accuracy": float(right[g == name].mean()), "images": int((g == name).sum())}
            for name in sorted(set(groups))}


def compare_bundles(champion: str | Path, challenger: str | Path, data: str | Path, *, split: str | None = None,
                    batch_size: int = 64, progress_factory: Callable[[str, int], Any] | None = None
                    ) -> dict[str, Any]:
    """Accuracy of both bundles on one test set, McNemar's test and per-group accuracies.

    Raises:
        ConfigError: a bundle is not a classifier, or the label sets differ (both named).
        DatasetError: the data has labels the models do not know.
    """
    import recog
    from recog.data import load_dataset
    from recog.data.dataset import require_model_labels
    from recog.tasks import require_task
    from recog.tasks.base import evaluation_outputs
    from recog.tasks.classify import choose_split

    models = [recog.load(p) for p in (champion, challenger)]
    for m in models:
        require_task(m.manifest, "classify", command="recog compare")
    require_same_labels(models[0], models[1])
    dataset = load_dataset(data)
    samples, split_name = choose_split(dataset, split)
    require_model_labels(samples, models[0].labels, data)
    paths = [s.path for s in samples]
    right, kept_sets = [], []
    for m in models:
        raw, kept, _ = evaluation_outputs(m, paths, data, batch_size=batch_size, progress_factory=progress_factory)
        names = np.asarray(m.labels)[raw.argmax(axis=1)]
        truth = np.asarray([samples[i].label for i in kept])
        right.append(dict(zip(kept, names == truth)))
        kept_sets.append(set(kept))
    both = sorted(kept_sets[0] & kept_sets[1])
    a = np.array([right[0][i] for i in both])
    b = np.array([right[1][i] for i in both])
    groups = [samples[i].group or "(none)" for i in both] if dataset.has_groups else None
    ga, gb = _group_accuracy(a, groups), _group_accuracy(b, groups)
    return {"data": str(data), "split": split_name, "images": len(both),
            "champion": {"bundle": str(champion), "version": models[0].manifest.version, "accuracy": float(a.mean())},
            "challenger": {"bundle": str(challenger), "version": models[1].manifest.version,
                           "accuracy": float(b.mean())},
            "difference": float(b.mean() - a.mean()), "mcnemar": mcnemar_exact(a, b),
            "groups": {g: {"champion": ga[g]["accuracy"], "challenger": gb[g]["accuracy"], "images": ga[g]["images"],
                           "difference": gb[g]["accuracy"] - ga[g]["accuracy"]} for g in ga}}


def promotion(result: dict[str, Any], *, margin: float = 0.0, alpha: float = 0.05,
              max_group_drop: float = 5.0) -> tuple[bool, list[str]]:
    """``(promote, reasons)``: the stated rule (module docstring); reasons name what failed or passed.

    ``margin`` and ``max_group_drop`` are in accuracy points (percent).
    """
    reasons = []
    diff = 100 * result["difference"]
    if diff < -margin:
        reasons.append(f"accuracy drops {-diff:.2f} points (allowed: {margin:g})")
    m = result["mcnemar"]
    if m["only_champion"] > m["only_challenger"] and m["p_value"] < alpha:
        reasons.append(f"McNemar: significantly worse (p = {m['p_value']:.3g} < {alpha:g})")
    for g, v in result["groups"].items():
        if 100 * v["difference"] < -max_group_drop:
            reasons.append(f"group {g!r} drops {-100 * v['difference']:.2f} points (allowed: {max_group_drop:g})")
    if reasons:
        return False, reasons
    sig = "significantly better" if m["only_challenger"] > m["only_champion"] and m["p_value"] < alpha else "not worse"
    return True, [f"{sig}: accuracy {diff:+.2f} points, McNemar p = {m['p_value']:.3g}"]


def promote(challenger: str | Path, champion: str | Path) -> Path:
    """Put the challenger bundle where the champion is served from; the champion moves to
    ``CHAMPION.previous-<version>`` (one rename each, so a reading service sees one or the other).

    Returns:
        where the previous champion now is.
    """
    from recog.models.bundle import read_manifest

    champion, challenger = Path(champion), Path(challenger)
    old = read_manifest(champion)
    read_manifest(challenger)  # verified before anything moves
    backup = champion.with_name(f"{champion.name}.previous-{old.version}")
    tmp = Path(tempfile.mkdtemp(dir=champion.parent, prefix=f".{champion.name}-promote-"))
    shutil.rmtree(tmp)
    shutil.copytree(challenger, tmp, ignore=shutil.ignore_patterns("report"))
    if backup.exists():
        shutil.rmtree(backup)
    os.replace(champion, backup)
    os.replace(tmp, champion)
    (champion / "promotion.json").write_text(json.dumps({"previous": str(backup), "from": str(challenger)}))
    return backup
