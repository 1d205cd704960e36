"""Enroll people into collections and identify faces against them.

:class:`FaceRecognizer` joins a :class:`~recog.faces.analyzer.FaceAnalyzer`
(models), a :class:`~recog.faces.store.FaceStore` (SQLite) and an
:class:`~recog.faces.index.IndexCache` (vector search).

Enrollment never guesses: an image must hold exactly one face; images with
none or several, and unreadable files, are reported in the
:class:`~recog.faces.types.EnrollReport` and skipped (or raise, for a single
image). Every stored face is one transaction, and a face already stored for
the same person from the same image bytes (sha256) is skipped, so an
interrupted folder enrollment can simply be run again.

Example:
    >>> fr = FaceRecognizer("faces.db")                                    # doctest: +SKIP
    >>> fr.enroll_folder("staff/", collection="office").to_dict()["people"] # doctest: +SKIP
    ['Ada Lovelace', 'Grace Hopper']
    >>> fr.identify("door-cam.jpg", collection="office")[0].person          # doctest: +SKIP
    'Ada Lovelace'
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from recog.errors import (ConfigError, DatasetError, ImageError, InvalidInputError, MultipleFacesError, NoFaceError,
                          NotFoundError)
from recog.faces import transfer
from recog.faces.analyzer import FaceAnalyzer, FoundFaces
from recog.faces.dlib_models import DEFAULT_THRESHOLD, check_threshold
from recog.faces.index import IndexCache, search
from recog.faces.store import FaceStore
from recog.faces.types import (CollectionInfo, EnrolledFace, EnrollReport, FaceIdentity, Identification,
                               PersonInfo, SkippedImage, Verification)
from recog.index.db import Closing
from recog.io import IMAGE_EXTENSIONS


def _sha256(image: Any) -> str | None:
    """Content hash of an image given as a path or bytes (None for arrays / PIL images)."""
    if isinstance(image, (str, os.PathLike)):
        if not os.path.isfile(image):
            return None  # load_image reports the missing file
        h = hashlib.sha256()
        with open(image, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
        return h.hexdigest()
    if isinstance(image, (bytes, bytearray, memoryview)):
        return hashlib.sha256(bytes(image)).hexdigest()
    return None


def folder_images(root: str | os.PathLike) -> list[tuple[str, Path]]:
    """``(person, image path)`` for every image in ``root/<person>/`` (sorted, one level deep).

    Raises:
        DatasetError: ``root`` is not a folder or has no person folders with images.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: expected a folder with one sub-folder per person.")
    items = []
    for person_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for f in sorted(person_dir.iterdir()):
            if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS:
                items.append((person_dir.name, f))
    if not items:
        raise DatasetError(f"{root}: found no images in person folders (root/<person>/<image>).",
                           hint="lay the images out as staff/Ada Lovelace/1.jpg, staff/Grace Hopper/1.jpg, ...")
    return items


def enrollment_items(path: str | os.PathLike, person: str | None = None) -> list[tuple[str, Path]]:
    """``(person, image path)`` pairs to enroll from ``path``.

    A folder without ``person`` is ``root/<person>/<images>`` (:func:`folder_images`);
    a folder with ``person`` holds that person's images; a file is one image of ``person``.

    Raises:
        InvalidInputError: a single image without ``person``.
        DatasetError: the folder has no images where expected.
    """
    path = Path(path)
    if not path.is_dir():
        if person is None:
            raise InvalidInputError(f"{path}: enrolling one image needs the person's name.",
                                    hint="pass --person NAME (a folder uses its sub-folder names)")
        return [(person, path)]
    if person is None:
        return folder_images(path)
    return [(person, p) for p in sorted(path.iterdir()) if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS]


