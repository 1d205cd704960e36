"""``recog models``: list registered presets."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    @app.command("models")
    def models_cmd() -> None:
        """List registered model presets (any Hub id or local folder also works with --model)."""
        from rich.console import Console
        from rich.markup import escape
        from rich.table import Table

        from recog.models.registry import list_presets

        table = Table("preset", "input", "pretrained weights", "description")
        for p in list_presets():
            weights = p.hub_id or ("ImageNet-1k, installed (recog[pretrained])" if p.has_weights else "-- (from scratch)")
            table.add_row(p.name, f"{p.preprocessing.size[0]}px", escape(weights), escape(p.description))
        Console().print(table)
