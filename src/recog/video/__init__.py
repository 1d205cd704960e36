"""Video files, camera streams and tracking: any task per frame, annotated video, JSONL events, live streams.

- :mod:`~recog.video.sources`: files (PyAV), streams and webcams (OpenCV, reconnect with backoff).
- :mod:`~recog.video.reader`: the latest-frame reader (bounded latency; stale frames dropped and counted).
- :mod:`~recog.video.run`: the loop (sampling, the model through its task, tracking, sinks) and its summary.
- :mod:`~recog.video.tracker`: ByteTrack-style multi-object tracking; :mod:`~recog.video.mot`: CLEAR-MOT scores.
- :mod:`~recog.video.events`, :mod:`~recog.video.writer`, :mod:`~recog.video.live`: the sinks.
- :mod:`~recog.video.faces`: dlib's face detector as the model of a run (``recog video faces SOURCE``).

The command is ``recog video`` (:mod:`recog.cli.video`); the live endpoint is
:mod:`recog.serve.routers.video`. Nothing here is imported by ``import recog``.
"""
