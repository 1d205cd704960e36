"""The recognition service: FastAPI app, dynamic batching, API keys, metrics, web page.

Example:
    >>> from recog.serve import run_server
    >>> run_server({"pets": "runs/pets/best"})          # doctest: +SKIP  (http://127.0.0.1:8000)

Pieces: :mod:`~recog.serve.settings` (configuration), :mod:`~recog.serve.app`
(``create_app``, the lifespan), :mod:`~recog.serve.deps` (state, API keys,
deadline, admission), :mod:`~recog.serve.routers` (one per domain: models,
faces, ops, docs, web), :mod:`~recog.serve.pool` (loaded models, hot reload),
:mod:`~recog.serve.batching`, :mod:`~recog.serve.inputs` (request bodies),
:mod:`~recog.serve.decoding` (untrusted decodes in processes a deadline can stop),
:mod:`~recog.serve.guard` (Host and Origin checks, draining),
:mod:`~recog.serve.auth`, :mod:`~recog.serve.metrics`, :mod:`~recog.serve.problems`
(errors → problem+json, server paths redacted), :mod:`~recog.serve.server` (uvicorn, graceful drain).
"""

from __future__ import annotations

from typing import Any

#: public name -> the module that defines it (imported on first use).
_LAZY = {"create_app": "recog.serve.app", "run_server": "recog.serve.server",
         **dict.fromkeys(("Settings", "ModelSpec", "load_settings"), "recog.serve.settings")}

__all__ = ["ModelSpec", "Settings", "create_app", "load_settings", "run_server"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'recog.serve' has no attribute {name!r}")
