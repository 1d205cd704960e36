"""Detect, align and embed faces with dlib; verify two images.

Images are read only through :func:`recog.io.load_image` (magic bytes, pixel
cap, EXIF orientation, RGB), so boxes are in pixels of the image as a viewer
shows it.

Example:
    >>> fa = FaceAnalyzer()                                   # doctest: +SKIP
    >>> dets = fa.detect("group.jpg")                         # doctest: +SKIP
    >>> fa.verify("id-photo.jpg", "selfie.jpg").same          # doctest: +SKIP
    True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from recog.errors import ConfigError, InvalidInputError, NoFaceError
from recog.faces.dlib_models import DEFAULT_THRESHOLD, EMBEDDING_DIM, check_threshold, load_model
from recog.faces.types import Face, FaceDetections, Verification
from recog.io import DEFAULT_MAX_PIXELS, load_image

if TYPE_CHECKING:
    from PIL import Image

DETECTORS = ("hog", "cnn")


@dataclass(frozen=True)
class DetectOptions:
    """How faces are detected.

    Attributes:
        detector: ``"hog"`` (fast, frontal faces; default) or ``"cnn"`` (dlib's
            MMOD CNN: more poses, about 15x slower on a CPU).
        upsample: times the image is doubled before detection. The HOG window is
            80 px, so upsample 0 finds faces of about 80 px and more, 1 (default,
            as dlib's examples) about 40 px, 2 about 20 px; each step costs ~4x time.
        min_face_size: faces whose box is smaller than this (shorter side, px) are dropped.
        max_faces: keep only the largest N faces (None: all).
        min_score: detector score a face must exceed (dlib's own threshold is 0).
    """

    detector: str = "hog"
    upsample: int = 1
    min_face_size: int = 0
    max_faces: int | None = None
    min_score: float = 0.0

    def __post_init__(self) -> None:
        if self.detector not in DETECTORS:
            raise ConfigError(f"detector must be one of {', '.join(DETECTORS)}, got {self.detector!r}.",
                              hint="use --detector hog (fast) or --detector cnn (more poses, slower)")
        if not (0 <= self.upsample <= 4):
            raise ConfigError(f"upsample must be between 0 and 4, got {self.upsample}.",
                              hint="each step doubles the image; 1 finds faces of about 40 px")
        if self.min_face_size < 0:
            raise ConfigError(f"min_face_size must be >= 0 pixels, got {self.min_face_size}.")
        if self.max_faces is not None and self.max_faces < 1:
            raise ConfigError(f"max_faces must be at least 1 (or None for all), got {self.max_faces}.")


@dataclass(frozen=True, eq=False)
class FoundFaces:
    """One decoded image and the faces found in it, ready to embed or align without decoding again.

    Attributes:
        pixels: ``HxWx3`` uint8 RGB.
        detections: the faces, largest first.
        shapes: dlib's landmark shapes of the faces, same order (what alignment uses).
    """

    pixels: np.ndarray
    detections: FaceDetections
    shapes: Sequence[Any]

    @property
    def faces(self) -> tuple[Face, ...]:
        return self.detections.faces


def to_rgb_array(image: Any, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[np.ndarray, str | None]:
    """Any image source to a C-contiguous ``HxWx3`` uint8 array and its name (for paths)."""
    import os

    name = str(image) if isinstance(image, (str, os.PathLike)) else None
    arr = np.asarray(load_image(image, max_pixels=max_pixels))
    return np.ascontiguousarray(arr, dtype=np.uint8), name


def _clip_box(rect: Any, width: int, height: int) -> tuple[int, int, int, int]:
    # dlib rectangles are inclusive and may reach outside the image.
    x1 = min(max(int(rect.left()), 0), width)
    y1 = min(max(int(rect.top()), 0), height)
    x2 = min(max(int(rect.right()) + 1, x1), width)
    y2 = min(max(int(rect.bottom()) + 1, y1), height)
    return x1, y1, x2, y2


class FaceAnalyzer:
    """Detection, 5-point alignment and 128-d embedding with dlib's pretrained models.

    Holds configuration only; the models load once per process on first use.

    Args:
        options: detection options (see :class:`DetectOptions`); keyword
            arguments of the same names override single fields.
        num_jitters: embed this many randomly jittered copies and average
            (0 or 1: one pass; dlib suggests 10 for a little more accuracy, 10x slower).
        max_pixels: decoded pixel cap per image.
    """

    def __init__(self, options: DetectOptions | None = None, *, num_jitters: int = 1,
                 max_pixels: int = DEFAULT_MAX_PIXELS, **overrides: Any) -> None:
        base = options or DetectOptions()
        self.options = DetectOptions(**{**base.__dict__, **{k: v for k, v in overrides.items() if v is not None}})
        if not (0 <= num_jitters <= 100):
            raise ConfigError(f"num_jitters must be between 0 and 100, got {num_jitters}.")
        self.num_jitters = max(1, num_jitters)
        self.max_pixels = max_pixels

    # -- detection -----------------------------------------------------------------------------

    def _options(self, overrides: dict[str, Any]) -> DetectOptions:
        given = {k: v for k, v in overrides.items() if v is not None}
        return DetectOptions(**{**self.options.__dict__, **given}) if given else self.options

    def _detect_rects(self, arr: np.ndarray, opts: DetectOptions) -> list[tuple[Any, float]]:
        if opts.detector == "hog":
            with load_model("hog").use() as det:
                rects, scores, _ = det.run(arr, opts.upsample, opts.min_score)
            return [(r, float(s)) for r, s in zip(rects, scores) if s > opts.min_score]
        with load_model("cnn").use() as det:
            found = det(arr, opts.upsample)
        return [(m.rect, float(m.confidence)) for m in found if m.confidence > opts.min_score]

    def _detect(self, arr: np.ndarray, opts: DetectOptions) -> tuple[list[Face], list[Any]]:
        """Faces (largest first) and their dlib landmark shapes, same order."""
        h, w = arr.shape[:2]
        found = []
        for rect, score in self._detect_rects(arr, opts):
            box = _clip_box(rect, w, h)
            if min(box[2] - box[0], box[3] - box[1]) < max(opts.min_face_size, 1):
                continue
            found.append((rect, score, box))
        found.sort(key=lambda t: (-(t[2][2] - t[2][0]) * (t[2][3] - t[2][1]), -t[1]))
        if opts.max_faces is not None:
            found = found[:opts.max_faces]
        faces, shapes = [], []
        if found:
            with load_model("landmarks5").use() as sp:
                for rect, score, box in found:
                    shape = sp(arr, rect)
                    shapes.append(shape)
                    faces.append(Face(box, score, tuple((float(p.x), float(p.y)) for p in shape.parts())))
        return faces, shapes

    def find(self, image: Any, **overrides: Any) -> FoundFaces:
        """Decode ``image`` once and detect its faces (largest first), keeping what embedding needs.

        Args:
            image: path, bytes, file object, PIL image or ``HxWx3`` uint8 RGB array.
            **overrides: any :class:`DetectOptions` field for this call.

        Example:
            >>> found = FaceAnalyzer().find("id-photo.jpg")                    # doctest: +SKIP
            >>> len(found.faces), FaceAnalyzer().embed_found(found).shape       # doctest: +SKIP
            (1, (1, 128))
        """
        opts = self._options(overrides)
        arr, name = to_rgb_array(image, max_pixels=self.max_pixels)
        faces, shapes = self._detect(arr, opts)
        dets = FaceDetections(tuple(faces), width=arr.shape[1], height=arr.shape[0], detector=opts.detector,
                              source=name)
        return FoundFaces(arr, dets, shapes)

    def detect(self, image: Any, **overrides: Any) -> FaceDetections:
        """Faces in one image, largest first (arguments as :meth:`find`).

        Example:
            >>> FaceAnalyzer().detect("group.jpg", max_faces=5).to_dict()["count"]   # doctest: +SKIP
            5
        """
        return self.find(image, **overrides).detections

    # -- alignment and embedding ---------------------------------------------------------------

    @staticmethod
    def _shapes_for(faces: Sequence[Face]) -> Any:
        import dlib

        shapes = dlib.full_object_detections()
        for f in faces:
            if not f.landmarks:
                raise InvalidInputError("a face without landmarks cannot be aligned.",
                                        hint="pass faces from FaceAnalyzer.detect()")
            rect = dlib.rectangle(int(f.box[0]), int(f.box[1]), int(f.box[2]) - 1, int(f.box[3]) - 1)
            shapes.append(dlib.full_object_detection(rect, [dlib.point(round(x), round(y)) for x, y in f.landmarks]))
        return shapes

    def _embed_shapes(self, arr: np.ndarray, shapes: Any) -> np.ndarray:
        if len(shapes) == 0:
            return np.zeros((0, EMBEDDING_DIM), np.float32)
        import dlib

        batch = shapes
        if not isinstance(shapes, dlib.full_object_detections):
            batch = dlib.full_object_detections()
            for s in shapes:
                batch.append(s)
        with load_model("resnet").use() as net:
            vecs = net.compute_face_descriptor(arr, batch, self.num_jitters)
        return np.asarray([np.asarray(v) for v in vecs], dtype=np.float32).reshape(-1, EMBEDDING_DIM)

    def embed(self, image: Any, faces: Sequence[Face]) -> np.ndarray:
        """128-d embeddings, shape ``(len(faces), 128)`` float32, of faces found in ``image``."""
        arr, _ = to_rgb_array(image, max_pixels=self.max_pixels)
        return self._embed_shapes(arr, self._shapes_for(faces))

    def embed_found(self, found: FoundFaces) -> np.ndarray:
        """Embeddings ``(len(found.faces), 128)`` float32 of faces from :meth:`find`, without decoding again."""
        return self._embed_shapes(found.pixels, found.shapes)

    def analyze(self, image: Any, **overrides: Any) -> tuple[FaceDetections, np.ndarray]:
        """Detect and embed in one pass: detections (largest first) and ``(n, 128)`` embeddings."""
        found = self.find(image, **overrides)
        return found.detections, self.embed_found(found)

    def align(self, image: Any, face: Face, *, size: int = 150, padding: float = 0.25) -> np.ndarray:
        """The aligned face chip the embedder sees: ``(size, size, 3)`` uint8 RGB.

        ``image`` may also be a :class:`FoundFaces` (its pixels are used, nothing is decoded).
        """
        import dlib

        arr = image.pixels if isinstance(image, FoundFaces) else to_rgb_array(image, max_pixels=self.max_pixels)[0]
        return np.asarray(dlib.get_face_chip(arr, self._shapes_for([face])[0], size=size, padding=padding))

    # -- verification --------------------------------------------------------------------------

    def largest_face(self, image: Any, **overrides: Any) -> tuple[Face, np.ndarray, int]:
        """The largest face in ``image``, its embedding ``(128,)`` and how many faces were found.

        Raises:
            NoFaceError: no face found.
        """
        dets, vecs = self.analyze(image, **overrides)
        if not len(dets):
            where = f"{dets.source}: " if dets.source else ""
            raise NoFaceError(f"{where}expected a face, found none in the {dets.width}x{dets.height} image.",
                              hint="use a photo where the face is frontal and at least 40 px wide, "
                                   "or raise upsample / use the cnn detector")
        return dets.faces[0], vecs[0], len(dets)

    def verify(self, image1: Any, image2: Any, *, threshold: float = DEFAULT_THRESHOLD) -> Verification:
        """Whether the largest face of each image is the same person.

        Returns:
            distance (euclidean, embeddings), the threshold used and ``same = distance <= threshold``.

        Raises:
            NoFaceError: an image has no face.
        """
        check_threshold(threshold)
        f1, v1, n1 = self.largest_face(image1)
        f2, v2, n2 = self.largest_face(image2)
        d = float(np.linalg.norm(v1.astype(np.float64) - v2.astype(np.float64)))
        return Verification(same=d <= threshold, distance=d, threshold=threshold, faces=(f1, f2),
                            faces_found=(n1, n2))


def draw_faces(image: Any, faces: Sequence[Face], labels: Sequence[str] | None = None, *,
               max_pixels: int = DEFAULT_MAX_PIXELS) -> "Image.Image":
    """A copy of ``image`` with boxes, landmarks and optional labels drawn on it."""
    from PIL import ImageDraw

    img = load_image(image, max_pixels=max_pixels).copy()
    draw = ImageDraw.Draw(img)
    line = max(2, round(min(img.size) / 250))
    for i, face in enumerate(faces):
        draw.rectangle([face.box[0], face.box[1], face.box[2] - 1, face.box[3] - 1], outline=(0, 230, 0), width=line)
        r = max(1, line)
        for x, y in face.landmarks:
            draw.ellipse([x - r, y - r, x + r, y + r], fill=(255, 40, 40))
        text = labels[i] if labels is not None else f"{face.score:.2f}"
        if text:
            tx, ty = face.box[0], max(0, face.box[1] - 12)
            bbox = draw.textbbox((tx, ty), text)
            draw.rectangle(bbox, fill=(0, 0, 0))
            draw.text((tx, ty), text, fill=(255, 255, 255))
    return img
