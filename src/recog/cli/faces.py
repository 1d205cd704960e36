"""``recog faces``: detect, verify, enroll, identify, list, delete, export, import, evaluate.

Results are printed as JSON on stdout (the same fields as the Python API and
the service); progress and warnings go to stderr. The store is ``--db``, else
``$RECOG_FACES_DB``, else ``~/.recog/faces.db``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Optional

import typer

faces_app = typer.Typer(name="faces", no_args_is_help=True, add_completion=False,
                        help="Face detection, verification and recognition against persistent collections.")

_DB = typer.Option(None, "--db", envvar="RECOG_FACES_DB", help="Face store (SQLite). [default: ~/.recog/faces.db]")
_COLLECTION = typer.Option(..., "--collection", "-c", help="Collection name.")
_DETECTOR = typer.Option("hog", "--detector", help="hog (fast, frontal) | cnn (more poses, ~15x slower).")
_UPSAMPLE = typer.Option(1, "--upsample", min=0, max=4,
                         help="Times to double the image before detecting (1 finds faces >= ~40 px).")
_MIN_SIZE = typer.Option(0, "--min-size", min=0, help="Drop faces smaller than this many pixels.")
_MAX_FACES = typer.Option(None, "--max-faces", min=1, help="Keep only the largest N faces.")


def _print(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def _stderr():
    from rich.console import Console

    return Console(stderr=True)


def _analyzer(detector: str, upsample: int, min_size: int, max_faces: Optional[int], min_score: float = 0.0):
    from recog.faces.analyzer import DetectOptions, FaceAnalyzer

    return FaceAnalyzer(DetectOptions(detector=detector, upsample=upsample, min_face_size=min_size,
                                      max_faces=max_faces, min_score=min_score))


def _recognizer(db: Optional[Path], analyzer=None):
    from recog.faces.recognizer import FaceRecognizer

    return FaceRecognizer(db, analyzer=analyzer)


@faces_app.command("detect")
def detect_cmd(
    image: Path = typer.Argument(..., help="Image file."),
    draw: Optional[Path] = typer.Option(None, "--draw", help="Write a copy with boxes and landmarks here."),
    detector: str = _DETECTOR, upsample: int = _UPSAMPLE, min_size: int = _MIN_SIZE,
    max_faces: Optional[int] = _MAX_FACES,
    min_score: float = typer.Option(0.0, "--min-score", help="Drop detections scoring at or below this "
                                    "(dlib's own threshold is 0; weak false detections score near it)."),
) -> None:
    """Find faces: boxes (x1, y1, x2, y2) in original-image pixels, 5 landmarks, score."""
    from recog.faces.analyzer import draw_faces

    dets = _analyzer(detector, upsample, min_size, max_faces, min_score).detect(image)
    if draw is not None:
        draw_faces(image, dets.faces).save(draw)
    _print(dets.to_dict())


@faces_app.command("verify")
def verify_cmd(
    image1: Path = typer.Argument(...), image2: Path = typer.Argument(...),
    threshold: Optional[float] = typer.Option(None, "--threshold", "-t",
                                              help="Euclidean distance at or below which faces match. [default: 0.6, "
                                                   "or the collection's]"),
    collection: Optional[str] = typer.Option(None, "--collection", "-c", help="Use this collection's threshold."),
    db: Optional[Path] = _DB, detector: str = _DETECTOR, upsample: int = _UPSAMPLE,
) -> None:
    """Are the (largest) faces of two images the same person? Prints distance, threshold and decision."""
    analyzer = _analyzer(detector, upsample, 0, None)
    if collection is not None and threshold is None:
        with _recognizer(db, analyzer) as fr:
            result = fr.verify(image1, image2, collection=collection)
    else:  # no store needed
        from recog.faces.dlib_models import DEFAULT_THRESHOLD

        result = analyzer.verify(image1, image2, threshold=DEFAULT_THRESHOLD if threshold is None else threshold)
    _print(result.to_dict())


@faces_app.command("enroll")
def enroll_cmd(
    path: Path = typer.Argument(..., help="A folder with one sub-folder per person, or one image (with --person)."),
    collection: str = _COLLECTION,
    person: Optional[str] = typer.Option(None, "--person", "-p", help="Who the image shows (single-image enroll)."),
    threshold: Optional[float] = typer.Option(None, "--threshold", help="Threshold of a new collection. [default: 0.6]"),
    store_images: bool = typer.Option(False, "--store-images",
                                      help="Keep aligned face crops in a new collection (off: only embeddings)."),
    strict: bool = typer.Option(False, "--strict", help="Exit 1 if any image was skipped."),
    db: Optional[Path] = _DB, detector: str = _DETECTOR, upsample: int = _UPSAMPLE,
) -> None:
    """Store the face of each image for its person. Images with no face or several are reported, not guessed."""
    from recog.cli.progress import bar
    from recog.faces.recognizer import enrollment_items

    if person is None and not path.is_dir():
        raise typer.BadParameter("enrolling one image needs --person NAME (a folder uses its sub-folder names)")
    with _recognizer(db, _analyzer(detector, upsample, 0, None)) as fr:
        info, created = fr.ensure_collection(collection, threshold=threshold, store_images=store_images)
        if not created and threshold is not None and threshold != info.threshold:
            _stderr().print(f"[yellow]note[/] collection {collection!r} exists with threshold "
                            f"{info.threshold}; --threshold applies to new collections "
                            f"(change it with `recog faces update -c {collection} --threshold {threshold}`)")
        items = enrollment_items(path, person)
        with bar(f"enrolling into {collection}", len(items)) as advance:
            report = fr.enroll_many(items, collection=collection, on_item=lambda *_: advance())
    err = _stderr()
    for s in report.skipped:
        err.print(f"[yellow]skipped[/] {s.source} ({s.code}): {s.detail}", highlight=False)
    err.print(f"enrolled {len(report.enrolled)} face(s) of {len(report.people)} people into {collection!r}; "
              f"skipped {len(report.skipped)}")
    _print(report.to_dict())
    if strict and report.skipped:
        raise typer.Exit(1)


@faces_app.command("identify")
def identify_cmd(
    image: Path = typer.Argument(...), collection: str = _COLLECTION,
    top_k: int = typer.Option(1, "--top-k", "-k", min=1, help="People to list per face."),
    threshold: Optional[float] = typer.Option(None, "--threshold", "-t", help="Override the collection's threshold."),
    draw: Optional[Path] = typer.Option(None, "--draw", help="Write a copy labelled with names here."),
    db: Optional[Path] = _DB, detector: str = _DETECTOR, upsample: int = _UPSAMPLE, min_size: int = _MIN_SIZE,
    max_faces: Optional[int] = _MAX_FACES,
) -> None:
    """Who is in the image: the top-k enrolled people per face within the threshold, or unknown."""
    with _recognizer(db, _analyzer(detector, upsample, min_size, max_faces)) as fr:
        result = fr.identify(image, collection=collection, top_k=top_k, threshold=threshold)
    if draw is not None:
        from recog.faces.analyzer import draw_faces

        draw_faces(image, [f.face for f in result.faces],
                   [f"{f.person} {f.matches[0].distance:.2f}" if f.person else "unknown" for f in result.faces]
                   ).save(draw)
    _print(result.to_dict())


@faces_app.command("list")
def list_cmd(collection: Optional[str] = typer.Option(None, "--collection", "-c",
                                                       help="List this collection's people (else all collections)."),
             db: Optional[Path] = _DB) -> None:
    """List collections, or the people (and face ids) of one collection."""
    with _recognizer(db) as fr:
        if collection is None:
            _print({"collections": [c.to_dict() for c in fr.collections()]})
        else:
            _print({"collection": fr.collection(collection).to_dict(),
                    "people": [p.to_dict() for p in fr.people(collection)]})


@faces_app.command("create")
def create_cmd(collection: str = _COLLECTION,
               threshold: Optional[float] = typer.Option(None, "--threshold", help="[default: 0.6]"),
               store_images: bool = typer.Option(False, "--store-images", help="Keep aligned face crops."),
               db: Optional[Path] = _DB) -> None:
    """Create an empty collection with its own threshold (enroll creates one with defaults)."""
    with _recognizer(db) as fr:
        kwargs = {} if threshold is None else {"threshold": threshold}
        _print(fr.create_collection(collection, store_images=store_images, **kwargs).to_dict())


@faces_app.command("update")
def update_cmd(collection: str = _COLLECTION,
               threshold: float = typer.Option(..., "--threshold", help="New verification threshold."),
               db: Optional[Path] = _DB) -> None:
    """Change a collection's threshold."""
    with _recognizer(db) as fr:
        _print(fr.update_collection(collection, threshold=threshold).to_dict())


