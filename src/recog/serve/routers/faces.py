"""Face routes: detect, verify, and collections (enroll, identify, list, delete, export, import).

Face data is biometric: every route here needs an API key, even on loopback
(:func:`recog.serve.deps.require_faces_key`); without a key file they answer
403 unless the operator started the service with ``--allow-open-faces``. The
body cap is the app's edge middleware, images are read by
:func:`recog.serve.inputs.read_images` (multipart, raw bytes or base64 JSON,
never URLs) and first decoded once in the service's decode processes
(:mod:`recog.serve.decoding`, killed at the deadline), then analysed on the
app's executor by :func:`recog.io.load_image` and dlib under the service's
``max_pixels``, under the request deadline (504) and the service's admission
policy: at most ``max_queue`` images in progress (429, see
:class:`recog.serve.deps.Admission`). JSON bodies are read after the key check.

Routes (all under ``/v1``; query parameters shown after ``?``)::

    POST   /faces:detect                    ?detector&upsample&min_size&max_faces   images -> {"results": [...]}
    POST   /faces:verify                    ?threshold&collection                   two images -> verification
    GET    /collections                                                             -> {"collections": [...]}
    POST   /collections                     JSON {name, threshold?, store_images?}  -> collection (201)
    GET    /collections/{name}                                                      -> collection + people
    DELETE /collections/{name}                                                      -> hard delete
    POST   /collections/{name}/people/{person}/faces                               images -> enroll report
    DELETE /collections/{name}/people/{person}                                      -> hard delete
    DELETE /collections/{name}/faces/{face_id}                                      -> hard delete
    POST   /collections/{name}:identify     ?top_k&threshold&max_faces              image -> identification
    GET    /collections/{name}:export       (admin key)                             -> export document
    POST   /collections:import              ?name (admin key)  JSON export          -> collection (201)

The store is ``settings.faces_db`` (else ``$RECOG_FACES_DB``, else
``~/.recog/faces.db``); it opens in the app's lifespan (:func:`open_faces`), the
dlib models at the first request that needs them.
"""

from __future__ import annotations

from concurrent.futures import Executor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse

from recog.errors import BadRequestError, ImageError, NotReadyError
from recog.faces.dlib_models import DEFAULT_THRESHOLD
from recog.faces.types import EnrollReport, SkippedImage
from recog.serve.decoding import DecodePool, check_image
from recog.serve.deps import Admission, Deadline, request_deadline, require_admin_key, require_faces_key, state_of
from recog.serve.inputs import (IMAGES_BODY, Upload, decode_uploads, named_image_error, read_images,
                                read_json_object)
from recog.serve.problems import problem_responses
from recog.serve.settings import Settings

if TYPE_CHECKING:
    from recog.faces.recognizer import FaceRecognizer

router = APIRouter(prefix="/v1", tags=["faces"], dependencies=[Depends(require_faces_key)],
                   responses=problem_responses(400, 401, 403, 404, 409, 413, 415, 422, 429, 503, 504))

CollectionName = Path(..., description="collection name")
PersonName = Path(..., description="person name (URL-encoded)")


@dataclass(eq=False)
class FacesService:
    """The face recognizer of one app, the executor its work runs on, its admission queue, the decoders."""

    settings: Settings
    recognizer: "FaceRecognizer"
    executor: Executor | None
    admission: Admission
    decoder: DecodePool | None = None

    async def run(self, deadline: Deadline, n_images: int, fn: Callable[[], Any],
                  uploads: list[Upload] = ()) -> Any:
        """Run the blocking ``fn`` on the executor, ``n_images`` admitted, until the deadline.

        ``uploads`` are first decoded once in the decode processes, where a decode that
        outlives the deadline is stopped; a bad image fails here, named by its upload.
        """
        with self.admission.slots(n_images):
            if uploads and self.decoder is not None:
                await deadline.wait(decode_uploads(self.decoder, list(uploads), check_image, self.settings.max_pixels),
                                    "while decoding images", hint="send smaller images")
            return await deadline.run(self.executor, fn, "in face analysis",
                                      hint="send smaller images or lower upsample")

    def close(self) -> None:
        self.recognizer.close()


def open_faces(settings: Settings, executor: Executor | None, decoder: DecodePool | None = None) -> FacesService:
    """Open the face store (blocking: SQLite); the dlib models load when first used.

    Raises:
        ConfigError: the store file cannot be opened.
    """
    from recog.faces.analyzer import FaceAnalyzer
    from recog.faces.recognizer import FaceRecognizer

    recognizer = FaceRecognizer(settings.faces_db, analyzer=FaceAnalyzer(max_pixels=settings.max_pixels))
    return FacesService(settings, recognizer, executor, Admission("face recognition", settings.max_queue), decoder)


def faces_of(request: Request) -> FacesService:
    """Dependency: the app's :class:`FacesService` (opened in the lifespan).

    Raises:
        NotReadyError: the lifespan has not opened it (yet).
    """
    fs = state_of(request).faces
    if fs is None:
        raise NotReadyError("face recognition is not open: the service is starting or stopping.",
                            hint="retry in a moment")
    return fs


