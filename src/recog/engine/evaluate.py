"""``recog evaluate``: load a bundle and hand it to its task's evaluation (metrics, plots, report.html)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from recog.tasks import EvaluationResult


def evaluate(bundle: str | Path, data: str | Path, *, split: str | None = None, out: str | Path | None = None,
             backend: str = "auto", batch_size: int = 64,
             progress_factory: Callable[[str, int], Any] | None = None, explain: int = 0) -> EvaluationResult:
    """Evaluate ``bundle`` on ``data`` and write ``metrics.json``, plots and ``report.html``.

    Args:
        split: ``train``/``val``/``test``; default test, else val, else every image.
        out: report folder; default ``BUNDLE/report``.
        progress_factory: ``(description, total) -> context manager yielding advance(n)``.
        explain: heatmaps of this many confident mistakes in the report (classify: wrong labels; detect:
            false positives, one box each; 0: none).
    """
    import recog

    predictor = recog.load(bundle, backend=backend)
    if predictor.task.name != "detect":
        from recog.detect.formats import detect_format, looks_like_boxes

        if looks_like_boxes(data):
            from recog.errors import ConfigError

            raise ConfigError(f"{data} holds box annotations ({detect_format(data).upper()}), and {bundle} is a "
                              f"{predictor.task.name!r} model; box data evaluates a 'detect' model.",
                              hint="pass class folders or a CSV manifest, or a bundle trained with --task detect")
    out_dir = Path(out) if out is not None else Path(bundle) / "report"
    return predictor.task.evaluate(predictor, data, split=split, out=out_dir, batch_size=batch_size,
                                   progress_factory=progress_factory, **({"explain": explain} if explain else {}))


__all__ = ["EvaluationResult", "evaluate"]
