"""The ByteTrack-style tracker on known trajectories, and the CLEAR-MOT scores checked by hand."""

from __future__ import annotations

import numpy as np
import pytest

from recog.detect.boxes import iou_matrix
from recog.video.mot import clear_mot
from recog.video.tracker import ByteTracker

SIZE = 40


def crossing(frames: int = 31) -> list[dict[int, np.ndarray]]:
    """Two objects of one class crossing head-on: 1 goes right along y=100, 2 goes left along y=112."""
    out = []
    for i in range(frames):
        a, b = 10.0 * i, 300.0 - 10.0 * i
        out.append({1: np.array([a, 100, a + SIZE, 100 + SIZE]), 2: np.array([b, 112, b + SIZE, 112 + SIZE])})
    return out


def run(tracker: ByteTracker, truth, *, score=lambda obj, i: 0.9, seen=lambda obj, i: True, jitter=0.0):
    """Feed the tracker the true boxes (as a detector would give them, with ``jitter`` px of noise);
    returns {object: [id of the track on it per frame, None where it was not detected]}."""
    rng = np.random.default_rng(0)
    ids: dict[int, list] = {1: [], 2: []}
    for i, objs in enumerate(truth):
        keys = [k for k in objs if seen(k, i)]
        boxes = np.array([objs[k] + rng.normal(0, jitter, 4) for k in keys]).reshape(-1, 4)
        tracks = tracker.update(boxes, [score(k, i) for k in keys], [0] * len(keys), ["cell"] * len(keys), frame=i)
        for k in objs:
            overlap = iou_matrix(objs[k], np.array([t.box for t in tracks]))[0] if tracks else np.zeros(0)
            ids[k].append(tracks[int(overlap.argmax())].id if seen(k, i) and overlap.size and overlap.max() > 0.7
                          else None)
    return ids


def test_ids_stay_with_their_objects_through_a_crossing():
    ids = run(ByteTracker(min_hits=1), crossing(), jitter=1.5)
    first = {k: v[0] for k, v in ids.items()}
    assert first[1] != first[2]
    assert ids[1] == [first[1]] * 31 and ids[2] == [first[2]] * 31


def test_an_object_hidden_while_crossing_gets_its_id_back():
    hidden = range(14, 18)  # object 2 is not detected for 4 frames right where the paths meet
    tracker = ByteTracker(min_hits=1)
    ids = run(tracker, crossing(), seen=lambda k, i: not (k == 2 and i in hidden))
    assert set(ids[2][:14] + ids[2][18:]) == {ids[2][0]}
    assert set(ids[1]) == {ids[1][0]} and tracker.confirmed == 2


def test_low_score_detections_keep_a_track_alive_but_start_none():
    tracker = ByteTracker(high=0.5, low=0.1, min_hits=1)
    # object 2 fades to 0.2 (occluded, blurred) for frames 5-20: the second round keeps its id
    ids = run(tracker, crossing(), score=lambda k, i: 0.2 if k == 2 and 5 <= i <= 20 else 0.9)
    assert set(ids[2]) == {ids[2][0]}
    solo = ByteTracker(min_hits=1)
    assert solo.update(np.array([[0, 0, 10, 10.]]), [0.3], [0], ["cell"]) == [] and solo.confirmed == 0


def test_confirmation_and_leave_events():
    tracker = ByteTracker(min_hits=2, max_missed=2)
    box = np.array([[0, 0, 20, 20.]])
    assert tracker.update(box, [0.9], [0], ["cell"], frame=0) == [] and tracker.entered == []
    (track,) = tracker.update(box, [0.9], [0], ["cell"], frame=1)
    assert [t.id for t in tracker.entered] == [track.id]
    for frame in (2, 3):
        tracker.update(np.zeros((0, 4)), [], [], [], frame=frame)
        assert tracker.left == []
    tracker.update(np.zeros((0, 4)), [], [], [], frame=4)
    assert [t.id for t in tracker.left] == [track.id] and tracker.tracks == []


def test_returned_tracks_keep_their_frame_s_box():
    tracker = ByteTracker(min_hits=1)
    (first,) = tracker.update(np.array([[0, 0, 20, 20.]]), [0.9], [0], ["cell"])
    (second,) = tracker.update(np.array([[4, 0, 24, 20.]]), [0.9], [0], ["cell"])
    assert first.id == second.id and first.box[0] == 0 and second.box[0] == 4


def test_classes_are_never_mixed():
    tracker = ByteTracker(min_hits=1)
    box = np.array([[0, 0, 20, 20.]])
    (a,) = tracker.update(box, [0.9], [0], ["cell"])
    (b,) = tracker.update(box, [0.9], [1], ["dust"])
    assert a.id != b.id


def test_clear_mot_on_a_hand_checked_sequence():
    a, b, far = [0, 0, 10, 10.], [20, 0, 30, 10.], [100, 100, 110, 110.]
    frames = [
        ([1, 2], np.array([a, b]), [10, 20], np.array([a, b])),    # 2 matches
        ([1, 2], np.array([a, b]), [10, 30], np.array([a, far])),  # 1 match, object 2 missed, track 30 false
        ([1, 2], np.array([a, b]), [10, 20], np.array([b, a])),    # both matched to the other track: 2 switches
    ]
    s = clear_mot(frames)
    assert (s.objects, s.matches, s.misses, s.false_positives, s.id_switches) == (6, 5, 1, 1, 2)
    assert s.mota == pytest.approx(1 - (1 + 1 + 2) / 6)
    assert s.motp == pytest.approx(1.0)


def test_clear_mot_of_the_tracker_on_the_crossing_is_perfect():
    truth = crossing()
    tracker = ByteTracker(min_hits=1)
    frames = []
    for i, objs in enumerate(truth):
        tracks = tracker.update(np.array(list(objs.values())), [0.9, 0.9], [0, 0], ["cell"] * 2, frame=i)
        frames.append((list(objs), np.array(list(objs.values())), [t.id for t in tracks],
                       np.array([t.box for t in tracks]).reshape(-1, 4)))
    s = clear_mot(frames)
    assert s.id_switches == 0 and s.mota == 1.0


def test_a_track_keeps_its_id_when_its_label_flips_and_takes_the_label_seen_most():
    """Faces: matched whatever their label (by_class=False); one misread frame neither splits the track nor renames it."""
    tracker = ByteTracker(min_hits=1, by_class=False)
    box = np.array([[10, 10, 50, 60.]])
    readings = [("Ada", 1), ("Ada", 1), ("unknown", 0), ("Ada", 1), ("Ada", 1)]
    seen = [tracker.update(box + i, np.array([0.9]), np.array([cid]), [label]) for i, (label, cid) in enumerate(readings)]
    assert {t.id for frame in seen for t in frame} == {1}
    assert [frame[0].label for frame in seen] == ["Ada"] * 5
    assert seen[-1][0].votes == {("Ada", 1): 4, ("unknown", 0): 1}
    by_class = ByteTracker(min_hits=1)  # a detector's classes stay apart: a new class is a new object
    ids = [by_class.update(box, np.array([0.9]), np.array([cid]), [label])[0].id for label, cid in readings[1:3]]
    assert ids == [1, 2]
