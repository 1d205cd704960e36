"""``recog dedup``, ``recog cluster``, ``recog audit``: near-duplicates, clusters and a dataset audit report.

Each writes its files into ``--out`` and prints a JSON summary on stdout;
progress goes to stderr. Decoding goes through the safe loader: unreadable
files are listed, never fatal.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Optional

import typer

_MODEL = typer.Option("efficientnet-lite0", "--model", "-m", help="Preset or bundle folder that embeds the images.")


def _print(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def _progress():
    from recog.cli.progress import make_progress

    return make_progress()


def register(app: typer.Typer) -> None:
    @app.command("dedup")
    def dedup_cmd(
        folder: Path = typer.Argument(..., help="Folder of images (searched recursively; JPEGs under other "
                                                "extensions are found by their bytes)."),
        out: Path = typer.Option(..., "--out", "-o", help="Folder for duplicates.json, duplicates.csv, "
                                                         "contact_sheet.png."),
        method: str = typer.Option("embedding", "--method", help="embedding | phash | dhash | exact "
                                                                 "(exact copies are always grouped)."),
        threshold: Optional[float] = typer.Option(None, "--threshold", "-t",
                                                  help="Cosine similarity (embedding) or Hamming bits (hashes). "
                                                       "[default: chosen on the data, written in the output]"),
        model: str = _MODEL,
    ) -> None:
        """Find groups of exact and near-duplicate images."""
        from recog.search.dedup import METHODS, find_duplicates, write_outputs
        from recog.search.files import list_images

        if method not in METHODS:
            raise typer.BadParameter(f"--method must be one of {', '.join(METHODS)}, got {method!r}")
        paths = list_images(folder)
        with _progress() as progress:
            task = progress.add_task("reading images", total=len(paths), stats="")
            result = find_duplicates(paths, method=method, threshold=threshold, model_name=model, root=folder,
                                     progress=lambda n: progress.advance(task, n))
        written = write_outputs(result, out)
        doc = result.to_dict()
        _print({"images": doc["images"], "groups": doc["groups_found"], "redundant_files": doc["redundant_files"],
                "thresholds": doc["thresholds"], "failed": doc["failed"], "written": [str(p) for p in written]})

    @app.command("cluster")
    def cluster_cmd(
        folder: Path = typer.Argument(..., help="Folder of images (searched recursively)."),
        out: Path = typer.Option(..., "--out", "-o", help="Folder for clusters.csv, clusters.json, sheets/."),
        k: str = typer.Option("auto", "-k", help="Number of clusters, or auto (highest silhouette)."),
        algorithm: str = typer.Option("kmeans", "--algorithm", "-a", help="kmeans | agglomerative | hdbscan."),
        k_max: Optional[int] = typer.Option(None, "--k-max", min=2, help="Largest k tried by auto "
                                                                        "[default: min(30, 2 sqrt(n))]."),
        model: str = _MODEL,
    ) -> None:
        """Group images into clusters; one contact sheet per cluster."""
        from recog.search.cluster import cluster_paths, default_k_range, write_outputs
        from recog.search.files import list_images

        paths = list_images(folder)
        k_value: int | str = k if k == "auto" else _int(k)
        k_range = (2, k_max) if k_max else default_k_range(len(paths))
        with _progress() as progress:
            task = progress.add_task("embedding", total=len(paths), stats="")
            result = cluster_paths(paths, model_name=model, root=folder, k=k_value, algorithm=algorithm,
                                   k_range=k_range, progress=lambda n: progress.advance(task, n))
        written = write_outputs(result, out, root=folder)
        _print({**result.to_dict(), "written": [str(p) for p in written[:2]] + [str(out / "sheets")]})

    @app.command("audit")
    def audit_cmd(
        data: Path = typer.Argument(..., help="Labelled data: DIR/<class>/..., DIR/{train,val,test}/<class>/..., "
                                              "or a CSV manifest (path,label[,split])."),
        out: Path = typer.Option(..., "--out", "-o", help="Folder for report.html and audit.json."),
        threshold: Optional[float] = typer.Option(None, "--threshold", "-t",
                                                  help="Near-duplicate cosine similarity [default: chosen on the data]."),
        folds: int = typer.Option(5, "--folds", min=2, max=20, help="Cross-validation folds for label errors."),
        model: str = _MODEL,
    ) -> None:
        """Audit a dataset: corrupt files, duplicates and split leakage, label errors, outliers, imbalance."""
        from recog.search.audit import audit_dataset, write_report

        with _progress() as progress:
            task = progress.add_task("auditing", total=None, stats="")

            def on_stage(name: str, total: int) -> None:
                progress.update(task, description=name, total=total or None, completed=0)

            result = audit_dataset(data, model_name=model, near_threshold=threshold, folds=folds,
                                   progress=lambda n: progress.advance(task, n), on_stage=on_stage)
        written = write_report(result, out)
        _print({**result.summary(), "written": [str(p) for p in written]})


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise typer.BadParameter(f"-k must be a whole number or auto, got {text!r}") from None
