"""Anomaly detection internals for the ``anomaly`` task (:mod:`recog.tasks.anomaly`).

``network`` (backbone patch features + memory bank, a native bundle network),
``coreset`` (greedy k-center), ``fit`` (good images → bank + threshold),
``maps`` (heatmaps, regions, peaks), ``draw`` (overlays), ``evalset`` and
``evaluate`` (labelled test data → metrics and report). Importing this
package imports nothing heavy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from recog.models.bundle import BundleManifest


def bundle_threshold(manifest: "BundleManifest") -> float | None:
    """The threshold in ``manifest``'s calibration (score units), or None for a network saved unfitted."""
    value = manifest.calibration.get("threshold")
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0 else None
