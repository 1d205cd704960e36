"""``recog anomaly threshold``: show or adopt an anomaly bundle's pass/fail threshold."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="Anomaly (visual quality control) models.", no_args_is_help=True)
    app.add_typer(group, name="anomaly")

    @group.command("threshold")
    def threshold_cmd(
        bundle: Path = typer.Argument(..., help="Anomaly bundle folder (e.g. runs/parts/best)."),
        value: Optional[str] = typer.Argument(None, help="f1 (recorded by `recog evaluate` on labelled defects), "
                                                         "false_reject_rate (the fit's), or a score. "
                                                         "[default: show the threshold and the candidates]"),
    ) -> None:
        """Show the threshold and its recorded candidates, or adopt one (a new bundle version)."""
        from recog.models.bundle import read_manifest
        from recog.tasks.anomaly import set_threshold
        from recog.tasks.base import require_task

        if value is None:
            manifest = read_manifest(bundle)
            require_task(manifest, "anomaly", command="recog anomaly threshold")
        else:
            try:
                chosen: float | str = float(value)
            except ValueError:
                chosen = value
            manifest = set_threshold(bundle, chosen)
        typer.echo(json.dumps({"bundle": str(bundle), "version": manifest.version, "threshold": manifest.calibration,
                               "candidates": manifest.task_record.get("threshold_candidates") or {}}, indent=2))
