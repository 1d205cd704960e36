"""Typed face results. Every result has ``to_dict()``; its field names are the
JSON names of the CLI, the Python API and the HTTP API alike.

Boxes are ``[x1, y1, x2, y2]`` in pixels of the original image after EXIF
orientation, ``x2``/``y2`` exclusive, clipped to the image. Landmarks are the
five points of dlib's 5-point model, in this order (left/right as seen in the
image): :data:`LANDMARK_NAMES`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator

from recog.types import with_source

#: Order of the five landmarks; "right" is the eye on the image's right side.
LANDMARK_NAMES = ("right_eye_outer", "right_eye_inner", "left_eye_outer", "left_eye_inner", "nose")


def _r(x: float, nd: int = 4) -> float:
    return round(float(x), nd)


@dataclass(frozen=True)
class Face:
    """One detected face.

    Attributes:
        box: ``(x1, y1, x2, y2)`` original-image pixels.
        score: detector confidence (HOG: SVM margin, > 0 means detected; CNN: MMOD confidence).
        landmarks: five ``(x, y)`` points, see :data:`LANDMARK_NAMES`.

    Example:
        >>> f = Face((10, 20, 110, 120), 1.2, ((90, 50), (70, 50), (30, 50), (50, 50), (60, 80)))
        >>> f.width, f.area
        (100, 10000)
    """

    box: tuple[int, int, int, int]
    score: float
    landmarks: tuple[tuple[float, float], ...] = ()

    def __post_init__(self) -> None:
        if len(self.box) != 4 or self.box[2] < self.box[0] or self.box[3] < self.box[1]:
            raise ValueError(f"box must be (x1, y1, x2, y2) with x2 >= x1 and y2 >= y1, got {self.box}")
        if self.landmarks and len(self.landmarks) != len(LANDMARK_NAMES):
            raise ValueError(f"expected {len(LANDMARK_NAMES)} landmarks, got {len(self.landmarks)}")

    @property
    def width(self) -> int:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> int:
        return self.box[3] - self.box[1]

    @property
    def area(self) -> int:
        return self.width * self.height

    def to_dict(self) -> dict[str, Any]:
        return {"box": [int(v) for v in self.box], "score": _r(self.score),
                "landmarks": [[_r(x, 1), _r(y, 1)] for x, y in self.landmarks]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Face":
        return cls(tuple(int(v) for v in d["box"]), float(d.get("score", 0.0)),  # type: ignore[arg-type]
                   tuple((float(x), float(y)) for x, y in d.get("landmarks", ())))


@dataclass(frozen=True)
class FaceDetections:
    """The faces found in one image, largest first.

    Example:
        >>> dets = FaceDetections((), width=640, height=480, detector="hog")
        >>> len(dets), dets.to_dict()["count"]
        (0, 0)
    """

    faces: tuple[Face, ...]
    width: int
    height: int
    detector: str = "hog"
    source: str | None = None

    def __len__(self) -> int:
        return len(self.faces)

    def __iter__(self) -> Iterator[Face]:
        return iter(self.faces)

    def __getitem__(self, i: int) -> Face:
        return self.faces[i]

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"count": len(self.faces), "faces": [f.to_dict() for f in self.faces],
                               "width": self.width, "height": self.height, "detector": self.detector}
        return with_source(out, self.source)


@dataclass(frozen=True)
class Verification:
    """Whether two images show the same person.

    ``same`` is ``distance <= threshold``; the distance is euclidean between
    the 128-d embeddings of the largest face of each image.
    """

    same: bool
    distance: float
    threshold: float
    faces: tuple[Face, Face]
    faces_found: tuple[int, int]
    metric: str = "euclidean"

    def to_dict(self) -> dict[str, Any]:
        return {"same": self.same, "distance": _r(self.distance, 6), "threshold": self.threshold,
                "metric": self.metric, "faces": [f.to_dict() for f in self.faces],
                "faces_found": list(self.faces_found)}


@dataclass(frozen=True)
class Match:
    """One enrolled person close to a probe face: their nearest stored face and its distance."""

    person: str
    distance: float
    face_id: int

    def to_dict(self) -> dict[str, Any]:
        return {"person": self.person, "distance": _r(self.distance, 6), "face_id": self.face_id}


@dataclass(frozen=True)
class FaceIdentity:
    """Who one probe face is: up to top-k people within the threshold, best first, or unknown.

    ``nearest_distance`` is the distance to the closest stored face even when
    it is beyond the threshold (None when the collection is empty); it helps
    choosing a threshold and names no one.
    """

    face: Face
    matches: tuple[Match, ...]
    threshold: float
    nearest_distance: float | None = None

    @property
    def person(self) -> str | None:
        return self.matches[0].person if self.matches else None

    @property
    def unknown(self) -> bool:
        return not self.matches

    def to_dict(self) -> dict[str, Any]:
        return {**self.face.to_dict(), "person": self.person, "unknown": self.unknown,
                "distance": None if not self.matches else _r(self.matches[0].distance, 6),
                "nearest_distance": None if self.nearest_distance is None else _r(self.nearest_distance, 6),
                "matches": [m.to_dict() for m in self.matches]}


@dataclass(frozen=True)
class Identification:
    """Identities of every face found in one probe image against one collection."""

    collection: str
    threshold: float
    faces: tuple[FaceIdentity, ...]
    width: int
    height: int
    source: str | None = None

    def __len__(self) -> int:
        return len(self.faces)

    def __getitem__(self, i: int) -> FaceIdentity:
        return self.faces[i]

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"collection": self.collection, "threshold": self.threshold,
                               "count": len(self.faces), "faces": [f.to_dict() for f in self.faces],
                               "width": self.width, "height": self.height}
        return with_source(out, self.source)


@dataclass(frozen=True)
class EnrolledFace:
    """A face stored for a person."""

    person: str
    face_id: int
    source: str | None
    box: tuple[int, int, int, int] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"person": self.person, "face_id": self.face_id, "source": self.source,
                "box": None if self.box is None else [int(v) for v in self.box]}


@dataclass(frozen=True)
class SkippedImage:
    """An image that enrollment did not use, and why (``code`` is the error code)."""

    source: str
    person: str | None
    code: str
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "person": self.person, "code": self.code, "detail": self.detail}


@dataclass(frozen=True)
class EnrollReport:
    """What an enrollment stored and what it skipped."""

    collection: str
    enrolled: tuple[EnrolledFace, ...] = ()
    skipped: tuple[SkippedImage, ...] = ()

    @property
    def people(self) -> list[str]:
        return sorted({e.person for e in self.enrolled})

    def to_dict(self) -> dict[str, Any]:
        return {"collection": self.collection, "enrolled_count": len(self.enrolled),
                "skipped_count": len(self.skipped), "people": self.people,
                "enrolled": [e.to_dict() for e in self.enrolled], "skipped": [s.to_dict() for s in self.skipped]}


@dataclass(frozen=True)
class CollectionInfo:
    """A collection's settings and size."""

    name: str
    threshold: float
    store_images: bool
    embedder: str
    people: int
    faces: int
    created_at: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "threshold": self.threshold, "store_images": self.store_images,
                "embedder": self.embedder, "people": self.people, "faces": self.faces,
                "created_at": self.created_at}


@dataclass(frozen=True)
class PersonInfo:
    """A person in a collection and the ids of their stored faces."""

    name: str
    face_ids: tuple[int, ...] = field(default_factory=tuple)
    created_at: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "faces": len(self.face_ids), "face_ids": list(self.face_ids),
                "created_at": self.created_at}