@faces_app.command("delete")
def delete_cmd(collection: str = _COLLECTION,
               person: Optional[str] = typer.Option(None, "--person", "-p", help="Delete this person and their faces."),
               face: Optional[int] = typer.Option(None, "--face", help="Delete one face by id."),
               yes: bool = typer.Option(False, "--yes", "-y", help="Delete a whole collection without asking."),
               db: Optional[Path] = _DB) -> None:
    """Hard-delete a face, a person or (with neither) a whole collection. Rows and vectors are gone."""
    if person is not None and face is not None:
        raise typer.BadParameter("give --person or --face, not both")
    with _recognizer(db) as fr:
        if person is not None:
            _print({"deleted": "person", "collection": collection, "person": person,
                    "faces": fr.delete_person(collection, person)})
        elif face is not None:
            _print({"deleted": "face", "collection": collection, "face_id": face,
                    "person": fr.delete_face(collection, face)})
        else:
            info = fr.collection(collection)
            if not yes and not typer.confirm(f"Delete collection {collection!r} with {info.people} people and "
                                             f"{info.faces} faces?", err=True):
                raise typer.Exit(1)
            _print({"deleted": "collection", "collection": collection, "faces": fr.delete_collection(collection)})


@faces_app.command("export")
def export_cmd(out: Path = typer.Argument(..., help="JSON file to write."), collection: str = _COLLECTION,
               db: Optional[Path] = _DB) -> None:
    """Write a collection (people, embeddings, and crops if stored) to a JSON file."""
    from recog.faces.transfer import save_export

    with _recognizer(db) as fr:
        doc = fr.export_collection(collection)
    save_export(doc, out)
    _print({"exported": collection, "file": str(out), "people": len(doc["people"]),
            "faces": sum(len(p["faces"]) for p in doc["people"])})