def _named(fn: Callable[[Upload], Any]) -> Callable[[Upload], Any]:
    """Prefix image errors with the upload's name, as the predict route does."""

    def wrapped(up: Upload) -> Any:
        try:
            return fn(up)
        except ImageError as exc:
            raise named_image_error(exc, up.name) from exc
    return wrapped


def _no_top_k(top_k: int | None, route: str) -> None:
    if top_k is not None:
        raise BadRequestError(f"top_k has no meaning for {route}.")


# --------------------------------------------------------------------------- stateless


@router.post("/faces:detect", summary="Detect faces: boxes, 5 landmarks, scores",
             openapi_extra={"requestBody": IMAGES_BODY})
async def detect(request: Request, fs: FacesService = Depends(faces_of),
                 deadline: Deadline = Depends(request_deadline),
                 detector: str = Query("hog", pattern="^(hog|cnn)$"),
                 upsample: int = Query(1, ge=0, le=4), min_size: int = Query(0, ge=0),
                 max_faces: int | None = Query(None, ge=1, le=1000)) -> dict[str, Any]:
    uploads, top_k = await read_images(request, fs.settings)
    _no_top_k(top_k, "detection")
    analyzer = fs.recognizer.analyzer
    one = _named(lambda up: analyzer.detect(up.data, detector=detector, upsample=upsample,
                                            min_face_size=min_size, max_faces=max_faces))
    results = await fs.run(deadline, len(uploads), lambda: [one(up) for up in uploads], uploads)
    return {"results": [dict(r.to_dict(), **({"source": up.name} if up.name else {}))
                        for r, up in zip(results, uploads)]}


@router.post("/faces:verify", summary="Are the largest faces of two images the same person?",
             openapi_extra={"requestBody": IMAGES_BODY})
async def verify(request: Request, fs: FacesService = Depends(faces_of),
                 deadline: Deadline = Depends(request_deadline),
                 threshold: float | None = Query(None, gt=0, le=4),
                 collection: str | None = Query(None, description="use this collection's threshold")
                 ) -> dict[str, Any]:
    uploads, top_k = await read_images(request, fs.settings)
    _no_top_k(top_k, "verification")
    if len(uploads) != 2:
        raise BadRequestError(f"verification needs exactly two images, got {len(uploads)}.",
                              hint="curl -F image=@id-photo.jpg -F image=@selfie.jpg URL")
    a, b = uploads
    fr = fs.recognizer

    def work():
        try:
            return fr.verify(a.data, b.data, threshold=threshold, collection=collection)
        except ImageError as exc:
            raise named_image_error(exc, "image 1 or 2") from exc

    return (await fs.run(deadline, 2, work, uploads)).to_dict()


# --------------------------------------------------------------------------- collections


@router.get("/collections", summary="List face collections")
async def list_collections(fs: FacesService = Depends(faces_of)) -> dict[str, Any]:
    return {"collections": [c.to_dict() for c in fs.recognizer.collections()]}


_JSON_OBJECT = {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}}
_NEW_COLLECTION = {"required": True, "content": {"application/json": {
    "schema": {"type": "object", "required": ["name"], "properties": {
        "name": {"type": "string"}, "threshold": {"type": "number", "exclusiveMinimum": 0, "maximum": 4},
        "store_images": {"type": "boolean"}}},
    "example": {"name": "office", "threshold": 0.6, "store_images": False}}}}


@router.post("/collections", summary="Create a face collection", status_code=201,
             openapi_extra={"requestBody": _NEW_COLLECTION})
async def create_collection(request: Request, fs: FacesService = Depends(faces_of)) -> dict[str, Any]:
    body = await read_json_object(request)
    unknown = set(body) - {"name", "threshold", "store_images"}
    if unknown or "name" not in body:
        raise BadRequestError(f"expected JSON keys name and optionally threshold, store_images; "
                              f"got {sorted(body)[:10]}.")
    threshold = body.get("threshold", DEFAULT_THRESHOLD)
    if (not isinstance(threshold, (int, float)) or isinstance(threshold, bool)
            or not 0 < float(threshold) <= 4):  # 1e400 parses as inf
        raise BadRequestError(f"threshold must be a number in (0, 4], got {str(threshold)[:40]}.")
    if not isinstance(body.get("store_images", False), bool):
        raise BadRequestError("store_images must be true or false.")
    info = fs.recognizer.create_collection(str(body["name"]), threshold=float(threshold),
                                           store_images=body.get("store_images", False))
    return info.to_dict()


@router.post("/collections/{name}/people/{person}/faces", summary="Enroll images of one person",
             openapi_extra={"requestBody": IMAGES_BODY})
