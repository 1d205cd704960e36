"""Visual search routes: query an index with an image, add and delete items, list indexes.

Routes (all under ``/v1``)::

    GET    /indexes                                            -> {"indexes": [...]}
    POST   /indexes/{name}:query       ?k&where&exact          images -> {"results": [SearchHits, ...]}
    POST   /indexes/{name}/items       ?id&metadata (write key) images of one item -> added (201)
    DELETE /indexes/{name}/items/{id}                (write key) -> hard delete

Images come as for ``:predict`` (multipart, raw bytes or base64 JSON, never
URLs; :func:`recog.serve.inputs.read_images`); each image of a query is one
query. The key is checked (router dependency) and the index looked up before
the body is read; an unknown index is a 404 naming the indexes that exist. A
``where`` filter is parsed before the body too (400 pointing at the error).
Write routes need an API key even on loopback (:func:`recog.serve.deps.require_write_key`).

Work is bounded like the other domains: every image is first decoded once in
the service's decode processes under ``max_pixels`` (:func:`recog.serve.decoding.check_image`),
then embedded and searched on this router's two worker threads, under the
request deadline (504) and one :class:`~recog.serve.deps.Admission` of
``max_queue`` images per app (429 with Retry-After past it). An index's model
loads at its first use; a first request whose deadline passes while it loads
gets 503 with Retry-After.

The indexes file is ``settings.search_db`` when the settings have it, else
``$RECOG_SEARCH_DB``, else ``~/.recog/search.db``; it opens at the first search
request and closes (saving the approximate indexes' caches) when the app's lifespan ends.
Answers never carry server paths: a bundle folder is shown by its last component.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path as FsPath
from typing import Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse, Response

from recog.errors import BadRequestError, NotFoundError, NotReadyError
from recog.serve.decoding import check_image
from recog.serve.deps import (Admission, Deadline, load_once, request_deadline, require_key, require_write_key,
                              state_of)
from recog.serve.inputs import IMAGES_BODY, decode_uploads, read_images
from recog.serve.problems import problem_responses

#: Largest ``metadata`` query parameter (JSON text) an add may carry.
MAX_METADATA_CHARS = 16_384


class SearchService:
    """One app's indexes file, loaded embedders, worker threads and admission."""

    def __init__(self, settings: Any) -> None:
        from recog.search import Indexes, default_db

        self.settings = settings
        self.indexes = Indexes(getattr(settings, "search_db", None) or default_db())
        self.executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="recog-search")
        self.seconds_per_image = 0.2
        self.admission = Admission("visual search", settings.max_queue,
                                   retry_after=lambda admitted: max(1.0, admitted * self.seconds_per_image / 2))
        self._embedders: dict[str, asyncio.Task] = {}

    def close(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)
        self.indexes.close()

    def _load(self, name: str) -> Any:
        from recog.search import load_embedder

        predictor, ref = load_embedder(name)
        predictor.max_pixels = self.settings.max_pixels
        return predictor, ref

    async def embedder(self, index: Any, deadline: Deadline) -> Any:
        """The index's model (loaded once per app, in a thread) and its :class:`ModelRef`."""
        name = index.model.name
        return await load_once(self._embedders, name, lambda: self._load(name), deadline,
                               f"the model of index {index.name!r}")

    async def run(self, deadline: Deadline, n_images: int, fn: Any, doing: str) -> Any:
        with self.admission.slots(n_images):
            return await deadline.run(self.executor, fn, doing, hint="send fewer or smaller images")


class _Holder:
    """An app's search service, opened at its first request (an app that never searches creates no file)."""

    def __init__(self, settings: Any) -> None:
        self.settings = settings
        self.service: SearchService | None = None
        self.lock = threading.Lock()
        self.closed = False

    def get(self) -> SearchService:
        with self.lock:
            if self.closed:
                raise NotReadyError("visual search is closed: the service is stopping.", hint="retry in a moment")
            if self.service is None:
                self.service = SearchService(self.settings)
            return self.service

    def close(self) -> None:
        with self.lock:
            self.closed = True
            if self.service is not None:
                self.service.close()


_HOLDERS: "weakref.WeakKeyDictionary[Any, _Holder]" = weakref.WeakKeyDictionary()


@asynccontextmanager
async def lifespan(app: Any):
    st = app.state.recog
    _HOLDERS[st] = _Holder(st.settings)
    try:
        yield
    finally:
        holder = _HOLDERS.pop(st, None)
        if holder is not None:
            await asyncio.to_thread(holder.close)


def search_of(request: Request) -> SearchService:
    """Dependency: the app's :class:`SearchService` (its file opens at the first search request).

    Raises:
        NotReadyError: the app's lifespan is not running.
    """
    holder = _HOLDERS.get(state_of(request))
    if holder is None:
        raise NotReadyError("visual search is not open: the service is starting or stopping.", hint="retry in a moment")
    return holder.get()


router = APIRouter(prefix="/v1", tags=["search"], dependencies=[Depends(require_key)], lifespan=lifespan,
                   responses=problem_responses(400, 401, 403, 404, 409, 413, 415, 422, 429, 503, 504))

IndexName = Path(..., description="index name")


def _public(info: dict[str, Any]) -> dict[str, Any]:
    """An index's description without server paths (a bundle folder is shown by its last component)."""
    name = info["model"]["name"]
    if FsPath(name).is_absolute():
        info = {**info, "model": {**info["model"], "name": FsPath(name).name}}
    return info


