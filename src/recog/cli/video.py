"""``recog video``: run a bundle over a video file, a camera stream or a webcam.

Progress goes to stderr: a bar on a terminal, a plain line every few seconds otherwise (logs);
reconnection attempts of a dropped stream are logged there too. The summary (frames read,
processed, dropped, fps, where reading stopped) is printed as one JSON line on stdout. The exit
code is non-zero only when nothing could be read.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Optional

import typer

#: Seconds between plain progress lines when stderr is not a terminal.
LOG_EVERY_S = 2.0


def register(app: typer.Typer) -> None:
    @app.command("video")
    def video_cmd(
        bundle: Path = typer.Argument(..., help="Model bundle (runs/NAME/best): any task; or `faces` for dlib's face detector."),
        source: str = typer.Argument(..., help="A video file, an rtsp:// or http(s):// stream, or a webcam index (0)."),
        out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write the annotated video here (.mp4, .mkv, .mov, .avi)."),
        events: Optional[Path] = typer.Option(None, "--events", help="Write JSON Lines events here (enter/leave per track, counts per second, summary)."),
        every: int = typer.Option(1, "--every", min=1, help="Process one frame in N."),
        track: bool = typer.Option(False, "--track", help="Track detected objects across frames (detect models)."),
        track_score: float = typer.Option(0.5, "--track-score", min=0.0, max=1.0, help="With --track: lowest score that starts or keeps a track (lower ones down to a fifth of it only keep tracks alive)."),
        max_latency: Optional[float] = typer.Option(None, "--max-latency", min=0.001, help="Latency budget in seconds: skip frames already older when the model gets to them (stale); count results later than it (late)."),
        realtime: bool = typer.Option(False, "--realtime", help="Play a file at its own frame rate, dropping frames the model has no time for (as a camera would)."),
        max_frames: Optional[int] = typer.Option(None, "--max-frames", min=1, help="Stop after processing this many frames."),
        min_score: Optional[float] = typer.Option(None, "--min-score", min=0.0, max=1.0, help="Detect models: lowest box score kept. [default: 0.3]"),
        threshold: Optional[float] = typer.Option(None, "--threshold", help="Anomaly models: score above which a frame fails. [default: the bundle's]"),
        backend: str = typer.Option("auto", help="auto | torch | onnx | onnx-int8"),
        retries: int = typer.Option(5, "--retries", min=0, help="Reconnection attempts of a dropped stream (backoff 0.5 s doubling to 8 s)."),
        live: bool = typer.Option(False, "--live", help="Also serve the annotated stream to the web page (/#video) and /v1/video/streams."),
        name: str = typer.Option("live", "--name", help="With --live: the stream's name."),
        host: str = typer.Option("127.0.0.1", "--host", help="With --live: address to bind; others need --api-keys."),
        port: int = typer.Option(8000, "--port", "-p", help="With --live: port."),
        api_keys: Optional[Path] = typer.Option(None, "--api-keys", help="With --live: hashed API key file (recog api-key add)."),
        collection: Optional[str] = typer.Option(None, "--collection", help="`faces`: identify each face against this collection (recog faces enroll); unmatched faces are `unknown`."),
        db: Optional[Path] = typer.Option(None, "--db", envvar="RECOG_FACES_DB", help="With --collection: the face store (SQLite). [default: ~/.recog/faces.db]"),
    ) -> None:
        """Run a model over video frames: annotated video, JSONL events, a live stream."""
        from recog.video.run import VideoOptions
        from recog.video.sources import VideoError

        predict = {k: v for k, v in (("min_score", min_score), ("threshold", threshold)) if v is not None}
        opts = VideoOptions(every=every, track=track, track_score=track_score, max_latency=max_latency,
                            max_frames=max_frames, predict=predict)
        serve = dict(name=name, host=host, port=port, api_keys=api_keys) if live else None
        handler = _log_to_stderr()
        try:
            summary, src = _run(bundle, source, opts, out=out, events=events, realtime=realtime, backend=backend,
                                retries=retries, serve=serve, faces={"collection": collection, "db": db})
        finally:
            logging.getLogger("recog.video").removeHandler(handler)
        typer.echo(json.dumps(summary.to_dict()))
        where = "" if summary.last_frame is None else f" at frame {summary.last_frame} ({summary.last_time:.2f} s)"
        typer.echo(f"stopped{where}: {summary.stopped}", err=True)
        if summary.frames_read == 0:
            raise VideoError(f"nothing could be read from {src.name}: {summary.stopped}.")


def _run(bundle: Path, source: str, opts, *, out: Path | None, events: Path | None, realtime: bool, backend: str,
         retries: int, serve: dict | None, faces: dict):
    """Load the model, check its task against the options, open the source and the sinks, run; (summary, source)."""
    import recog
    from recog.errors import ConfigError
    from recog.tasks import require_task
    from recog.video.events import EventLog
    from recog.video.faces import FACES_MODEL, FaceFrameModel
    from recog.video.run import AnnotatedVideo
    from recog.video.sources import open_source

    if str(bundle) == FACES_MODEL and not bundle.exists():
        model = FaceFrameModel(**faces)
    elif faces["collection"] is not None:
        raise ConfigError("--collection identifies faces; it goes with `recog video faces SOURCE`.",
                          hint=f"recog video faces {source} --collection {faces['collection']}")
    else:
        model = recog.load(bundle, backend=backend)
    if "min_score" in opts.predict:
        require_task(model.manifest, "detect", command="recog video --min-score")
    if "threshold" in opts.predict:
        require_task(model.manifest, "anomaly", command="recog video --threshold")
    if opts.track:
        require_task(model.manifest, "detect", command="recog video --track")
    src = open_source(source, realtime=realtime or serve is not None, retries=retries)
    sinks: list = []
    try:
        if out is not None:
            sinks.append(AnnotatedVideo(out, fps=(src.fps or 30.0) / (1 if src.live else opts.every)))
        if events is not None:
            sinks.append(EventLog(events, source=src.name, task=model.manifest.task, labels=model.labels))
    except BaseException:  # an output that cannot be written: release the source first
        src.close()
        raise
    if serve is not None:
        return _run_live(model, src, opts, sinks, bundle=bundle, **serve), src
    return _run_with_progress(model, src, opts, sinks), src


def _log_to_stderr() -> logging.Handler:
    """Plain ``recog.video: ...`` lines on stderr for the video logger (reconnections, progress) while a command runs."""
    logger = logging.getLogger("recog.video")
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    return handler


def _run_with_progress(model, src, opts, sinks, stop=None):
    """:func:`~recog.video.run.run_video` with a bar on a terminal, plain lines in a log."""
    from recog.cli.progress import console, make_progress
    from recog.video.run import run_video

    log = logging.getLogger("recog.video")
    if console.is_terminal:
        total = None if src.live or src.frame_count is None else src.frame_count
        with make_progress() as bar:
            task = bar.add_task("video", total=total, stats="")
            return run_video(model, src, opts, sinks=sinks, stop=stop,
                             progress=lambda s: bar.update(task, completed=s.frames_read,
                                                           stats=f"{s.processed} processed {s.fps:.1f} fps"))
    last = [time.monotonic()]

    def line(summary) -> None:
        if time.monotonic() - last[0] >= LOG_EVERY_S:
            last[0] = time.monotonic()
            log.info("%s", summary.line())

    summary = run_video(model, src, opts, sinks=sinks, progress=line, stop=stop)
    log.info("%s", summary.line())
    return summary


def _run_live(model, src, opts, sinks, *, bundle, name, host, port, api_keys):
    """Serve the service with this run as its live stream ``name``; the run starts once the server listens
    and goes on in a thread until the source ends or the server stops (Ctrl-C)."""
    import threading

    import uvicorn

    from recog.errors import ServiceError
    from recog.serve.app import create_app
    from recog.serve.settings import default_model_name, load_settings
    from recog.video.faces import FaceFrameModel
    from recog.video.live import LiveStream, attach_streams

    served = {} if isinstance(model, FaceFrameModel) else {default_model_name(bundle): str(bundle)}
    settings = load_settings(models=served, host=host, port=port, api_keys_file=api_keys)
    app = create_app(settings)
    stream = LiveStream(name, source=src.name, model=default_model_name(bundle))
    attach_streams(app, [stream])
    stop = threading.Event()
    result: list = []
    runner = threading.Thread(target=lambda: result.append(_run_with_progress(model, src, opts, [*sinks, stream],
                                                                               stop=stop)),
                              name="recog-video-run", daemon=True)

    class LiveServer(uvicorn.Server):
        async def startup(self, sockets=None) -> None:
            await super().startup(sockets)
            if self.started:
                typer.echo(f"live stream {name!r} at http://{settings.host}:{settings.port}/#video "
                           f"(MJPEG: /v1/video/streams/{name}/mjpeg); Ctrl-C stops", err=True)
                runner.start()

        def handle_exit(self, sig, frame) -> None:
            # Ctrl-C / SIGTERM stop the server and the run, which then closes its outputs and reports;
            # uvicorn would re-raise the signal after shutdown and skip that.
            self.force_exit = self.should_exit
            self.should_exit = True

    server = LiveServer(uvicorn.Config(app, host=settings.host, port=settings.port, log_level="warning",
                                       server_header=False, lifespan="on"))
    server.run()
    stop.set()
    if not runner.is_alive() and not result:
        src.close()
        raise ServiceError(f"the server could not start on {settings.host}:{settings.port} (see the log above).",
                           hint="pick another --port")
    runner.join()
    return result[0]
