"""``recog video`` and :func:`run_video` end to end with real models, real PyAV decoding and encoding."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.cli.test_cli_end_to_end import run_cli
from tests.video.clips import render_clip, render_face_clip


def decoded(path):
    import av

    with av.open(str(path)) as c:
        return [(f.time, f.to_ndarray(format="rgb24")) for f in c.decode(video=0)]


def read_events(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_file_to_annotated_video_and_events(tiny_bundle, clip, tmp_path, capsys):
    out, events = tmp_path / "annotated.mp4", tmp_path / "events.jsonl"
    code, stdout, stderr = run_cli(["video", tiny_bundle, clip, "--out", out, "--events", events, "--every", "2"],
                                   capsys)
    assert code == 0, stderr
    summary = json.loads(stdout)
    assert (summary["frames_read"], summary["processed"], summary["skipped"], summary["dropped"]) == (30, 15, 15, 0)
    assert summary["stopped"] == "end of file" and summary["last_frame"] == 28
    assert "15 frames processed of 30 read" in stderr and "stopped at frame 28 (0.93 s)" in stderr

    frames = decoded(out)
    assert len(frames) == 15 and frames[0][1].shape == (240, 320, 3)
    assert [round(t, 3) for t, _ in frames[:3]] == [0.0, 0.067, 0.133]   # source times of frames 0, 2, 4
    source = decoded(clip)
    assert np.abs(frames[0][1][:14, :60].astype(int) - source[0][1][:14, :60]).mean() > 30   # the label is drawn

    ev = read_events(events)
    assert ev[0]["event"] == "start" and ev[0]["task"] == "classify"
    counts = [e for e in ev if e["event"] == "counts"]
    assert [c["second"] for c in counts] == [0] and counts[0]["frames"] == 15
    assert sum(counts[0]["counts"].values()) == 15 and set(counts[0]["counts"]) <= {"cat", "dog", "bird"}
    assert ev[-1]["event"] == "summary" and ev[-1]["processed"] == 15


def test_detect_and_track_events_enter_and_leave(untrained_detector, clip, tmp_path):
    import recog
    from recog.video.events import EventLog
    from recog.video.run import AnnotatedVideo, VideoOptions, run_video
    from recog.video.sources import open_source

    model = recog.load(untrained_detector)
    events = tmp_path / "events.jsonl"
    # an untrained detector scores every box alike (~0.07): the pipeline is under test here, not accuracy
    opts = VideoOptions(track=True, track_score=0.05, max_frames=12, predict={"min_score": 0.05})
    summary = run_video(model, open_source(str(clip)), opts,
                        sinks=[AnnotatedVideo(tmp_path / "out.mkv"), EventLog(events, source=str(clip), task="detect",
                                                                             labels=model.labels)])
    assert summary.processed == 12 and "max frames" in summary.stopped
    ev = read_events(events)
    enters = [e for e in ev if e["event"] == "enter"]
    leaves = [e for e in ev if e["event"] == "leave"]
    assert summary.tracks == len(enters) > 0
    assert sorted(e["track_id"] for e in enters) == sorted(e["track_id"] for e in leaves)
    assert min(e["frame"] for e in enters) == 1      # confirmed at their second frame at the earliest (min_hits 2)
    counts = [e for e in ev if e["event"] == "counts"][0]
    assert sum(counts["tracks"].values()) >= max(counts["counts"].values()) > 0
    assert len(decoded(tmp_path / "out.mkv")) == 12


def test_track_needs_a_detector_and_outputs_a_known_format(tiny_bundle, clip, tmp_path, capsys):
    code, _, stderr = run_cli(["video", tiny_bundle, clip, "--track"], capsys)
    assert code == 2 and "needs a 'detect' model" in stderr and len(stderr.strip().splitlines()) == 1
    code, _, stderr = run_cli(["video", tiny_bundle, clip, "--out", tmp_path / "out.webm"], capsys)
    assert code == 2 and "cannot write a .webm video" in stderr and len(stderr.strip().splitlines()) == 1


def test_truncated_file_processes_readable_frames_missing_or_junk_fails(tiny_bundle, tmp_path, capsys):
    cut = tmp_path / "cut.mkv"
    render_clip(cut, frames=60)
    cut.write_bytes(cut.read_bytes()[:cut.stat().st_size // 2])
    code, stdout, stderr = run_cli(["video", tiny_bundle, cut], capsys)
    assert code == 0, stderr
    summary = json.loads(stdout)
    assert 0 < summary["processed"] < 60 and "file ends early" in summary["stopped"]
    assert f"stopped at frame {summary['last_frame']}" in stderr

    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00" * 4096)
    for bad, message in ((junk, "not a video file PyAV can read"), (tmp_path / "none.mp4", "no such video file")):
        code, stdout, stderr = run_cli(["video", tiny_bundle, bad], capsys)
        assert code == 2 and stdout == ""
        assert stderr.startswith("error: ") and message in stderr and len(stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("every", [1, 3])
def test_live_source_sampling_keeps_at_most_one_frame_in_every(tiny_bundle, tmp_path, every):
    import recog
    from recog.video.run import VideoOptions, run_video
    from recog.video.sources import open_source

    path = tmp_path / "clip.mp4"
    render_clip(path, frames=30, fps=60)
    taken = []

    class Indexes:
        def add(self, item):
            taken.append(item.frame.index)

        def close(self, summary, ended=()):
            pass

    summary = run_video(recog.load(tiny_bundle), open_source(str(path), realtime=True), VideoOptions(every=every),
                        sinks=[Indexes()])
    assert summary.frames_read == 30 and summary.processed == len(taken) > 0
    assert all(b - a >= every for a, b in zip(taken, taken[1:]))
    assert summary.processed + summary.dropped + summary.skipped + summary.stale == 30


def test_results_over_the_latency_budget_are_counted_late(untrained_detector, clip):
    import recog
    from recog.video.run import VideoOptions, run_video
    from recog.video.sources import open_source

    model = recog.load(untrained_detector)   # tens of ms a frame at the least: over a 10 ms budget
    tight = run_video(model, open_source(str(clip)), VideoOptions(max_latency=0.01, max_frames=5))
    loose = run_video(model, open_source(str(clip)), VideoOptions(max_latency=60.0, max_frames=5))
    assert (tight.processed, tight.late, tight.stale) == (5, 5, 0)   # a file waits for the model: never stale
    assert (loose.processed, loose.late) == (5, 0)
    assert tight.to_dict()["late"] == 5


def test_faces_per_frame_tracked_by_a_real_detector(tmp_path, capsys):
    clip, events, out = tmp_path / "hopper.mp4", tmp_path / "events.jsonl", tmp_path / "faces.mp4"
    render_face_clip(clip, frames=16)
    code, stdout, stderr = run_cli(["video", "faces", clip, "--track", "--events", events, "--out", out], capsys)
    assert code == 0, stderr
    summary = json.loads(stdout)
    assert summary["processed"] == 16 and summary["tracks"] == 1
    ev = read_events(events)
    (enter,) = [e for e in ev if e["event"] == "enter"]
    (leave,) = [e for e in ev if e["event"] == "leave"]
    assert enter["label"] == "face" and enter["frame"] == 1            # dlib's HOG detector, confirmed at frame 1
    assert leave["track_id"] == enter["track_id"] and leave["reason"] == "end" and leave["frames_seen"] >= 14
    assert enter["box"][0] < 80                                         # the face enters on the left
    counts = [e for e in ev if e["event"] == "counts"]
    assert [c["counts"] for c in counts] == [{"face": 1}, {"face": 1}] and all(c["tracks"] == {"face": 1} for c in counts)
    assert len(decoded(out)) == 16


def test_faces_in_a_video_are_identified_against_a_collection(tmp_path, capsys):
    """Grace Hopper enrolled from her portrait: her face sliding through a clip is one track labelled with her
    name; against a collection without her (the astronaut Eileen Collins) the same face is `unknown`."""
    import matplotlib.cbook
    from PIL import Image
    from skimage import data

    from recog.faces.recognizer import FaceRecognizer

    db = tmp_path / "faces.db"
    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as fh:
        Image.open(fh).convert("RGB").save(tmp_path / "hopper.jpg")
    Image.fromarray(data.astronaut()[:300, 100:360]).save(tmp_path / "collins.jpg")  # her face, not the patch
    with FaceRecognizer(db) as faces:
        faces.enroll(tmp_path / "hopper.jpg", person="Grace Hopper", collection="staff")
        faces.enroll(tmp_path / "collins.jpg", person="Eileen Collins", collection="staff")
        faces.enroll(tmp_path / "collins.jpg", person="Eileen Collins", collection="visitors")
    clip = tmp_path / "door.mp4"
    render_face_clip(clip, frames=12)
    for collection, who in (("staff", "Grace Hopper"), ("visitors", "unknown")):
        events = tmp_path / f"{collection}.jsonl"
        code, stdout, stderr = run_cli(["video", "faces", clip, "--track", "--collection", collection,
                                        "--db", db, "--events", events], capsys)
        assert code == 0, stderr
        assert json.loads(stdout)["tracks"] == 1
        ev = read_events(events)
        assert ev[0]["labels"][0] == "unknown" and set(ev[0]["labels"]) == {"unknown", *{"staff": {"Grace Hopper", "Eileen Collins"}, "visitors": {"Eileen Collins"}}[collection]}
        assert [e["label"] for e in ev if e["event"] in ("enter", "leave")] == [who, who]
        assert all(c["tracks"] == {who: 1} for c in ev if c["event"] == "counts")
    code, _, stderr = run_cli(["video", "faces", clip, "--collection", "nobody", "--db", db], capsys)
    assert code != 0 and "nobody" in stderr and "staff" in stderr   # the collections that exist are named
    code, _, stderr = run_cli(["video", str(tmp_path), clip, "--collection", "staff", "--db", db], capsys)
    assert code != 0 and "recog video faces" in stderr