def _metadata(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    if len(text) > MAX_METADATA_CHARS:
        raise BadRequestError(f"metadata is {len(text)} characters, more than {MAX_METADATA_CHARS}.")
    from recog.serve.inputs import parse_json

    value = parse_json(text.encode())
    if not isinstance(value, dict):
        raise BadRequestError(f"metadata must be a JSON object, got {type(value).__name__}.",
                              hint='e.g. metadata={"category": "shoes", "price": 40}')
    return value


@router.get("/indexes", summary="List visual search indexes")
async def list_indexes(service: SearchService = Depends(search_of)) -> dict[str, Any]:
    infos = await asyncio.to_thread(service.indexes.infos)
    return {"indexes": [_public(i.to_dict()) for i in infos]}


@router.post("/indexes/{name}:query", summary="The most similar items to each image",
             openapi_extra={"requestBody": IMAGES_BODY})
async def query(request: Request, service: SearchService = Depends(search_of),
                deadline: Deadline = Depends(request_deadline), name: str = IndexName,
                k: int | None = Query(None, ge=1, le=1000, description="items per query (default 10)"),
                where: str | None = Query(None, max_length=4000, description="metadata filter, e.g. category = 'shoes'"),
                exact: bool = Query(False, description="score every vector even on an approximate index")
                ) -> dict[str, Any]:
    from recog.search.where import parse

    index = service.indexes.get(name)  # 404 naming the indexes, before the body
    flt = parse(where) if where else None
    uploads, body_k = await read_images(request, service.settings)
    top_k = k or body_k or 10
    st = state_of(request)
    await decode_uploads(st.decoder, uploads, check_image, service.settings.max_pixels)
    predictor, ref = await service.embedder(index, deadline)

    def work() -> list[dict[str, Any]]:
        from recog.search.images import query_images

        results = query_images(index, [u.data for u in uploads], embedder=(predictor, ref), k=top_k, where=flt,
                               exact=exact, sources=[u.name for u in uploads])
        return [r.to_dict() for r in results]

    return {"results": await service.run(deadline, len(uploads), work, "in visual search")}


@router.get("/indexes/{name}/items/{item}/thumbnail", summary="A JPEG thumbnail of an item indexed from a file",
            response_class=Response, responses={200: {"content": {"image/jpeg": {}}}})
async def thumbnail(service: SearchService = Depends(search_of), deadline: Deadline = Depends(request_deadline),
                    name: str = IndexName, item: str = Path(..., description="the item's id"),
                    size: int = Query(160, ge=16, le=512, description="longest side in pixels")) -> Response:
    """For the web page's result grid: the image an item was indexed from (``recog search index build``),
    read from this machine's disk through the safe decoder. Items added over HTTP have no file (404)."""
    index = service.indexes.get(name)

    def work() -> bytes:
        import io

        from recog.io import load_image

        file = index.item_file(item)
        if file is None or not file.is_file():
            raise NotFoundError(f"item {item!r} of index {name!r} has no image file on this server.",
                                hint="thumbnails exist for items indexed from a folder")
        img = load_image(file, max_pixels=service.settings.max_pixels, reduce_to=(size, size))
        img.thumbnail((size, size))
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=80)
        return buf.getvalue()

    data = await service.run(deadline, 1, work, "making a thumbnail")
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=300"})


@router.post("/indexes/{name}/items", summary="Add images of one item (write key)", status_code=201,
             dependencies=[Depends(require_write_key)], openapi_extra={"requestBody": IMAGES_BODY})
async def add_items(request: Request, service: SearchService = Depends(search_of),
                    deadline: Deadline = Depends(request_deadline), name: str = IndexName,
                    item: str = Query(..., alias="id", min_length=1, max_length=512, description="the item's id"),
                    metadata: str | None = Query(None, description="JSON object of metadata fields")) -> JSONResponse:
    index = service.indexes.get(name)
    fields = _metadata(metadata)
    uploads, top_k = await read_images(request, service.settings)
    if top_k is not None:
        raise BadRequestError("top_k has no meaning when adding items.")
    st = state_of(request)
    await decode_uploads(st.decoder, uploads, check_image, service.settings.max_pixels)
    predictor, ref = await service.embedder(index, deadline)

    def work() -> dict[str, Any]:
        import hashlib

        vectors = predictor.embed([u.data for u in uploads])
        ids = index.add([item] * len(uploads), vectors, model=ref, sources=[u.name for u in uploads],
                        fields=[fields] * len(uploads), keys=[hashlib.sha256(u.data).hexdigest() for u in uploads])
        return {"index": name, "id": item, "added": sum(v is not None for v in ids),
                "skipped_existing": sum(v is None for v in ids)}

    doc = await service.run(deadline, len(uploads), work, "adding to the index")
    return JSONResponse(doc, status_code=201 if doc["added"] else 200)


@router.delete("/indexes/{name}/items/{item}", summary="Hard-delete an item and all its vectors (write key)",
               dependencies=[Depends(require_write_key)])
async def delete_item(service: SearchService = Depends(search_of), deadline: Deadline = Depends(request_deadline),
                      name: str = IndexName, item: str = Path(..., description="the item's id")) -> dict[str, Any]:
    index = service.indexes.get(name)
    n = await service.run(deadline, 0, lambda: index.delete(item), "deleting from the index")
    return {"deleted": "item", "index": name, "id": item, "vectors": n}
