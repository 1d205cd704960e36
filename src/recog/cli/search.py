"""``recog search``: build, query, add to and delete from visual search indexes.

Results are JSON on stdout (the fields of the Python API and the service);
progress goes to stderr. Indexes live in ``--db``, else ``$RECOG_SEARCH_DB``,
else ``~/.recog/search.db``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, List, Optional

import typer

search_app = typer.Typer(name="search", no_args_is_help=True, add_completion=False,
                         help="Visual similarity search: indexes of image embeddings with metadata filters.")
index_app = typer.Typer(name="index", no_args_is_help=True, add_completion=False,
                        help="Create, list and drop search indexes.")
search_app.add_typer(index_app)

_DB = typer.Option(None, "--db", envvar="RECOG_SEARCH_DB", help="Index database (SQLite). [default: ~/.recog/search.db]")
_NAME = typer.Option(..., "--name", "-n", help="Index name.")
_MODEL = typer.Option(None, "--model", "-m", help="Preset or bundle folder that embeds the images. "
                                                 "[default: the index's model; efficientnet-lite0 for a new index]")
_META = typer.Option(None, "--meta", help="CSV with a path column (relative to FOLDER), an optional id column, "
                                         "and metadata columns.")


def _print(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def _indexes(db: Optional[Path]):
    from recog.search import Indexes

    return Indexes(db)


def _folder_command(create: bool, doc: str):
    """``index build`` (``create``) and ``add``: embed a folder's images into an index."""

    def command(
        folder: Path = typer.Argument(..., help="Folder of images (searched recursively)."),
        name: str = _NAME, model: Optional[str] = _MODEL, meta: Optional[Path] = _META, db: Optional[Path] = _DB,
        batch_size: int = typer.Option(32, "--batch-size", "-b", min=1),
    ) -> None:
        from recog.cli.progress import make_progress
        from recog.search import index_folder

        with _indexes(db) as indexes, make_progress() as progress:
            task = progress.add_task("indexing", total=None, stats="")
            report = index_folder(indexes, name, folder, model=model, meta_csv=meta, create=create,
                                  batch_size=batch_size, progress=lambda n: progress.advance(task, n),
                                  on_total=lambda total: progress.update(task, total=total))
            info = indexes.get(name).info()
        _print({**report.to_dict(), "items": info.items, "vectors": info.vectors, "kind": info.kind})
        if report.failures:
            raise typer.Exit(1)

    command.__doc__ = doc
    return command


index_app.command("build")(_folder_command(
    True, "Create an index from a folder (or resume one: images already in are skipped). Exits 1 if any image failed."))
search_app.command("add")(_folder_command(False, "Add images to an existing index (only the new vectors are indexed)."))


@index_app.command("list")
def list_cmd(db: Optional[Path] = _DB) -> None:
    """The indexes, their model, item and vector counts."""
    with _indexes(db) as indexes:
        _print({"indexes": [i.to_dict() for i in indexes.infos()]})


@index_app.command("drop")
def drop_cmd(name: str = _NAME, db: Optional[Path] = _DB,
             yes: bool = typer.Option(False, "--yes", help="Do not ask for confirmation.")) -> None:
    """Hard-delete an index and every vector in it."""
    with _indexes(db) as indexes:
        indexes.get(name)
        if not yes:
            typer.confirm(f"delete index {name!r} and all its vectors?", abort=True)
        n = indexes.drop(name)
    _print({"deleted": "index", "index": name, "vectors": n})


@search_app.command("delete")
def delete_cmd(name: str = _NAME, ids: List[str] = typer.Option(..., "--id", help="Item id (repeatable)."),
               db: Optional[Path] = _DB) -> None:
    """Hard-delete items (every vector of each) from an index."""
    with _indexes(db) as indexes:
        index = indexes.get(name)
        counts = {i: index.delete(i) for i in ids}
    _print({"deleted": "items", "index": name, "vectors": counts})


@search_app.command("query")
def query_cmd(
    images: List[Path] = typer.Argument(..., help="Query image(s)."),
    name: str = _NAME, k: int = typer.Option(10, "-k", "--top-k", min=1, max=1000, help="Items per query."),
    where: Optional[str] = typer.Option(None, "--where", "-w",
                                        help="Metadata filter, e.g. \"category = 'shoes' AND price < 50\"."),
    model: Optional[str] = _MODEL, db: Optional[Path] = _DB,
    exact: bool = typer.Option(False, "--exact", help="Score every vector even on an approximate index."),
) -> None:
    """The most similar items to each image, with their metadata."""
    from recog.search import query_images
    from recog.search.where import parse

    if where:
        parse(where)  # a syntax error before loading anything
    with _indexes(db) as indexes:
        index = indexes.get(name)
        results = query_images(index, [str(p) for p in images], model=model, k=k, where=where, exact=exact)
    _print({"results": [r.to_dict() for r in results]})


def register(app: typer.Typer) -> None:
    app.add_typer(search_app)
