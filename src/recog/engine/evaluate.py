"""Evaluate a bundle on a labelled dataset: probabilities → metrics, plots, report."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from recog.errors import DatasetError


@dataclass
class EvaluationResult:
    metrics: dict[str, Any]
    report: Path
    out_dir: Path
    split: str
    failures: list[tuple[str, str]]


def choose_split(dataset, split: str | None) -> tuple[list, str]:
    """The samples to evaluate: ``split`` if given; else test, else val, else everything."""
    if split is not None:
        samples = dataset.split(split) if dataset.has_splits else []
        if not samples:
            raise DatasetError(f"{dataset.root}: has no {split!r} split.",
                               hint="omit --split to use test/ (or every image when there are no splits)")
        return samples, split
    for name in ("test", "val"):
        if dataset.split(name):
            return dataset.split(name), name
    return list(dataset.samples), "all"


def _model_name(bundle: str | Path) -> str:
    """``runs/pets/best`` → ``pets/best``: the run's name says more than ``best``."""
    path = Path(bundle).resolve()
    return f"{path.parent.name}/{path.name}" if path.name in ("best", "last") else path.name


def evaluate(bundle: str | Path, data: str | Path, *, split: str | None = None, out: str | Path | None = None,
             backend: str = "auto", batch_size: int = 64,
             progress_factory: Callable[[str, int], Any] | None = None) -> EvaluationResult:
    """Evaluate ``bundle`` on ``data`` and write ``metrics.json``, plots and ``report.html``.

    Args:
        out: report folder; default ``BUNDLE/report``.
        progress_factory: ``(description, total) -> context manager yielding advance(n)``.
    """
    import recog
    from recog.data import load_dataset
    from recog.data.dataset import require_model_labels
    from recog.metrics import write_report

    from recog.tasks import require_task
    from recog.tasks.classify import probabilities

    predictor = recog.load(bundle, backend=backend)
    require_task(predictor.manifest, "classify", command="recog evaluate")
    dataset = load_dataset(data)
    samples, split_name = choose_split(dataset, split)
    require_model_labels(samples, predictor.labels, data)
    paths = [s.path for s in samples]
    if progress_factory is None:
        logits, kept, refused = predictor.outputs_many(paths, batch_size=batch_size)
    else:
        with progress_factory(f"evaluating ({predictor.backend.name})", len(paths)) as advance:
            logits, kept, refused = predictor.outputs_many(paths, batch_size=batch_size, progress=advance)
    probs = probabilities(logits, predictor.manifest.temperature)
    failures = [(str(paths[i]), str(exc)) for i, exc in refused]
    if not kept:
        raise DatasetError(f"{data}: none of the {len(paths)} images could be read.")
    index = {name: i for i, name in enumerate(predictor.labels)}
    kept_samples = [samples[i] for i in kept]
    y_true = np.array([index[s.label] for s in kept_samples])
    groups = [s.group or "(none)" for s in kept_samples] if dataset.has_groups else None
    out_dir = Path(out) if out is not None else Path(bundle) / "report"
    info = {**predictor.info.to_dict(), "backend": predictor.backend.name, "bundle": str(bundle),
            "data": str(data), "split": split_name, "skipped_files": len(failures)}
    report = write_report(out_dir, y_true, probs, list(predictor.labels), sources=[str(s.path) for s in kept_samples],
                          groups=groups, title=f"recog evaluation: {_model_name(bundle)} on {data} ({split_name})",
                          model_info=info)
    import json

    metrics = json.loads((out_dir / "metrics.json").read_text())
    return EvaluationResult(metrics, report, out_dir, split_name, failures)
