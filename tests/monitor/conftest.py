"""Monitor fixtures: one small classifier trained on real MNIST digits (with its reference), shared."""

from __future__ import annotations

from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest


@pytest.fixture(scope="session")
def digits_model(digits_tree, tmp_path_factory) -> Path:
    """resnet-micro trained 3 epochs on 3 MNIST classes: ``best/`` carries a reference."""
    from recog.engine.config import load_config
    from recog.engine.train import train

    out = tmp_path_factory.mktemp("monitor-run") / "digits"
    res = train(load_config({"data": str(digits_tree / "train"), "model": "resnet-micro", "epochs": 3,
                             "batch_size": 16, "augment": "none", "lr": 5e-3, "val_split": 0.3,
                             "test_split": 0.0, "out": str(out)}))
    return res.best


@pytest.fixture
def writable_digits(digits_model, photos, tmp_path) -> tuple[Path, Path]:
    """``(bundle, ood)``: a copy of the digits bundle a test may change, and a folder of the photos."""
    import shutil

    bundle = tmp_path / "digits"
    shutil.copytree(digits_model, bundle)
    ood = tmp_path / "photos"
    ood.mkdir()
    for p in photos.values():
        shutil.copy(p, ood / p.name)
    return bundle, ood


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def serving():
    """``async with serving(bundle, tmp_path, **settings) as (app, client)``."""
    return _serving


@asynccontextmanager
async def _serving(bundle, tmp_path, **kw):
    """The app serving ``bundle`` as ``digits`` with its lifespan running, and an ASGI client."""
    from recog.serve import create_app, load_settings

    settings = load_settings(models={"digits": str(bundle)}, env={}, faces_db=tmp_path / "faces.db", **kw)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000", timeout=60) as client:
            yield app, client
