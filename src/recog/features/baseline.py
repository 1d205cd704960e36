"""``recog evaluate BUNDLE DATA --baseline BASELINE``: a baseline (e.g. ``hog-svm``) beside the model, same split.

Both bundles predict the same images of the split the evaluation used
(:func:`recog.monitor.compare.compare_bundles`: accuracy of each on the images
both could read, McNemar's exact test on the paired right/wrong answers,
per-group accuracy when the data has groups). The result goes to
``baseline.json`` and a "Baseline" section at the end of ``report.html`` (a
table and a bar chart of both accuracies with 95 % Wilson intervals). Any two
classifiers with the same labels work; the classical baseline of the issue is
``recog train DATA --model hog-svm``.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any, Callable

#: The file written beside ``report.html``.
BASELINE_JSON = "baseline.json"


def wilson(correct: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval of an accuracy ``correct / n``.

    Example:
        >>> [round(v, 3) for v in wilson(90, 100)]
        [0.826, 0.945]
    """
    if n <= 0:
        return 0.0, 1.0
    p = correct / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * ((p * (1 - p) / n + z * z / (4 * n * n)) ** 0.5) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def _chart_png(names: list[str], accuracies: list[float], n: int) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.6, 2.6), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(111)
    lows, highs = zip(*(wilson(round(a * n), n) for a in accuracies))
    err = [[a - lo for a, lo in zip(accuracies, lows)], [hi - a for a, hi in zip(accuracies, highs)]]
    ax.barh(range(len(names)), accuracies, xerr=err, color=["#8a94a6", "#3b6fd8"][: len(names)], capsize=4)
    ax.set_yticks(range(len(names)), names)
    ax.set_xlim(0, 1)
    ax.set_xlabel(f"accuracy, same {n} images (95% Wilson)")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _section(result: dict[str, Any]) -> str:
    from recog.metrics.html import data_uri, escape, kv_table, number

    base, model, m = result["champion"], result["challenger"], result["mcnemar"]
    names = [f"baseline: {base['source_model']}", f"model: {model['source_model']}"]
    chart = _chart_png(names, [base["accuracy"], model["accuracy"]], result["images"])
    rows = [(names[0], f"{number(base['accuracy'])} <span class=\"muted\">({escape(base['bundle'])})</span>"),
            (names[1], f"{number(model['accuracy'])} <span class=\"muted\">({escape(model['bundle'])})</span>"),
            ("difference (model - baseline)", f"{100 * result['difference']:+.2f} points"),
            ("McNemar's exact test", f"{m['only_challenger']} images only the model gets right, "
                                     f"{m['only_champion']} only the baseline; p = {m['p_value']:.3g}")]
    rows += [(f"group {g}", f"{number(v['champion'])} → {number(v['challenger'])} ({v['images']} images)")
             for g, v in result["groups"].items()]
    return (f"<h2>Baseline</h2><p class=\"muted\">Both models on the same {result['images']:,} images "
            f"({escape(result['split'])} split).</p>{kv_table(rows)}"
            f'<figure><img src="{data_uri(chart, "image/png")}" alt="baseline.png">'
            f"<figcaption>Accuracy of the baseline and the model on the same images.</figcaption></figure>")


def check_baseline(bundle: str | Path, baseline: str | Path) -> None:
    """Refuse, before any image is read, a baseline that is not a classifier with the model's labels.

    Raises:
        ConfigError: either bundle is not a ``classify`` bundle, or the label sets differ (both named).
    """
    from recog.models.bundle import read_manifest
    from recog.monitor.compare import require_same_labels
    from recog.tasks import require_task

    manifests = [read_manifest(p) for p in (bundle, baseline)]
    for m in manifests:
        require_task(m, "classify", command="recog evaluate --baseline")
    require_same_labels(*manifests)


def add_baseline(bundle: str | Path, baseline: str | Path, data: str | Path, *, split: str | None, report: Path,
                 batch_size: int = 64, progress_factory: Callable[[str, int], Any] | None = None) -> dict[str, Any]:
    """Compare ``baseline`` with ``bundle`` on ``data``'s ``split``; write ``baseline.json`` beside ``report``
    (``report.html``) and append the "Baseline" section to it. Returns the comparison (``champion`` is the
    baseline, ``challenger`` the model).

    Raises:
        ConfigError: either bundle is not a classifier, or their labels differ (both named).
    """
    from recog.models.bundle import read_manifest
    from recog.monitor.compare import compare_bundles

    result = compare_bundles(baseline, bundle, data, split=split, batch_size=batch_size,
                             progress_factory=progress_factory)
    for key, path in (("champion", baseline), ("challenger", bundle)):
        result[key]["source_model"] = read_manifest(path, verify=False).source_model or Path(path).name
    (report.parent / BASELINE_JSON).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    page = report.read_text(encoding="utf-8")
    report.write_text(page.replace("</body></html>", _section(result) + "\n</body></html>", 1), encoding="utf-8")
    return result


def summary_line(result: dict[str, Any]) -> str:
    """One line for the terminal: both accuracies, the difference and McNemar's p."""
    base, model = result["champion"], result["challenger"]
    return (f"baseline {base['source_model']}: accuracy {base['accuracy']:.4f} vs {model['accuracy']:.4f} "
            f"({100 * result['difference']:+.2f} points, McNemar p = {result['mcnemar']['p_value']:.3g}, "
            f"{result['images']} images)")
