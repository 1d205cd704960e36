"""The public surface stays put, and importing recog stays cheap."""

from __future__ import annotations

import json
import subprocess
import sys

import recog

PUBLIC = {"Classification", "Label", "ModelInfo", "PredictionFailure", "Predictor", "Preprocessing", "__version__",
          "create_model", "errors", "evaluate", "list_presets", "load", "load_image", "train"}


def test_public_names_exist():
    assert PUBLIC <= set(recog.__all__)
    for name in recog.__all__:
        assert getattr(recog, name) is not None


def test_import_is_cheap():
    code = ("import sys, json, recog; "
            "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))")
    loaded = set(json.loads(subprocess.check_output([sys.executable, "-c", code], text=True)))
    heavy = {"torch", "cv2", "onnxruntime", "faiss", "transformers", "dlib", "fastapi", "matplotlib", "sklearn"}
    assert not (loaded & heavy), f"import recog loaded {loaded & heavy}"


def test_every_error_has_code_and_status():
    from recog import errors

    for obj in vars(errors).values():
        if isinstance(obj, type) and issubclass(obj, errors.RecogError):
            assert obj.code and 400 <= obj.http_status < 600
