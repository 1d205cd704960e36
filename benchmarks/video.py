"""Video figures: end-to-end frames/s and latency, bounded latency under a fast source, tracking scores.

Usage (from the repository root; the machine's load is printed with every figure)::

    python benchmarks/video.py throughput [--frames 120] [--threads 2]
    python benchmarks/video.py bounded    [--fps 60] [--seconds 6] [--threads 2]
    python benchmarks/video.py tracking   [--frames 600] [--objects 8]
    python benchmarks/video.py faces      [--frames 90]

* ``throughput``: :func:`recog.video.run.run_video` over a 640x480 H.264 clip (photographs moving
  over a photo), every frame in order, for a classifier (the ``efficientnet-lite0`` ready preset:
  ImageNet weights, 224 px) and a detector (FCOS on EfficientNet-Lite0 at 320 px, the architecture
  and input size ``benchmarks/detect.py`` trains on BCCD; built with random weights when no trained
  bundle is given with ``--detector``: the timing is the same, boxes are meaningless). Reports
  frames/s of the whole loop (decoding, the predictor, drawing, encoding the annotated video),
  per-frame latency (from the decoded frame to its result: preprocessing, model,
  postprocessing) p50/p95, and the predictor alone on one decoded frame (so the share
  of the frame time spent outside the model: decoding, drawing, encoding).
* ``bounded``: the same clip played in real time at ``--fps`` (faster than the model), once through
  the latest-frame reader (what ``recog video`` does with a live source) and once through an
  unbounded FIFO queue (what a naive reader does): latency p50/p95/max and frames dropped. With
  the reader the latency stays near one processing time; with the queue it grows with the run.
* ``tracking``: :class:`recog.video.tracker.ByteTracker` on a synthetic sequence with known
  trajectories (``--objects`` boxes moving at constant velocities, bouncing off the borders, so they
  cross often) seen by a simulated detector (2 px box jitter, 10 % of boxes missed, 20 % scored
  low as if occluded, 0.5 false positives per frame): CLEAR-MOT MOTA, MOTP, ID switches
  (:func:`recog.video.mot.clear_mot`), for ByteTrack and for the same tracker without its
  low-score round; scored again by ``motmetrics`` when it is installed (a cross-check of
  ``clear_mot``; its MOTP is a distance, reported here as ``1 - distance`` = mean IoU).
* ``faces``: the whole loop with a real detector: a 640x480 clip where two portraits (matplotlib's
  Grace Hopper, scikit-image's astronaut) cross, the front one hiding the other, run through
  ``recog video faces --track`` (dlib's HOG detector, :class:`~recog.video.faces.FaceFrameModel`);
  truth is each portrait's face box (found by the same detector on the portrait alone) moved with
  it; CLEAR-MOT as above.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3]) if Path("/proc/loadavg").is_file() else "n/a"


def render_clip(path: Path, *, frames: int, fps: int, size=(640, 480)) -> Path:
    """A 640x480 H.264 clip: scikit-image's cat and astronaut moving across its coffee photo."""
    import av
    from PIL import Image
    from skimage import data

    w, h = size
    background = np.asarray(Image.fromarray(data.coffee()).resize((w, h)))
    sprites = [np.asarray(Image.fromarray(getattr(data, n)()).resize((120, 120))) for n in ("chelsea", "astronaut")]
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=fps)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        for i in range(frames):
            img = background.copy()
            t = (i % 60) / 59
            for k, sp in enumerate(sprites):
                x = int((t if k == 0 else 1 - t) * (w - 120))
                img[100 + 180 * k:220 + 180 * k, x:x + 120] = sp
            for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(p)
        for p in s.encode(None):
            c.mux(p)
    return path


def models(args: argparse.Namespace) -> dict:
    import torch

    import recog
    from recog.models import save_bundle
    from recog.tasks import get_task

    out = {"classify (efficientnet-lite0, 224 px)": recog.load("efficientnet-lite0", threads=args.threads)}
    if args.detector:
        out[f"detect ({args.detector})"] = recog.load(args.detector, threads=args.threads)
    else:
        torch.manual_seed(0)
        created = get_task("detect").build("efficientnet-lite0", ["cell"], weights="none")
        bundle = save_bundle(Path(args.work) / "fcos-lite0", created.model, labels=["cell"],
                             preprocessing=created.preprocessing, task="detect", source_model="efficientnet-lite0")
        out["detect (FCOS-Lite0, 320 px, random weights)"] = recog.load(bundle, threads=args.threads)
    return out


