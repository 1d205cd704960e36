"""The live annotated stream: the router in process (names, limits, keys) and ``recog video --live`` as a real
server process on loopback, read as MJPEG over HTTP."""

from __future__ import annotations

import io
import json
import re
import os
import signal
import subprocess
import sys
import time

import httpx
import numpy as np
import pytest

from tests.serve.conftest import free_port, serving, settings_for
from tests.video.clips import render_clip


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def scratch_faces_db(tmp_path, monkeypatch):
    """The service opens its face store at start: a scratch one, never the user's."""
    monkeypatch.setenv("RECOG_FACES_DB", str(tmp_path / "faces.db"))


def jpeg_parts(body: bytes) -> list[bytes]:
    """The JPEG payloads of a ``multipart/x-mixed-replace; boundary=frame`` body, cut by Content-Length."""
    parts, pos = [], 0
    while (start := body.find(b"--frame\r\n", pos)) != -1:
        head_end = body.index(b"\r\n\r\n", start)
        headers = dict(line.split(": ", 1) for line in body[start + 9:head_end].decode().split("\r\n"))
        assert headers["Content-Type"] == "image/jpeg"
        n = int(headers["Content-Length"])
        parts.append(body[head_end + 4:head_end + 4 + n])
        pos = head_end + 4 + n
    return parts


def published(name: str, frames: int = 2, **kw):
    """A finished LiveStream that processed ``frames`` 64x48 frames."""
    from recog.types import Classification, Label
    from recog.video.live import LiveStream
    from recog.video.run import Processed, VideoSummary
    from recog.video.sources import Frame

    stream = LiveStream(name, source="camera-1", model="tiny", **kw)
    for i in range(frames):
        stream.add(Processed(Frame(i, i / 10, np.full((48, 64, 3), 60 * i, np.uint8), time.monotonic()),
                             Classification(top=(Label("cat", 0, 0.9),))))
    stream.close(VideoSummary(source="camera-1", stopped="end of file"))
    return stream


@pytest.mark.anyio
async def test_streams_are_listed_served_by_name_and_capped(tiny_bundle):
    from PIL import Image

    from recog.video.live import attach_streams

    async with serving(settings_for(tiny_bundle)) as (app, client):
        assert (await client.get("/v1/video/streams")).json() == {"streams": []}
        attach_streams(app, [published("door"), published("full", max_viewers=0)])
        listed = (await client.get("/v1/video/streams")).json()["streams"]
        assert [(s["name"], s["frames"], s["running"], s["stopped"]) for s in listed] == \
            [("door", 2, False, "end of file"), ("full", 2, False, "end of file")]
        resp = await client.get("/v1/video/streams/door/mjpeg")
        assert resp.status_code == 200
        assert resp.headers["content-type"] == "multipart/x-mixed-replace; boundary=frame"
        (jpeg,) = jpeg_parts(resp.content)           # a finished stream sends its newest frame, then ends
        assert Image.open(io.BytesIO(jpeg)).size == (64, 48) and resp.content.endswith(b"--frame--\r\n")
        missing = await client.get("/v1/video/streams/garage/mjpeg")
        assert missing.status_code == 404 and "this server streams: door, full" in missing.json()["detail"]
        assert (await client.get("/v1/video/streams/rtsp%3A%2F%2Fevil/mjpeg")).status_code == 404  # no URLs
        assert (await client.get("/v1/video/streams/full/mjpeg")).status_code == 429


@pytest.mark.anyio
async def test_streams_need_the_key_when_the_service_has_keys(tiny_bundle, tmp_path):
    from recog.serve.auth import add_key
    from recog.video.live import attach_streams

    key = add_key(tmp_path / "keys.txt", name="viewer", role="user")
    async with serving(settings_for(tiny_bundle, api_keys_file=tmp_path / "keys.txt")) as (app, client):
        attach_streams(app, [published("door")])
        assert (await client.get("/v1/video/streams/door/mjpeg")).status_code == 401
        ok = await client.get("/v1/video/streams/door/mjpeg", headers={"Authorization": f"Bearer {key}"})
        assert ok.status_code == 200 and len(jpeg_parts(ok.content)) == 1


