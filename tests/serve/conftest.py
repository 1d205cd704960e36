"""Service test helpers: an in-process app with its lifespan, a real uvicorn process, bad inputs."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
import zlib
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import httpx
import pytest

READY_TIMEOUT_S = 90.0


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session", autouse=True)
def faces_db(tmp_path_factory):
    """The service opens its face store at startup: point every app and server process at a scratch one."""
    path = tmp_path_factory.mktemp("faces") / "faces.db"
    before = os.environ.get("RECOG_FACES_DB")
    os.environ["RECOG_FACES_DB"] = str(path)
    yield path
    if before is None:
        os.environ.pop("RECOG_FACES_DB", None)
    else:
        os.environ["RECOG_FACES_DB"] = before


@asynccontextmanager
async def serving(settings):
    """The app for ``settings`` with its lifespan running, and an ASGI-transport client."""
    from recog.serve import create_app

    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as client:
            yield app, client


def settings_for(bundle: Path, **kw):
    from recog.serve import load_settings

    return load_settings(models={"tiny": str(bundle)}, env={}, **kw)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """``python -m recog.serve ...`` on a free loopback port."""

    def __init__(self, args: list[str], *, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        full_env = {**os.environ, "HF_HUB_OFFLINE": "1", "RECOG_SERVE_LOG_LEVEL": "warning", **(env or {})}
        self.proc = subprocess.Popen([sys.executable, "-m", "recog.serve", *args, "--port", str(self.port)],
                                     env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> None:
        """Poll /readyz until 200 (bounded); fail with the server's output if it dies or times out."""
        end = time.monotonic() + timeout
        with httpx.Client(timeout=2.0) as client:
            while time.monotonic() < end:
                if self.proc.poll() is not None:
                    out = self.proc.stdout.read().decode(errors="replace") if self.proc.stdout else ""
                    raise AssertionError(f"server exited with {self.proc.returncode}:\n{out[-3000:]}")
                try:
                    if client.get(f"{self.url}/readyz").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                time.sleep(0.1)  # polling interval, not synchronisation: readiness is checked above
        self.stop()
        raise AssertionError(f"server not ready within {timeout} s")

    def output(self) -> str:
        return self.proc.stdout.read().decode(errors="replace") if self.proc.stdout else ""

    def stop(self, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode


@contextmanager
def server_process(args: list[str], **kw):
    server = ServerProcess(args, **kw)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def live_server(tiny_bundle, tmp_path_factory):
    """One real server (no API keys) shared by the read-only real-process tests."""
    bundle = tmp_path_factory.mktemp("live") / "tiny"
    shutil.copytree(tiny_bundle, bundle)
    with server_process([str(bundle), "--name", "tiny"]) as server:
        yield server


def png_claiming(width: int, height: int) -> bytes:
    """A small, valid-looking PNG whose header claims ``width x height`` pixels (a decompression bomb)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
            + chunk(b"IEND", b""))


SVG = b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64"><rect width="64" height="64"/></svg>\n'


@pytest.fixture(scope="session")
def bad_uploads(photos) -> dict[str, tuple[str, bytes, int, str]]:
    """name → (filename, bytes, expected status, expected code) for one multipart file part."""
    jpeg = photos["chelsea"].read_bytes()
    return {
        "empty file": ("empty.jpg", b"", 422, "corrupt_image"),
        "truncated jpeg": ("cut.jpg", jpeg[: len(jpeg) // 3], 422, "corrupt_image"),
        "text named .jpg": ("notes.jpg", b"shopping list: milk, eggs, bread\n" * 20, 415, "unsupported_format"),
        "svg": ("drawing.svg", SVG, 415, "unsupported_format"),
        "png claiming 50000x50000": ("bomb.png", png_claiming(50_000, 50_000), 413, "image_too_large"),
    }
