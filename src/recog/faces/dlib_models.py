"""The pretrained dlib face models: where their files are and how they load.

The files come from the ``face_recognition_models`` package and are located by
path, without importing it (its ``__init__`` needs ``pkg_resources``). A
folder named by ``RECOG_FACE_MODELS_DIR`` takes precedence, for machines that
keep the ``.dat`` files elsewhere.

Models (all from dlib, http://dlib.net):

==========  =============================================  =============================
name        file                                           what
==========  =============================================  =============================
hog         (built into dlib)                              frontal HOG + linear SVM detector
cnn         mmod_human_face_detector.dat                   CNN (MMOD) detector, slower, more poses
landmarks5  shape_predictor_5_face_landmarks.dat           5-point landmarks for alignment
resnet      dlib_face_recognition_resnet_model_v1.dat      ResNet, 128-d embedding; 99.38% on LFW at 0.6
==========  =============================================  =============================

The 68-point landmark model is deliberately not used: its training data
(iBUG 300-W) carries a non-commercial licence.

Each model loads once per process (:func:`load_model`) into a small pool:
dlib releases the GIL while it computes but one model object must not be
called from two threads at once (see :class:`ModelPool`).
"""

from __future__ import annotations

import importlib.util
import os
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

from recog.errors import ConfigError, ModelNotFoundError

MODEL_FILES = {
    "cnn": "mmod_human_face_detector.dat",
    "landmarks5": "shape_predictor_5_face_landmarks.dat",
    "resnet": "dlib_face_recognition_resnet_model_v1.dat",
}

#: Identifier of the embedder, stored with each collection so that vectors
#: from different embedders are never compared.
EMBEDDER_ID = "dlib_face_recognition_resnet_model_v1"

#: Length of one face embedding.
EMBEDDING_DIM = 128

#: dlib's published operating point for the ResNet embedder: two faces are the
#: same person when the euclidean distance of their embeddings is at most 0.6
#: (99.38% accuracy on LFW, http://dlib.net/face_recognition.py.html).
DEFAULT_THRESHOLD = 0.6


def check_threshold(threshold: float) -> float:
    """Validate a euclidean distance threshold (dlib's embeddings have norms of about 1.2-1.6)."""
    if not (0.0 < float(threshold) <= 4.0):
        raise ConfigError(f"threshold must be a euclidean distance in (0, 4], got {threshold}.",
                          hint=f"dlib's operating point is {DEFAULT_THRESHOLD}; lower is stricter")
    return float(threshold)

_INSTALL_HINT = "pip install face-recognition-models (or set RECOG_FACE_MODELS_DIR to a folder holding the .dat files)"


def models_dir() -> Path:
    """Folder holding the dlib ``.dat`` files.

    Raises:
        ModelNotFoundError: neither ``RECOG_FACE_MODELS_DIR`` nor the
            ``face_recognition_models`` package is there.
    """
    override = os.environ.get("RECOG_FACE_MODELS_DIR")
    if override:
        path = Path(override)
        if not path.is_dir():
            raise ModelNotFoundError(f"RECOG_FACE_MODELS_DIR={override} is not a folder.", hint=_INSTALL_HINT)
        return path
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFoundError("the face models package 'face_recognition_models' is not installed.",
                                 hint=_INSTALL_HINT)
    return Path(list(spec.submodule_search_locations)[0]) / "models"


def model_path(name: str) -> Path:
    """Path of one model file (``cnn``, ``landmarks5`` or ``resnet``).

    Example:
        >>> model_path("resnet").name                  # doctest: +SKIP
        'dlib_face_recognition_resnet_model_v1.dat'
    """
    if name not in MODEL_FILES:
        raise ModelNotFoundError(f"unknown face model {name!r}; expected one of {', '.join(MODEL_FILES)}.")
    path = models_dir() / MODEL_FILES[name]
    if not path.is_file():
        raise ModelNotFoundError(f"face model file {path} is missing.", hint=_INSTALL_HINT)
    return path


def _import_dlib() -> Any:
    try:
        import dlib
    except ImportError as exc:  # pragma: no cover - dlib-bin is a dependency
        raise ModelNotFoundError("dlib is not installed.", hint="pip install dlib-bin") from exc
    return dlib


class ModelPool:
    """Instances of one dlib model, each used by one thread at a time.

    dlib releases the GIL while it computes, so several threads can run at
    once, but one model object must not be called concurrently. The pool
    creates instances on demand, at most ``size`` of them (the CPU count by
    default), and hands each to one caller at a time.

    Example:
        >>> with load_model("hog").use() as detector:      # doctest: +SKIP
        ...     rects = detector(rgb_array, 1)
    """

    def __init__(self, name: str, factory: Callable[[], Any], size: int | None = None) -> None:
        self.name = name
        self._factory = factory
        self._size = max(1, size or os.cpu_count() or 1)
        self._free: list[Any] = [factory()]  # load one now so a missing file fails at load time
        self._created = 1
        self._cond = threading.Condition()

    @contextmanager
    def use(self) -> Iterator[Any]:
        with self._cond:
            while not self._free and self._created >= self._size:
                self._cond.wait()
            if self._free:
                model = self._free.pop()
            else:
                self._created += 1
                model = None
        if model is None:
            try:
                model = self._factory()
            except BaseException:
                with self._cond:
                    self._created -= 1
                    self._cond.notify()
                raise
        try:
            yield model
        finally:
            with self._cond:
                self._free.append(model)
                self._cond.notify()


_CACHE: dict[str, ModelPool] = {}
_CACHE_LOCK = threading.Lock()


def _factory(name: str) -> Callable[[], Any]:
    dlib = _import_dlib()
    if name == "hog":
        return dlib.get_frontal_face_detector
    if name in MODEL_FILES:
        path = str(model_path(name))
        cls = {"cnn": dlib.cnn_face_detection_model_v1, "landmarks5": dlib.shape_predictor,
               "resnet": dlib.face_recognition_model_v1}[name]
        return lambda: cls(path)
    raise ModelNotFoundError(f"unknown face model {name!r}; expected hog, cnn, landmarks5 or resnet.")


def load_model(name: str) -> ModelPool:
    """The pool of ``hog``, ``cnn``, ``landmarks5`` or ``resnet`` models (created once per process)."""
    with _CACHE_LOCK:
        if name not in _CACHE:
            _CACHE[name] = ModelPool(name, _factory(name))
        return _CACHE[name]
