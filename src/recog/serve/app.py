"""The FastAPI application factory.

Example:
    >>> from recog.serve import create_app, load_settings
    >>> app = create_app(load_settings(models={"pets": "runs/pets/best"}))   # doctest: +SKIP
    >>> # uvicorn.run(app)  -- or recog.serve.run_server({"pets": "runs/pets/best"})

Models load (and warm), the decode processes start and the face store opens
in the lifespan, so building the app is instant and a test can inspect an app
that is not ready yet. The app holds a :class:`ServiceState`; routes reach it
through :func:`recog.serve.deps.state_of`.

Routers are the list :data:`ROUTERS`: a new domain is one module in
``serve/routers/`` and one entry there. Middleware, outermost first: the edge
(body cap, metrics, security headers), the guard (Host, Origin of writes,
``Connection: close`` while draining; :mod:`recog.serve.guard`), CORS when
configured.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass

from typing import TYPE_CHECKING

from recog.serve.auth import KeyStore
from recog.serve.decoding import DecodePool
from recog.serve.metrics import EdgeMiddleware, ServeMetrics
from recog.serve.pool import ModelPool
from recog.serve.routers import docs, faces, web
from recog.serve.routers.faces import FacesService
from recog.serve.settings import Settings

if TYPE_CHECKING:
    from recog.monitor.log import PredictionLog

log = logging.getLogger("recog.serve")

#: Modules of ``recog.serve.routers`` whose ``router`` the app includes, in this order:
#: a new domain is one line here.
ROUTERS = [
    "models",
    "explain",
    "faces",
    "search",
    "ops",
    "monitor",
    "video",
    "docs",
    "web",
]


@dataclass(eq=False)
class ServiceState:
    """Everything the routes share: settings, models, face recognition, keys, metrics, readiness."""

    settings: Settings
    metrics: ServeMetrics
    pool: ModelPool
    keys: KeyStore | None
    executor: ThreadPoolExecutor | None = None
    decoder: DecodePool | None = None
    faces: FacesService | None = None
    prediction_log: "PredictionLog | None" = None
    ready: bool = False
    draining: bool = False


def create_app(settings: Settings):
    """Build the service for ``settings``; models load and the face store opens when the app's lifespan starts.

    Raises:
        ConfigError: bad API key file (checked now, not at the first request).
    """
    from fastapi import FastAPI
    from fastapi.staticfiles import StaticFiles

    from recog import __version__
    from recog.monitor.log import open_log
    from recog.serve.guard import GuardMiddleware
    from recog.serve.problems import Redactor, install_handlers

    metrics = ServeMetrics()
    keys = KeyStore.from_file(settings.api_keys_file) if settings.api_keys_file else None
    state = ServiceState(settings=settings, metrics=metrics, pool=ModelPool(settings, metrics), keys=keys)

    @asynccontextmanager
    async def lifespan(app):
        for warning in settings.warnings():
            log.warning("%s", warning)
        state.executor = ThreadPoolExecutor(max_workers=settings.preprocess_workers,
                                            thread_name_prefix="recog-faces")
        state.decoder = DecodePool(settings.preprocess_workers)
        try:
            await state.decoder.start()
            state.faces = await asyncio.to_thread(faces.open_faces, settings, state.executor, state.decoder)
            await state.pool.load_all()
            state.prediction_log = open_log(settings, metrics.registry)
            state.ready = True
            log.info("ready: %d model(s) %s", len(state.pool.models), ", ".join(state.pool.models))
            yield
        finally:
            state.ready = False
            state.draining = True
            await state.pool.close()
            if state.prediction_log is not None:
                await asyncio.to_thread(state.prediction_log.close)
            state.executor.shutdown(wait=True, cancel_futures=True)
            await state.decoder.close()
            if state.faces is not None:
                state.faces.close()

    app = FastAPI(title="recog", version=__version__, lifespan=lifespan,
                  description="Image recognition service: classify and embed images with the models loaded here, "
                              "and detect, verify and identify faces (API key needed). "
                              "Errors are application/problem+json with a stable `code`.",
                  docs_url=None, redoc_url=None,  # /docs is served from the package: routers/docs.py
                  openapi_url="/openapi.json" if settings.docs else None)
    app.state.recog = state
    install_handlers(app, Redactor.for_settings(settings))
    for name in ROUTERS:
        app.include_router(importlib.import_module(f"recog.serve.routers.{name}").router)
    app.mount("/static", StaticFiles(directory=str(web.static_dir())), name="static")
    if settings.docs:
        docs.mount_assets(app)

    if settings.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(settings.cors_origins),
                           allow_methods=["GET", "POST", "DELETE"],
                           allow_headers=["Authorization", "X-API-Key", "Content-Type", "X-Request-Timeout"],
                           allow_credentials=False)
    app.add_middleware(GuardMiddleware, state=state)
    app.add_middleware(EdgeMiddleware, metrics=metrics, max_body_bytes=settings.max_body_bytes)
    return app