def cmd_throughput(args: argparse.Namespace) -> dict:
    from recog.video.run import AnnotatedVideo, VideoOptions, run_video
    from recog.video.sources import open_source

    clip = render_clip(Path(args.work) / "clip640.mp4", frames=args.frames, fps=30)
    result = {"clip": f"640x480, {args.frames} frames", "threads": args.threads}
    for name, model in models(args).items():
        run_video(model, open_source(str(clip)), VideoOptions(max_frames=5))  # warm-up
        start_load = load()
        s = run_video(model, open_source(str(clip)), VideoOptions(),
                      sinks=[AnnotatedVideo(Path(args.work) / "out.mp4")]).to_dict()
        frame = np.asarray(open_source(str(clip)).read().image)
        alone = []
        for _ in range(20):  # the predictor alone on one decoded frame, in the same conditions
            t0 = time.perf_counter()
            model.predict(frame)
            alone.append(time.perf_counter() - t0)
        predict_ms = float(np.median(alone)) * 1000
        result[name] = {"fps": s["fps"], "latency_ms": s["latency_ms"], "frames": s["processed"],
                        "predict_alone_ms_p50": round(predict_ms, 1),
                        "pipeline_share_of_frame_time": round(1 - predict_ms / (1000 / s["fps"]), 3),
                        "load_start": start_load, "load_end": load()}
        print(name, result[name], flush=True)
    return result


class QueuedReader:
    """The naive alternative to :class:`~recog.video.reader.LatestFrameReader`: every frame queued (FIFO)."""

    def __init__(self, source) -> None:
        self.q: queue.Queue = queue.Queue()
        threading.Thread(target=self._run, args=(source,), daemon=True).start()

    def _run(self, source) -> None:
        while (f := source.read()) is not None:
            self.q.put(f)
        self.q.put(None)


def cmd_bounded(args: argparse.Namespace) -> dict:
    from recog.video.reader import LatestFrameReader
    from recog.video.sources import FileSource

    clip = render_clip(Path(args.work) / f"clip{args.fps}.mp4", frames=int(args.fps * args.seconds), fps=args.fps)
    model = models(args)["classify (efficientnet-lite0, 224 px)"]
    model.predict(np.zeros((480, 640, 3), np.uint8))
    result = {"clip": f"640x480 at {args.fps} fps for {args.seconds} s, played in real time",
              "model": "efficientnet-lite0 (classify)", "threads": args.threads}
    for variant in ("latest-frame reader", "FIFO queue"):
        start_load = load()
        src = FileSource(clip, realtime=True)
        latencies = []
        if variant == "latest-frame reader":
            reader = LatestFrameReader(src)
            take = reader.get
        else:
            take = QueuedReader(src).q.get
        while (frame := take()) is not None:
            model.predict(frame.image)
            latencies.append(time.monotonic() - frame.captured)
        lat = np.array(latencies) * 1000
        result[variant] = {"processed": len(lat), "dropped": int(args.fps * args.seconds) - len(lat),
                           "latency_ms": {q: round(float(np.percentile(lat, p)), 1)
                                          for q, p in (("p50", 50), ("p95", 95), ("max", 100))},
                           "load_start": start_load, "load_end": load()}
        print(variant, result[variant], flush=True)
    return result


def synthetic(frames: int, objects: int, seed: int = 0, size=(640, 480)):
    """Known trajectories (boxes bouncing off the borders) and what a noisy detector sees of them per frame."""
    rng = np.random.default_rng(seed)
    w, h = size
    wh = rng.uniform(40, 70, (objects, 2))
    pos = rng.uniform([0, 0], [w - 70, h - 70], (objects, 2))
    vel = rng.uniform(-6, 6, (objects, 2))
    for _ in range(frames):
        pos += vel
        for axis, limit in ((0, w), (1, h)):
            out = (pos[:, axis] < 0) | (pos[:, axis] + wh[:, axis] > limit)
            vel[out, axis] *= -1
            pos[:, axis] = np.clip(pos[:, axis], 0, limit - wh[:, axis])
        truth = np.hstack([pos, pos + wh])
        seen = rng.random(objects) > 0.10
        boxes = truth[seen] + rng.normal(0, 2.0, (seen.sum(), 4))
        scores = np.where(rng.random(seen.sum()) < 0.2, rng.uniform(0.15, 0.45, seen.sum()),
                          rng.uniform(0.6, 0.95, seen.sum()))
        n_fp = rng.poisson(0.5)
        fp_xy = rng.uniform([0, 0], [w - 60, h - 60], (n_fp, 2))
        boxes = np.vstack([boxes, np.hstack([fp_xy, fp_xy + 50])])
        scores = np.concatenate([scores, rng.uniform(0.2, 0.7, n_fp)])
        yield list(range(objects)), truth, boxes, scores


def cmd_tracking(args: argparse.Namespace) -> dict:
    from recog.video.mot import clear_mot
    from recog.video.tracker import ByteTracker

    result = {"sequence": f"{args.objects} objects, {args.frames} frames, 640x480, 2 px jitter, 10 % missed, "
                          f"20 % low-score, 0.5 false positives/frame", "load": load()}
    for name, tracker in (("ByteTrack (high 0.5, low 0.1)", ByteTracker()),
                          ("without the low-score round (low = high = 0.5)", ByteTracker(low=0.5))):
        frames = []
        for i, (ids, truth, boxes, scores) in enumerate(synthetic(args.frames, args.objects)):
            tracks = tracker.update(boxes, scores, np.zeros(len(boxes)), ["obj"] * len(boxes), frame=i)
            frames.append((ids, truth, [t.id for t in tracks], np.array([t.box for t in tracks]).reshape(-1, 4)))
        result[name] = clear_mot(frames).to_dict()
        result[name]["motmetrics"] = motmetrics_check(frames)
        print(name, result[name], flush=True)
    return result