@faces_app.command("import")
def import_cmd(file: Path = typer.Argument(..., help="A file written by `recog faces export`."),
               as_name: Optional[str] = typer.Option(None, "--as", help="Import under this collection name."),
               db: Optional[Path] = _DB) -> None:
    """Create a collection from an export file."""
    from recog.faces.transfer import load_export

    doc = load_export(file)
    with _recognizer(db) as fr:
        _print(fr.import_collection(doc, name=as_name).to_dict())


@faces_app.command("evaluate")
def evaluate_cmd(pairs: Path = typer.Argument(..., help="CSV: image1,image2,same[,group]."),
                 threshold: float = typer.Option(0.6, "--threshold", "-t", help="Operating point."),
                 out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write the full JSON report here."),
                 plot: Optional[Path] = typer.Option(None, "--plot", help="Write the ROC curve (PNG) here."),
                 detector: str = _DETECTOR, upsample: int = _UPSAMPLE) -> None:
    """Verification accuracy, FMR/FNMR, threshold sweep (ROC) and per-group gaps from a pairs CSV."""
    from recog.faces.evaluate import evaluate_pairs, read_pairs

    rows, _ = read_pairs(pairs)
    n_images = len({p for r in rows for p in r[:2]})
    from recog.cli.progress import bar

    with bar("embedding", n_images) as advance:
        report = evaluate_pairs(pairs, _analyzer(detector, upsample, 0, None), threshold=threshold,
                                on_image=lambda *_: advance())
    _show_report(report)
    doc = report.to_dict()
    if out is not None:
        out.write_text(json.dumps(doc, indent=2))
    if plot is not None:
        _plot_roc(report, plot)
    summary = {k: v for k, v in doc.items() if k not in ("roc", "sweep")}
    summary["roc"] = {k: v for k, v in doc["roc"].items() if k != "curve"}
    _print(summary)


def _fmt(v: Any) -> str:
    return "-" if v is None else f"{v:.4f}"


def _show_report(report) -> None:
    from rich.table import Table

    err = _stderr()
    o = report.overall
    err.print(f"{o['pairs']} pairs ({o['genuine']} genuine, {o['impostor']} impostor) at threshold "
              f"{o['threshold']}: accuracy {_fmt(o['accuracy'])}, FMR {_fmt(o['fmr'])}, FNMR {_fmt(o['fnmr'])}, "
              f"AUC {_fmt(o['auc'])}, EER {_fmt(o['eer'])}")
    sweep = Table("threshold", "accuracy", "FMR", "FNMR", title="threshold sweep")
    for row in report.sweep:
        sweep.add_row(f"{row['threshold']:.2f}", _fmt(row["accuracy"]), _fmt(row["fmr"]), _fmt(row["fnmr"]))
    err.print(sweep)
    if report.groups:
        table = Table("group", "pairs", "accuracy", "FMR", "FNMR", title="per group")
        lg = report.largest_gap or {}
        for name, g in report.groups.items():
            cells = {m: _fmt(g[m]) for m in ("accuracy", "fmr", "fnmr")}
            if lg and name in (lg.get("worst_group"), lg.get("best_group")):
                cells[lg["metric"]] = f"[bold red]{cells[lg['metric']]}[/]"
            table.add_row(name or "(none)", str(g["pairs"]), cells["accuracy"], cells["fmr"], cells["fnmr"])
        err.print(table)
        if lg:
            err.print(f"[bold red]largest gap[/]: {lg['metric'].upper()} {lg['gap']:.4f} between "
                      f"{lg['worst_group']!r} ({_fmt(lg['worst'])}) and {lg['best_group']!r} ({_fmt(lg['best'])})")
    for f in report.failed_images:
        err.print(f"[yellow]no embedding[/] {f['image']} ({f['code']})", highlight=False)


def _plot_roc(report, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 4))
    curve = report.roc["curve"]
    if curve:
        ax.plot([c["fmr"] for c in curve], [1 - c["fnmr"] for c in curve], label="overall")
    ax.set_xlabel("false match rate")
    ax.set_ylabel("1 - false non-match rate")
    ax.set_title(f"ROC (AUC {_fmt(report.roc['auc'])})")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def register(app: typer.Typer) -> None:
    app.add_typer(faces_app, name="faces")
