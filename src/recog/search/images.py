"""Images in, search indexes out: embed folders (with an optional metadata CSV) into an index, query with images.

The embeddings come from any preset or trained bundle through
:meth:`recog.runtime.predictor.Predictor.embedder` (L2-normalised pooled
features); the model's identity (:class:`ModelRef`: weights sha256, input
size, dimension) is recorded in the index and checked on every add and query.

Example:
    >>> from recog.search import Indexes, index_folder, query_images
    >>> with Indexes() as indexes:                                                # doctest: +SKIP
    ...     report = index_folder(indexes, "shop", "catalogue/", model="efficientnet-lite0",
    ...                           meta_csv="items.csv")
    ...     query_images(indexes.get("shop"), ["photo.jpg"], k=10, where="category = 'shoes'")
"""

from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from recog.errors import DatasetError, InvalidInputError
from recog.io.digest import sha256_file
from recog.search.types import ModelRef, SearchHits

if TYPE_CHECKING:
    from recog.runtime.predictor import Predictor
    from recog.search.where import Filter
    from recog.search.index import Indexes, SearchIndex

Progress = Callable[[int], None]
PATH_COLUMNS = ("path", "file", "filename", "image")
ID_COLUMNS = ("id", "sku", "item_id")


def model_ref(model: "Predictor", name: str) -> ModelRef:
    """The identity of ``model``'s embeddings: weights sha256, input size and dimension."""
    files = model.manifest.files
    weights = files.get("model.safetensors") or hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()
    h, w = model.manifest.preprocessing.size
    probe = model.embed(np.full((h, w, 3), 127, np.uint8))
    return ModelRef(name=str(name), weights=weights, dim=int(probe.shape[-1]), size=(int(h), int(w)))


def load_embedder(name: str) -> tuple["Predictor", ModelRef]:
    """A preset or bundle folder as an embedder, and its :class:`ModelRef`."""
    model = embedder(name)
    if Path(name).exists():  # a bundle folder: recorded absolute, so queries from elsewhere find it
        name = str(Path(name).resolve())
    return model, model_ref(model, name)


def embedder(name: str) -> "Predictor":
    """A preset, bundle folder or ``hog`` (:mod:`recog.features.embedder`) loaded straight as an embedder.

    The ``embed`` task, torch backend.

    Same as ``recog.load(name).embedder()`` without building the classifier first (half the load time).
    """
    from recog.features.embedder import feature_bundle, feature_embedder_size
    from recog.models.bundle import read_manifest
    from recog.models.zoo import is_ready_preset, preset_bundle
    from recog.runtime.backends import TorchBackend
    from recog.runtime.predictor import Predictor
    from recog.tasks import get_task

    if Path(name).exists():
        path = name
    elif feature_embedder_size(name) is not None:  # hog, hog-128: classical features, no weights
        path = feature_bundle(name)
    else:
        path = preset_bundle(name) if is_ready_preset(name) else name
    manifest = read_manifest(path)
    task = get_task("embed")
    return Predictor(manifest, TorchBackend(manifest, task=task), task=task)


def _typed(value: str) -> Any:
    """CSV text -> int, float, bool or the text itself (so ``price < 50`` compares numbers)."""
    text = value.strip()
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    for cast in (int, float):
        try:
            out = cast(text)
        except ValueError:
            continue
        if cast is float and out != out:  # "nan" stays text
            return text
        return out
    return value


def read_meta_csv(path: Path, root: Path) -> dict[str, tuple[str | None, dict[str, Any]]]:
    """``items.csv`` -> {image path relative to ``root``: (item id or None, fields)}.

    One column names the image (``path``, ``file``, ``filename`` or ``image``;
    relative to the indexed folder or absolute); an optional ``id`` (or ``sku``,
    ``item_id``) column names the item; every other column is a metadata field,
    numbers and true/false typed as such.

    Raises:
        DatasetError: no path column, or a row without a path.
    """
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        cols = [c.strip() for c in reader.fieldnames or []]
        lower = {c.lower(): c for c in cols}
        path_col = next((lower[c] for c in PATH_COLUMNS if c in lower), None)
        if path_col is None:
            raise DatasetError(f"{path.name}: no image column; expected one of {', '.join(PATH_COLUMNS)}, "
                               f"got {', '.join(cols) or 'no header'}.", hint="name the image column 'path'")
        id_col = next((lower[c] for c in ID_COLUMNS if c in lower), None)
        out: dict[str, tuple[str | None, dict[str, Any]]] = {}
        for line, raw in enumerate(reader, start=2):
            row = {(k or "").strip(): (v or "") for k, v in raw.items()}
            rel = row.get(path_col, "").strip()
            if not rel:
                raise DatasetError(f"{path.name} line {line}: empty {path_col!r}.")
            p = Path(rel)
            if p.is_absolute():
                try:
                    rel = p.resolve().relative_to(root.resolve()).as_posix()
                except ValueError:
                    rel = p.as_posix()
            else:
                rel = p.as_posix()
            item = row.get(id_col, "").strip() if id_col else None
            fields = {k: _typed(v) for k, v in row.items() if k not in (path_col, id_col) and k and v != ""}
            out[rel] = (item or None, fields)
    return out