async def enroll(request: Request, fs: FacesService = Depends(faces_of),
                 deadline: Deadline = Depends(request_deadline), name: str = CollectionName,
                 person: str = PersonName,
                 create: bool = Query(False, description="create the collection if it does not exist")
                 ) -> JSONResponse:
    fr = fs.recognizer
    if not create:
        fr.collection(name)  # 404 before reading the body
    uploads, top_k = await read_images(request, fs.settings)
    _no_top_k(top_k, "enrollment")

    def work():
        if len(uploads) == 1:  # one image: a face problem is the request's error (422)
            up = uploads[0]
            done = _named(lambda u: fr.enroll(u.data, person=person, collection=name, create=create,
                                              source=u.name))(up)
            if done is None:
                return EnrollReport(name, (), (SkippedImage(up.name or "image", person, "already_enrolled",
                                                            "this image is already enrolled for the person."),))
            return EnrollReport(name, (done,), ())
        return fr.enroll_many([(person, up.data) for up in uploads], collection=name, create=create)

    report = await fs.run(deadline, len(uploads), work, uploads)
    doc = report.to_dict()
    for item, up in zip(doc["skipped"], uploads):
        item["source"] = up.name or item["source"]
    return JSONResponse(doc, status_code=201 if report.enrolled else 200)


@router.get("/collections/{name}/people", summary="People of a collection")
async def list_people(fs: FacesService = Depends(faces_of), name: str = CollectionName) -> dict[str, Any]:
    return {"collection": name, "people": [p.to_dict() for p in fs.recognizer.people(name)]}


@router.delete("/collections/{name}/people/{person}", summary="Hard-delete a person and their faces")
async def delete_person(fs: FacesService = Depends(faces_of), deadline: Deadline = Depends(request_deadline),
                        name: str = CollectionName, person: str = PersonName) -> dict[str, Any]:
    n = await fs.run(deadline, 0, lambda: fs.recognizer.delete_person(name, person))
    return {"deleted": "person", "collection": name, "person": person, "faces": n}


@router.delete("/collections/{name}/faces/{face_id}", summary="Hard-delete one face")
async def delete_face(fs: FacesService = Depends(faces_of), deadline: Deadline = Depends(request_deadline),
                      name: str = CollectionName, face_id: int = Path(..., ge=1)) -> dict[str, Any]:
    person = await fs.run(deadline, 0, lambda: fs.recognizer.delete_face(name, face_id))
    return {"deleted": "face", "collection": name, "face_id": face_id, "person": person}


@router.post("/collections/{name}:identify", summary="Who is in the image: top-k people per face, or unknown",
             openapi_extra={"requestBody": IMAGES_BODY})
async def identify(request: Request, fs: FacesService = Depends(faces_of),
                   deadline: Deadline = Depends(request_deadline), name: str = CollectionName,
                   top_k: int | None = Query(None, ge=1, le=100), threshold: float | None = Query(None, gt=0, le=4),
                   max_faces: int | None = Query(None, ge=1, le=1000)) -> dict[str, Any]:
    fr = fs.recognizer
    fr.collection(name)  # 404 before reading the body
    uploads, body_top_k = await read_images(request, fs.settings)
    if len(uploads) != 1:
        raise BadRequestError(f"identify takes one image, got {len(uploads)}.")
    k = top_k or body_top_k or 1
    one = _named(lambda up: fr.identify(up.data, collection=name, top_k=k, threshold=threshold,
                                        max_faces=max_faces))
    result = await fs.run(deadline, 1, lambda: one(uploads[0]), uploads)
    return result.to_dict()


@router.get("/collections/{name}:export", summary="Export a collection (embeddings are biometric data: admin key)",
            dependencies=[Depends(require_admin_key)])
async def export_collection(fs: FacesService = Depends(faces_of), name: str = CollectionName) -> dict[str, Any]:
    return fs.recognizer.export_collection(name)


@router.post("/collections:import", summary="Import an exported collection (admin key)", status_code=201,
             dependencies=[Depends(require_admin_key)], openapi_extra={"requestBody": _JSON_OBJECT})
async def import_collection(request: Request, fs: FacesService = Depends(faces_of),
                            name: str | None = Query(None, description="import under this name")) -> dict[str, Any]:
    body = await read_json_object(request)
    return fs.recognizer.import_collection(body, name=name).to_dict()


# Routes with a bare {name} come last: "{name}" would also match "office:export".

@router.get("/collections/{name}", summary="A collection with its people and face ids")
async def get_collection(fs: FacesService = Depends(faces_of), name: str = CollectionName) -> dict[str, Any]:
    fr = fs.recognizer
    return {"collection": fr.collection(name).to_dict(), "people": [p.to_dict() for p in fr.people(name)]}


@router.delete("/collections/{name}", summary="Hard-delete a collection, its people and faces")
async def delete_collection(fs: FacesService = Depends(faces_of), deadline: Deadline = Depends(request_deadline),
                            name: str = CollectionName) -> dict[str, Any]:
    n = await fs.run(deadline, 0, lambda: fs.recognizer.delete_collection(name))
    return {"deleted": "collection", "collection": name, "faces": n}
