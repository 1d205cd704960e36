"""``recog explain``: heatmaps of why a classifier said what it said, for one image or a folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer


def register(app: typer.Typer) -> None:
    @app.command("explain")
    def explain_cmd(
        bundle: str = typer.Argument(..., help="Model bundle folder (runs/NAME/best) or a ready preset."),
        images: List[str] = typer.Argument(..., help="Images, folders or globs."),
        method: str = typer.Option("gradcam", "--method", "-m", help="gradcam | ig | occlusion"),
        target: Optional[str] = typer.Option(None, "--target", "-t",
                                             help="Label to explain. [default: the top prediction] Detect "
                                                  "models: the best box of this class."),
        box: Optional[int] = typer.Option(None, "--box", "-b", min=0,
                                          help="Detect models: the box to explain, its index in the boxes "
                                               "`recog predict` prints (0 = the top box). [default: the top box]"),
        min_score: Optional[float] = typer.Option(None, "--min-score", min=0.0, max=1.0,
                                                  help="Detect models: lowest box score listed, as in "
                                                       "`recog predict`. [default: 0.3]"),
        out: Optional[Path] = typer.Option(None, "--out", "-o",
                                           help="Overlay PNG for one image (a .npy map and a .json summary go "
                                                "beside it); a folder for several. [default: IMAGE.explain.png "
                                                "next to one image; ./explain for several]"),
        device: str = typer.Option("cpu", help="torch device (cpu, cuda)."),
    ) -> None:
        """Explain predictions: overlay PNG at the original size, raw map (.npy) and JSON (method, target,
        score, peak in original pixels). Grad-CAM needs a CNN; ig and occlusion work for any classifier.
        Detect models explain one box's class score (--box, else the top box; the overlay outlines it and
        the JSON says whether the peak is inside it). Exits 1 when any image could not be read."""
        from recog.cli.inputs import expand_inputs
        from recog.cli.progress import bar, console
        from recog.errors import ConfigError
        from recog.explain import Explainer, explain_many
        from recog.explain.attribution import check_method

        check_method(method)
        paths, missing = expand_inputs(images)
        for item, reason in missing:
            console.print(f"[yellow]skipped[/] {item}: {reason}", highlight=False)
        if not paths:
            raise typer.Exit(1)
        explainer = Explainer(bundle, device=device)
        single = len(paths) == 1 and Path(images[0]).is_file()
        if box is not None and not single:
            raise ConfigError(f"--box picks a box of one image; {len(paths)} images were given.",
                              hint="explain one image with --box, or a folder without it (the top box of each)")
        if single:
            png = out or paths[0].with_name(f"{paths[0].stem}.explain.png")
            e = explainer.explain(paths[0], method=method, target=target, box=box, min_score=min_score)
            e.save(png)
            typer.echo(json.dumps({**e.to_dict(), "overlay": str(png)}))
            raise typer.Exit(1 if missing else 0)
        root = Path(images[0]) if len(images) == 1 and Path(images[0]).is_dir() else None
        out_dir = out or Path("explain")
        with bar(f"explaining ({method})", len(paths)) as advance:
            rows = explain_many(explainer, paths, out_dir, method=method, target=target, min_score=min_score,
                                root=root, progress=advance)
        (out_dir / "explanations.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        failed = [r for r in rows if "error" in r]
        for r in failed:
            console.print(f"[yellow]skipped[/] {r['source']}: {r['error']}", highlight=False)
        typer.echo(f"{len(rows) - len(failed)} explained, {len(failed)} skipped: {out_dir}/ "
                   f"(summary: {out_dir / 'explanations.jsonl'})")
        raise typer.Exit(1 if failed or missing else 0)