class LiveProcess:
    """``recog video BUNDLE CLIP --live --name door`` on a free loopback port (an 8 s clip played in real time)."""

    def __init__(self, bundle, tmp_path) -> None:
        clip = tmp_path / "long.mp4"
        render_clip(clip, frames=80, fps=10)
        self.clip = clip
        self.url = f"http://127.0.0.1:{free_port()}"
        self.proc = subprocess.Popen([sys.executable, "-m", "recog", "video", str(bundle), str(clip), "--live",
                                      "--port", self.url.rsplit(":", 1)[1], "--name", "door"],
                                     env={**os.environ, "HF_HUB_OFFLINE": "1"}, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)

    def wait_ready(self, client: httpx.Client, timeout: float = 90) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            assert self.proc.poll() is None, self.proc.stderr.read().decode()
            try:
                if client.get(f"{self.url}/readyz").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)  # polling interval while the process starts
        raise AssertionError(f"not ready within {timeout} s")

    def interrupt(self) -> tuple[int, str, str]:
        """Ctrl-C; returns (exit code, stdout, stderr)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            out, err = self.proc.communicate(timeout=30)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode, out.decode(), err.decode()


@pytest.mark.slow
def test_recog_video_live_serves_mjpeg_over_real_http(tiny_bundle, tmp_path):
    from PIL import Image

    live = LiveProcess(tiny_bundle, tmp_path)
    try:
        with httpx.Client(timeout=10.0) as client:
            live.wait_ready(client)
            (listed,) = client.get(f"{live.url}/v1/video/streams").json()["streams"]
            assert listed["name"] == "door" and listed["running"] and listed["source"] == str(live.clip)
            body = b""
            with client.stream("GET", f"{live.url}/v1/video/streams/door/mjpeg") as resp:
                assert resp.status_code == 200
                for chunk in resp.iter_bytes():
                    body += chunk
                    if len(jpeg_parts(body[:body.rfind(b"--frame")])) >= 3:
                        break
            frames = [np.asarray(Image.open(io.BytesIO(j))) for j in jpeg_parts(body[:body.rfind(b"--frame")])]
            assert len(frames) >= 3 and frames[0].shape == (240, 320, 3)
            assert np.abs(frames[0].astype(int) - frames[-1]).mean() > 1     # the video moves
    finally:
        code, out, err = live.interrupt()
    assert code == 0, err
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["processed"] >= 3 and summary["stopped"] in ("interrupted", "end of file")
    assert "live stream 'door' at http://127.0.0.1:" in err


@pytest.mark.slow
@pytest.mark.browser
def test_the_page_shows_the_live_stream(tiny_bundle, tmp_path):
    chromium = "/usr/bin/chromium"
    if not os.path.exists(chromium):
        pytest.skip(f"{chromium} not found; run `python scripts/ensure_chromium.py` (make test does)")
    from playwright.sync_api import expect, sync_playwright

    live = LiveProcess(tiny_bundle, tmp_path)
    try:
        with httpx.Client(timeout=10.0) as client:
            live.wait_ready(client)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
            page = browser.new_page()
            errors = []
            page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
            page.goto(live.url + "/#video")
            page.wait_for_selector("#stream option[value='door']", state="attached", timeout=15_000)
            # locator assertions poll from Python: a string predicate would be eval'd, which the page's CSP forbids
            expect(page.locator("#live-frame")).to_have_attribute("src", re.compile(r"^blob:"), timeout=15_000)
            expect(page.locator("#live-info")).to_have_text(re.compile(r"door: ([3-9]\d*|\d{2,}) frames"),
                                                            timeout=15_000)
            assert page.locator("#drop").is_hidden() and page.locator("#error").is_hidden()
            deadline = time.monotonic() + 15  # a new blob src decodes a moment after it is set: poll
            while (width := page.evaluate("document.getElementById('live-frame').naturalWidth")) == 0:
                if time.monotonic() > deadline:
                    break
                page.wait_for_timeout(100)
            page.select_option("#mode", "classify")                # leaving the mode stops reading the stream
            assert page.locator("#drop").is_visible()
            browser.close()
        assert errors == [], errors                                # no CSP violation, no script error
        assert width == 320
    finally:
        live.interrupt()