class FaceRecognizer(Closing):
    """Detection, verification, enrollment and identification over one face store.

    Args:
        db: store file, or an open :class:`FaceStore` (default ``$RECOG_FACES_DB`` or ``~/.recog/faces.db``).
        analyzer: the models and detection options (default: HOG, upsample 1).
    """

    def __init__(self, db: str | os.PathLike | FaceStore | None = None, *,
                 analyzer: FaceAnalyzer | None = None) -> None:
        self.store = db if isinstance(db, FaceStore) else FaceStore(db)
        self.analyzer = analyzer or FaceAnalyzer()
        self.indexes = IndexCache(self.store)

    def close(self) -> None:
        self.store.close()

    # -- stateless -------------------------------------------------------------------------------

    def verify(self, image1: Any, image2: Any, *, threshold: float | None = None,
               collection: str | None = None) -> Verification:
        """:meth:`FaceAnalyzer.verify`, at ``threshold``, else the collection's, else 0.6."""
        if threshold is None:
            threshold = self.store.collection(collection).threshold if collection else DEFAULT_THRESHOLD
        return self.analyzer.verify(image1, image2, threshold=threshold)

    # -- enrollment ------------------------------------------------------------------------------

    def _crop_jpeg(self, found: FoundFaces) -> bytes:
        from PIL import Image

        buf = io.BytesIO()
        Image.fromarray(self.analyzer.align(found, found.faces[0], size=150, padding=0.25)).save(
            buf, format="JPEG", quality=90)
        return buf.getvalue()

    def enroll(self, image: Any, *, person: str, collection: str, create: bool = True,
               source: str | None = None) -> EnrolledFace | None:
        """Store the one face of ``image`` for ``person``.

        Returns:
            The stored face, or None if this exact image was already enrolled for the person.

        Raises:
            NoFaceError, MultipleFacesError: the image does not hold exactly one face.
            NotFoundError: no such collection and ``create`` is False.
        """
        if create:
            self.store.create_collection(collection, exist_ok=True)
        else:
            self.store.collection(collection)
        sha = _sha256(image)
        if sha is not None and self.store.has_image(collection, person, sha):
            return None  # already enrolled (a rerun after an interruption): no need to decode or embed
        found = self.analyzer.find(image)
        source = source or found.detections.source
        faces = found.faces
        where = f"{source}: " if source else ""
        if not faces:
            raise NoFaceError(f"{where}expected exactly one face to enroll {person!r}, found none.",
                              hint="use a frontal photo where the face is at least 40 px wide")
        if len(faces) > 1:
            raise MultipleFacesError(f"{where}expected exactly one face to enroll {person!r}, found {len(faces)}.",
                                     hint="crop the photo to the person, or use one where they are alone")
        vec = self.analyzer.embed_found(found)
        info = self.store.collection(collection)
        crop = [self._crop_jpeg(found)] if info.store_images else None
        ids = self.store.add_faces(collection, person, vec, sources=[source], image_sha256=[sha],
                                   boxes=[faces[0].box], images=crop)
        return None if ids[0] is None else EnrolledFace(person, ids[0], source, faces[0].box)

    def enroll_many(self, items: Iterable[tuple[str, Any]], *, collection: str, create: bool = True,
                    on_item: Callable[[str, Any], None] | None = None) -> EnrollReport:
        """Enroll ``(person, image)`` pairs; every image is its own transaction.

        Images with zero or several faces, unreadable images and images
        already enrolled for the person are skipped and reported.
        ``on_item(person, image)`` is called after each image (progress bars).
        """
        if create:
            self.store.create_collection(collection, exist_ok=True)
        else:
            self.store.collection(collection)
        enrolled, skipped = [], []
        for person, image in items:
            src = str(image) if isinstance(image, (str, os.PathLike)) else "<image>"
            try:
                done = self.enroll(image, person=person, collection=collection, create=False, source=src)
            except (NoFaceError, MultipleFacesError, ImageError) as exc:
                skipped.append(SkippedImage(src, person, exc.code, str(exc)))
            else:
                if done is None:
                    skipped.append(SkippedImage(src, person, "already_enrolled",
                                                f"{src}: already enrolled for {person!r}; kept the stored face."))
                else:
                    enrolled.append(done)
            if on_item is not None:
                on_item(person, image)
        return EnrollReport(collection, tuple(enrolled), tuple(skipped))

    def enroll_folder(self, root: str | os.PathLike, *, collection: str, create: bool = True,
                      on_item: Callable[[str, Any], None] | None = None) -> EnrollReport:
        """Enroll ``root/<person name>/<images>``; see :meth:`enroll_many`."""
        return self.enroll_many(folder_images(root), collection=collection, create=create, on_item=on_item)

    # -- identification ----------------------------------------------------------------------------

    def identify(self, image: Any, *, collection: str, top_k: int = 1, threshold: float | None = None,
                 **detect_overrides: Any) -> Identification:
        """Who each face in ``image`` is: up to ``top_k`` people within the threshold, or unknown.

        The threshold is ``threshold`` if given, else the collection's.
        """
        if top_k < 1:
            raise ConfigError(f"top_k must be at least 1, got {top_k}.")
        index, coll_threshold = self.indexes.get(collection)  # raises NotFoundError first
        thr = check_threshold(threshold) if threshold is not None else coll_threshold
        dets, vecs = self.analyzer.analyze(image, **detect_overrides)
        results = search(index, vecs, k=top_k, max_distance=thr) if len(dets) else []
        faces = tuple(FaceIdentity(face, tuple(matches), thr, nearest)
                      for face, (matches, nearest) in zip(dets.faces, results))
        return Identification(collection, thr, faces, dets.width, dets.height, dets.source)

    def identify_embedding(self, embedding: Any, *, collection: str, top_k: int = 1,
                           threshold: float | None = None) -> tuple[list, float | None]:
        """:func:`~recog.faces.index.search` for one precomputed embedding: (matches, nearest distance)."""
        index, coll_threshold = self.indexes.get(collection)
        thr = check_threshold(threshold) if threshold is not None else coll_threshold
        return search(index, np.asarray(embedding, np.float32), k=top_k, max_distance=thr)[0]

    # -- management --------------------------------------------------------------------------------

    def create_collection(self, name: str, *, threshold: float = DEFAULT_THRESHOLD,
                          store_images: bool = False) -> CollectionInfo:
        return self.store.create_collection(name, threshold=threshold, store_images=store_images)

    def ensure_collection(self, name: str, *, threshold: float | None = None,
                          store_images: bool = False) -> tuple[CollectionInfo, bool]:
        """The collection ``name``, created with these settings if it does not exist; and whether it was created.

        The settings apply only to a new collection (an existing one keeps its threshold:
        change it with :meth:`update_collection`).
        """
        try:
            return self.store.collection(name), False
        except NotFoundError:
            return self.create_collection(name, threshold=DEFAULT_THRESHOLD if threshold is None else threshold,
                                          store_images=store_images), True

    def update_collection(self, name: str, *, threshold: float | None = None) -> CollectionInfo:
        return self.store.update_collection(name, threshold=threshold)

    def collections(self) -> list[CollectionInfo]:
        return self.store.collections()

    def collection(self, name: str) -> CollectionInfo:
        return self.store.collection(name)

    def people(self, collection: str) -> list[PersonInfo]:
        return self.store.people(collection)

    def delete_collection(self, name: str) -> int:
        n = self.store.delete_collection(name)
        self.indexes.drop(name)
        return n

    def delete_person(self, collection: str, person: str) -> int:
        n = self.store.delete_person(collection, person)
        self.indexes.drop(collection)
        return n

    def delete_face(self, collection: str, face_id: int) -> str:
        person = self.store.delete_face(collection, face_id)
        self.indexes.drop(collection)
        return person

    def export_collection(self, name: str) -> dict[str, Any]:
        """A JSON-ready document of the collection (see :mod:`recog.faces.transfer`)."""
        return transfer.export_collection(self.store, name)

    def import_collection(self, doc: dict[str, Any], *, name: str | None = None) -> CollectionInfo:
        """Create a collection from an export document (under ``name`` if given)."""
        return transfer.import_collection(self.store, doc, name=name)

