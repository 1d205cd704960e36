"""Sources with real decoders: PyAV files (whole, truncated, not video), the latest-frame reader, an OpenCV
stream over HTTP that drops and comes back."""

from __future__ import annotations

import http.server
import io
import logging
import re
import socketserver
import sys
import threading
import time

import numpy as np
import pytest

from recog.video.reader import LatestFrameReader
from recog.video.sources import FileSource, StreamSource, VideoError, display_name, open_source

from tests.video.clips import render_clip


def test_file_frames_in_order_with_times(clip):
    src = open_source(str(clip))
    frames = []
    while (f := src.read()) is not None:
        frames.append(f)
    src.close()
    assert [f.index for f in frames] == list(range(30))
    assert frames[0].image.shape == (240, 320, 3) and frames[0].image.dtype == np.uint8
    assert frames[15].time == pytest.approx(0.5, abs=1e-3)
    assert src.stopped == "end of file" and src.fps == pytest.approx(30)


def test_missing_unreadable_and_no_pyav_are_one_line_errors(tmp_path, monkeypatch):
    with pytest.raises(VideoError, match="no such video file"):
        open_source(str(tmp_path / "nope.mp4"))
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video at all" * 50)
    with pytest.raises(VideoError, match="not a video file PyAV can read") as err:
        open_source(str(junk))
    assert "\n" not in str(err.value)
    monkeypatch.setitem(sys.modules, "av", None)
    with pytest.raises(VideoError, match=r"pip install 'recog\[video\]'"):
        open_source(str(junk))


@pytest.mark.parametrize("suffix,options,expect", [
    (".mkv", {}, "file ends early"),                       # frames stop before the announced duration
    (".mp4", {"movflags": "faststart"}, "decode error|file ends early"),  # the index survives, the data does not
])
def test_truncated_file_keeps_readable_frames_and_says_where(tmp_path, suffix, options, expect):
    path = tmp_path / f"cut{suffix}"
    render_clip(path, frames=60, options=options)
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])
    src = FileSource(path)
    n = 0
    while src.read() is not None:
        n += 1
    assert 0 < n < 60
    assert re.search(expect, src.stopped)
    assert f"frame {n - 1}" in src.stopped


def test_latest_frame_reader_drops_stale_frames_and_latency_stays_bounded(tmp_path):
    path = tmp_path / "fast.mp4"
    render_clip(path, frames=60, fps=100)           # 0.6 s delivered at 100 fps
    reader = LatestFrameReader(FileSource(path, realtime=True))
    ages, taken = [], []
    while (frame := reader.get(timeout=5)) is not None:
        ages.append(time.monotonic() - frame.captured)
        taken.append(frame.index)
        time.sleep(0.05)                            # a consumer 5x slower than the source
    reader.close()
    assert reader.read == 60
    assert reader.dropped == 60 - len(taken) and reader.dropped > 30
    assert taken == sorted(taken) and taken[-1] >= 55   # it kept up with the newest frames
    # Queued, the last frame would wait ~60 x 50 ms = 3 s; kept-latest, every frame is fresh.
    assert max(ages) < 0.1


class _DroppingMjpeg(http.server.BaseHTTPRequestHandler):
    """An MJPEG camera that sends ``per_connection`` frames and hangs up; after ``connections`` it refuses."""

    per_connection = 5
    connections = 3
    served: list[int] = []

    def do_GET(self) -> None:
        from PIL import Image

        if len(self.served) >= self.connections:
            self.send_error(503)
            return
        self.served.append(0)
        self.send_response(200)
        self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
        self.end_headers()
        for i in range(self.per_connection):
            buf = io.BytesIO()
            Image.fromarray(np.full((48, 64, 3), 40 * i, np.uint8)).save(buf, format="JPEG")
            data = buf.getvalue()
            self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(data)
                             + data + b"\r\n")
            self.wfile.flush()
            self.served[-1] += 1
            time.sleep(0.01)

    def log_message(self, *args) -> None:
        pass


def test_stream_that_drops_reconnects_with_backoff_and_says_so(caplog):
    _DroppingMjpeg.served = []
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _DroppingMjpeg)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://user:secret@127.0.0.1:{server.server_address[1]}/cam.mjpg"
    try:
        with caplog.at_level(logging.WARNING, logger="recog.video"):
            src = StreamSource(url, retries=2, backoff=0.05)
            frames = []
            while (f := src.read()) is not None:
                frames.append(f)
            src.close()
    finally:
        server.shutdown()
        server.server_close()
    assert len(_DroppingMjpeg.served) == 3
    assert len(frames) >= 12 and [f.index for f in frames] == list(range(len(frames)))
    assert src.reconnects == 2
    assert "stream lost" in src.stopped
    messages = [r.getMessage() for r in caplog.records]
    assert sum("reconnecting in 0.1 s (attempt 2 of 2)" in m for m in messages) == 1
    assert sum("reconnected" in m for m in messages) == 2
    assert all("secret" not in m for m in messages)      # the URL's password never reaches the log


def test_display_name_masks_passwords_only():
    assert display_name("rtsp://cam.local/live") == "rtsp://cam.local/live"
    assert display_name("rtsp://admin:pw@cam.local:554/live") == "rtsp://admin:***@cam.local:554/live"


def test_a_stream_that_never_opens_is_a_one_line_error():
    from tests.serve.conftest import free_port

    url = f"http://127.0.0.1:{free_port()}/nothing-listens-here.mjpg"
    with pytest.raises(VideoError, match="cannot open stream") as err:
        open_source(url)
    assert "\n" not in str(err.value)
