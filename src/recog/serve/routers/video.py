"""``/v1/video/streams``: live annotated video for the web page (MJPEG).

The server streams only the sources it was started with (``recog video BUNDLE SOURCE --live``);
clients pick one by name and can never make the server open a URL or a camera. The routes need an
API key when the service has a key file (like every ``/v1`` route); each stream serves at most
``max_viewers`` viewers at once (429 beyond), and every viewer gets the newest frame, so a slow
viewer skips frames instead of holding the run back.

The MJPEG body is ``multipart/x-mixed-replace; boundary=frame``; each part carries
``Content-Type: image/jpeg`` and ``Content-Length``, so a page can read it with ``fetch`` (which
can send the key header, unlike ``<img src>``) and cut the parts by length.
"""

from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import StreamingResponse

from recog.errors import NotFoundError, OverloadedError
from recog.serve.deps import require_key
from recog.serve.problems import problem_responses
from recog.video.live import LiveStream, streams_of

router = APIRouter(prefix="/v1/video", tags=["video"], dependencies=[Depends(require_key)],
                   responses=problem_responses(401, 404, 429))

BOUNDARY = "frame"
#: How often a viewer checks for a newer frame (seconds).
POLL_S = 0.01


@router.get("/streams", summary="Live annotated streams this server was started with")
async def list_streams(request: Request) -> dict[str, Any]:
    return {"streams": [s.describe() for s in streams_of(request.app).values()]}


def _stream(request: Request, name: str) -> LiveStream:
    streams = streams_of(request.app)
    if name not in streams:
        raise NotFoundError(f"no live stream named {name!r}; this server streams: {', '.join(streams) or 'none'}.",
                            hint="start one with `recog video BUNDLE SOURCE --live`")
    return streams[name]


@router.get("/streams/{name}/mjpeg", summary="A live stream as MJPEG (multipart/x-mixed-replace)",
            response_class=StreamingResponse,
            responses={200: {"content": {f"multipart/x-mixed-replace; boundary={BOUNDARY}": {}}}})
async def mjpeg(request: Request, name: str = Path(..., description="stream name, as listed")) -> StreamingResponse:
    """The newest annotated frame each time one is processed, until the run ends or the viewer leaves."""
    stream = _stream(request, name)
    if stream.viewers >= stream.max_viewers:
        raise OverloadedError(f"live stream {name!r} has its {stream.max_viewers} viewers.", retry_after=5.0,
                              hint="retry later, or close another viewer")
    return StreamingResponse(_parts(stream), media_type=f"multipart/x-mixed-replace; boundary={BOUNDARY}",
                             headers={"Cache-Control": "no-store"})


async def _parts(stream: LiveStream) -> AsyncIterator[bytes]:
    # counted here, not in the route: a client gone before the body starts never holds a slot
    sent = 0
    stream.viewers += 1
    try:
        while True:
            if stream.seq > sent:
                sent, data = await asyncio.to_thread(stream.jpeg)
                yield (f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(data)}\r\n\r\n"
                       .encode() + data + b"\r\n")
            elif stream.finished:
                yield f"--{BOUNDARY}--\r\n".encode()
                return
            else:
                await asyncio.sleep(POLL_S)
    finally:
        stream.viewers -= 1
