"""``recog retrain``: fine-tune a classifier bundle on its original data plus new labelled images.

The original data is where the bundle says it was trained (``recog.json`` → ``dataset.source``;
``--data`` when it moved). Its samples keep the splits the original run used (its folders, or the
same seeded draw), so the validation set that picks the best epoch is unchanged; the new images join
the training split (or their own ``train/val/test`` folders when they have them). The union is
written as ``OUT/data.csv`` and trained by the ordinary engine, starting from the bundle's weights
with its training options, a lower learning rate and fewer epochs.

New data whose labels the bundle does not know is refused unless ``new_labels=True`` (the head
grows, the model becomes a new family: ``recog compare`` then refuses to compare it with its parent).

Lineage (``recog.json`` → ``lineage``): the parent's path, version and weights sha256, and the
fingerprints of the original and the added data.
"""

from __future__ import annotations

import csv
from dataclasses import replace
from pathlib import Path
from typing import Any

from recog.errors import ConfigError


def _merged_csv(original: Any, added: Any, out: Path, config: Any) -> Any:
    """Write ``out/data.csv`` (original samples in their run's splits, then the added ones); returns
    the original data set as split for the run (its fingerprint is the one the parent recorded)."""
    if not original.has_splits or not original.split("val"):
        original = original.with_splits(val=config.val_split, test=config.test_split, seed=config.seed)
    rows = [(s.path.resolve(), s.label, s.split or "train", s.group or "") for s in original.samples]
    rows += [(s.path.resolve(), s.label, s.split or "train", s.group or "") for s in added.samples]
    out.mkdir(parents=True, exist_ok=True)
    path = out / "data.csv"
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "label", "split", "group"] if any(r[3] for r in rows) else ["path", "label", "split"])
        for r in rows:
            w.writerow(r if any(x[3] for x in rows) else r[:3])
    return original


def lineage(parent: Any, original: Any, added: Any) -> dict[str, Any]:
    """The ``lineage`` record of a bundle retrained from ``parent`` (a manifest)."""
    return {"parent": {"path": str(parent.path.resolve()), "version": parent.version,
                       "weights_sha256": parent.files.get("model.safetensors")},
            "parent_lineage": parent.lineage,
            "data": {"original": {"source": str(original.root), "fingerprint": original.fingerprint(),
                                  "images": len(original.samples)},
                     "added": {"source": str(added.root), "fingerprint": added.fingerprint(),
                               "images": len(added.samples), "labels": sorted(set(s.label for s in added.samples))}}}


def retrain(bundle: str | Path, add: str | Path, out: str | Path, *, data: str | Path | None = None,
            new_labels: bool = False, epochs: int = 5, lr: float | None = None, reporter: Any = None,
            **options: Any) -> Any:
    """Fine-tune ``bundle`` on its original data plus ``add``; returns the :class:`~recog.tasks.TrainResult`.

    Raises:
        ConfigError: not a classifier; original data not found; labels the bundle does not know
            without ``new_labels`` (they are named); ``out`` already holds a run.
    """
    from recog.data import load_dataset
    from recog.engine.config import load_config
    from recog.engine.train import train
    from recog.models.bundle import read_manifest, update_bundle
    from recog.tasks import require_task

    parent = read_manifest(bundle)
    require_task(parent, "classify", command="recog retrain")
    source = data or parent.dataset.get("source")
    if not source or not Path(source).exists():
        raise ConfigError(f"{bundle}: its original data ({source or 'not recorded'}) is not there.",
                          hint="pass --data ORIGINAL_DATA (the folder or CSV it was trained on)")
    original, added = load_dataset(source), load_dataset(add)
    unknown = sorted(set(added.labels) - set(parent.labels))
    if unknown and not new_labels:
        raise ConfigError(f"{add} has labels the model does not know: {unknown[:10]} (the model's: "
                          f"{sorted(parent.labels)[:10]}).",
                          hint="fix the folder names, or pass --new-labels to add these classes (a new head)")
    training = {k: v for k, v in parent.training.items() if k not in ("data", "out", "model", "weights")}
    config = load_config({**training, "data": str(Path(out) / "data.csv"), "out": str(out), "model": str(bundle),
                          "epochs": epochs, **({"lr": lr} if lr is not None else
                                               {"lr": float(training.get("lr", 1e-3)) / 3}), **options})
    if (Path(out) / "last").exists():
        raise ConfigError(f"{out} already holds a run.", hint="pick another --out")
    original = _merged_csv(original, added, Path(out), config)
    result = train(replace(config, weights=None), reporter)
    record = lineage(parent, original, added)
    for b in (result.best, result.last):
        if (Path(b) / "recog.json").is_file():
            update_bundle(b, updates={"lineage": record})
    return result