def motmetrics_check(frames) -> dict | str:
    """The same sequence scored by ``motmetrics`` (py-motmetrics, the reference implementation), when installed."""
    try:
        import motmetrics as mm
    except ImportError:
        return "not installed (pip install motmetrics) to cross-check"
    from recog.detect.boxes import iou_matrix

    acc = mm.MOTAccumulator(auto_id=True)
    for truth_ids, truth_boxes, hyp_ids, hyp_boxes in frames:
        dist = 1 - iou_matrix(truth_boxes, hyp_boxes)
        dist[dist > 0.5] = np.nan   # IoU below 0.5 is no match, as in clear_mot
        acc.update(truth_ids, hyp_ids, dist)
    row = mm.metrics.create().compute(acc, metrics=["mota", "motp", "num_switches", "num_false_positives",
                                                    "num_misses"], name="seq").iloc[0]
    return {"mota": round(float(row["mota"]), 4), "motp": round(1 - float(row["motp"]), 4),
            "id_switches": int(row["num_switches"]), "false_positives": int(row["num_false_positives"]),
            "misses": int(row["num_misses"])}


def face_sprites() -> list[tuple[np.ndarray, np.ndarray]]:
    """Two portraits at 150x180 px and the face box the detector finds on each, alone on grey."""
    import matplotlib.cbook
    from PIL import Image
    from skimage import data

    from recog.video.faces import FaceFrameModel

    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as fh:
        hopper = Image.open(fh).convert("RGB")
    out = []
    for img in (hopper, Image.fromarray(data.astronaut()).crop((100, 0, 400, 360))):
        sprite = np.asarray(img.resize((150, 180)))
        canvas = np.full((360, 300, 3), 128, np.uint8)
        canvas[90:270, 75:225] = sprite
        (box,) = FaceFrameModel().predict(canvas).boxes
        out.append((sprite, box - np.array([75, 90, 75, 90])))
    return out


def cmd_faces(args: argparse.Namespace) -> dict:
    import av
    from PIL import Image
    from skimage import data

    from recog.video.faces import FaceFrameModel
    from recog.video.mot import clear_mot
    from recog.video.run import VideoOptions, run_video
    from recog.video.sources import open_source

    w, h = 640, 480
    background = np.asarray(Image.fromarray(data.coffee()).resize((w, h)))
    sprites = face_sprites()
    path, truth = Path(args.work) / "faces.mp4", []
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=15)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        for i in range(args.frames):
            t = i / (args.frames - 1)
            at = [(int(20 + t * (w - 190)), 60), (int(w - 170 - t * (w - 190)), 120)]  # crossing paths
            img = background.copy()
            boxes = []
            for (sprite, face), (x, y) in zip(sprites, at):   # the second one passes in front
                img[y:y + 180, x:x + 150] = sprite
                boxes.append(face + np.array([x, y, x, y]))
            truth.append(np.array(boxes))
            c.mux(s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
        c.mux(s.encode(None))

    class Collect:
        frames: list = []

        def add(self, item) -> None:
            self.frames.append((item.frame.index, item.tracks))

        def close(self, summary, ended=()) -> None:
            pass

    sink, start_load = Collect(), load()
    summary = run_video(FaceFrameModel(), open_source(str(path)), VideoOptions(track=True), sinks=[sink])
    scored = [([0, 1], truth[i], [t.id for t in tracks], np.array([t.box for t in tracks]).reshape(-1, 4))
              for i, tracks in sink.frames]
    result = {"clip": f"640x480, {args.frames} frames at 15 fps, two portraits crossing (the astronaut in front)",
              "detector": "dlib HOG (upsample 1) via recog video faces --track", "fps": round(summary.fps, 2),
              "tracks": summary.tracks, **clear_mot(scored).to_dict(), "motmetrics": motmetrics_check(scored),
              "load_start": start_load, "load_end": load()}
    print(result, flush=True)
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("what", choices=("throughput", "bounded", "tracking", "faces"))
    p.add_argument("--frames", type=int, default=None)
    p.add_argument("--fps", type=int, default=60)
    p.add_argument("--seconds", type=float, default=6.0)
    p.add_argument("--objects", type=int, default=8)
    p.add_argument("--detector", default=None, help="a trained detect bundle (default: FCOS-Lite0 with random weights)")
    p.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "2")))
    p.add_argument("--work", default="/tmp/recog-video-bench")
    args = p.parse_args()
    Path(args.work).mkdir(parents=True, exist_ok=True)
    args.frames = args.frames or {"throughput": 120, "tracking": 600, "faces": 90}.get(args.what, 0)
    result = {"throughput": cmd_throughput, "bounded": cmd_bounded, "tracking": cmd_tracking,
              "faces": cmd_faces}[args.what](args)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