@dataclass
class IndexReport:
    """What :func:`index_folder` did."""

    index: str
    added: int = 0
    skipped: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "added": self.added, "skipped_existing": self.skipped,
                "failed": [{"source": s, "reason": r} for s, r in self.failures]}


def index_images(index: "SearchIndex", model: "Predictor", ref: ModelRef, paths: Sequence[Path], root: Path, *,
                 meta: dict[str, tuple[str | None, dict[str, Any]]] | None = None, batch_size: int = 32,
                 progress: Progress | None = None) -> IndexReport:
    """Embed and add images in batches, each batch one committed transaction.

    An interrupted run loses at most the batch in flight; a rerun skips the
    ``(item, sha256)`` pairs already stored without embedding them again (and,
    for images whose item is not named in ``meta``, any image already stored).
    Item ids come from ``meta`` (the CSV's id column), else the path relative to ``root``.
    """
    meta = meta or {}
    report = IndexReport(index.name)
    existing = index.existing_keys()
    stored = {key for _, key in existing}
    todo: list[tuple[Path, str, str, str, dict[str, Any]]] = []
    for p in paths:
        rel = p.resolve().relative_to(root.resolve()).as_posix() if _inside(p, root) else p.as_posix()
        given, fields = meta.get(rel, (None, {}))
        item = given or rel
        try:
            digest = sha256_file(p)
        except OSError as exc:
            report.failures.append((rel, f"cannot read: {exc.strerror or exc}"))
            if progress:
                progress(1)
            continue
        # an image already stored is skipped: under the same item, or under any item when none was named
        if (item, digest) in existing or (given is None and digest in stored):
            report.skipped += 1
            if progress:
                progress(1)
            continue
        existing.add((item, digest))
        stored.add(digest)
        todo.append((p, rel, item, digest, fields))
    for start in range(0, len(todo), batch_size):
        batch = todo[start:start + batch_size]
        raw, kept, failures = model.outputs_many([b[0] for b in batch], batch_size=batch_size)
        report.failures += [(batch[i][1], str(exc)) for i, exc in failures]
        if kept:
            rows = [batch[i] for i in kept]
            ids = index.add([r[2] for r in rows], raw, model=ref, sources=[r[1] for r in rows],
                            fields=[r[4] for r in rows], keys=[r[3] for r in rows],
                            files=[str(r[0].resolve()) for r in rows])
            report.added += sum(v is not None for v in ids)
            report.skipped += sum(v is None for v in ids)
        if progress:
            progress(len(batch))
    return report


def _inside(p: Path, root: Path) -> bool:
    try:
        p.resolve().relative_to(root.resolve())
    except ValueError:
        return False
    return True


def index_folder(indexes: "Indexes", name: str, folder: str | Path, *, model: str | None = None,
                 meta_csv: str | Path | None = None, create: bool = True, batch_size: int = 32,
                 progress: Progress | None = None, on_total: Callable[[int], None] | None = None) -> IndexReport:
    """Index every image under ``folder`` into ``name`` (created with ``model`` when missing).

    ``model`` defaults to the index's own model, or ``efficientnet-lite0`` for a new index.

    Raises:
        ConflictError: ``model`` is not the model the index was built with (both are named).
    """
    from recog.errors import NotFoundError

    from recog.search.files import list_images

    root = Path(folder)
    paths = list_images(root)
    meta = read_meta_csv(Path(meta_csv), root) if meta_csv else None
    try:
        index = indexes.get(name)
    except NotFoundError:
        if not create:
            raise
        index = None
    model_name = model or (index.model.name if index is not None else "efficientnet-lite0")
    embedder, ref = load_embedder(model_name)
    if index is None:
        index = indexes.create(name, model=ref)
    elif not index.model.same_model(ref):
        from recog.search.index import model_mismatch

        raise model_mismatch(name, index.model, ref)
    if on_total:
        on_total(len(paths))
    return index_images(index, embedder, ref, paths, root, meta=meta, batch_size=batch_size, progress=progress)


def query_images(index: "SearchIndex", images: Sequence[Any], *, model: str | None = None,
                 embedder: "tuple[Predictor, ModelRef] | None" = None, k: int = 10, where: "str | Filter | None" = None,
                 exact: bool = False, sources: Sequence[str | None] | None = None) -> list[SearchHits]:
    """Search with images (paths, bytes, arrays): embedded by the index's model (or ``model``, checked).

    Raises:
        ConflictError: ``model`` differs from the index's model (both named).
        ImageError: an image the safe loader refuses.
    """
    from recog.search.where import parse

    flt = parse(where) if isinstance(where, str) and where else where or None  # syntax errors before embedding
    if embedder is None:
        embedder = load_embedder(model or index.model.name)
    predictor, ref = embedder
    if not index.model.same_model(ref):
        from recog.search.index import model_mismatch

        raise model_mismatch(index.name, index.model, ref)
    if not images:
        raise InvalidInputError("give at least one query image.")
    vectors = predictor.embed(list(images))
    names = list(sources) if sources is not None else [str(i) if isinstance(i, (str, Path)) else None for i in images]
    return index.query(vectors, model=ref, k=k, where=flt, exact=exact, sources=names)
